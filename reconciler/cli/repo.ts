// Opening the repository and commit a command works on, with errors a person
// can act on.
import { GitRepo } from "../source/git.js";
import { loadModel } from "../model/load.js";
import type { Model } from "../model/model.js";

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export async function openRepo(path: string): Promise<GitRepo> {
  const repo = new GitRepo(path);
  try {
    await repo.gitDir();
  } catch {
    throw new CliError(`${path} is not a Git repository (use --repo DIR, or gitrack init DIR to make one)`);
  }
  return repo;
}

export async function resolveRev(repo: GitRepo, rev: string): Promise<string> {
  const oid = await repo.resolve(rev);
  if (!oid) throw new CliError(`revision "${rev}" not found in ${repo.path}`);
  return oid;
}

export async function modelAt(repo: GitRepo, rev: string): Promise<{ commit: string; model: Model }> {
  const commit = await resolveRev(repo, rev);
  return { commit, model: await loadModel(repo, commit) };
}
