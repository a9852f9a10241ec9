// Reads the YAML files of a commit from Git's object database (never a
// working tree) and builds the Model; for a later commit, only the files
// that changed are read and parsed.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { builtinBootEnvDir } from "../../renderers/builtin.js";
import type { GitRepo } from "../source/git.js";
import { Model } from "./model.js";
import { parseFile, type ParsedFile, type SourceFile } from "./parse.js";

const YAML_EXTS = [".yaml", ".yml"];

/** Hidden folders (.github, .gitlab-ci ...) hold other tools' YAML. */
function isSiteFile(path: string): boolean {
  return !path.split("/").some((seg) => seg.startsWith("."));
}

let builtinCache: SourceFile[] | undefined;
export function builtinFiles(): SourceFile[] {
  if (!builtinCache) {
    const dir = builtinBootEnvDir();
    builtinCache = readdirSync(dir)
      .filter((f) => YAML_EXTS.some((e) => f.endsWith(e)))
      .sort()
      .map((f) => ({ path: `renderers/bootenvs/${f}`, oid: `builtin:${f}`, text: readFileSync(join(dir, f), "utf8") }));
  }
  return builtinCache;
}

export async function readCommitFiles(repo: GitRepo, commit: string): Promise<SourceFile[]> {
  const entries = (await repo.listFiles(commit, { exts: YAML_EXTS })).filter((e) => isSiteFile(e.path));
  const blobs = await repo.readBlobs(entries.map((e) => e.oid));
  return entries.map((e) => ({ path: e.path, oid: e.oid, text: blobs.get(e.oid) ?? "" }));
}

export async function loadModel(repo: GitRepo, commit: string): Promise<Model> {
  const entries = (await repo.listFiles(commit, { exts: YAML_EXTS })).filter((e) => isSiteFile(e.path));
  const pathsOf = new Map<string, string[]>();
  for (const e of entries) {
    const paths = pathsOf.get(e.oid);
    if (paths) paths.push(e.path);
    else pathsOf.set(e.oid, [e.path]);
  }
  // Each file is parsed as soon as git hands it over: parsing overlaps reading.
  const parsed = new Map<string, ParsedFile>();
  await repo.readBlobsEach(pathsOf.keys(), (oid, text) => {
    for (const path of pathsOf.get(oid) ?? []) parsed.set(path, parseFile({ path, oid, text }));
  });
  // Files in tree order, as a cold build from readCommitFiles() would hold them.
  const ordered = new Map<string, ParsedFile>();
  for (const e of entries) ordered.set(e.path, parsed.get(e.path)!);
  return Model.fromParsed(ordered, { builtinFiles: builtinFiles() });
}

/** The model of `toCommit`, derived from `from` (the model of `fromCommit`) by the files that differ. */
export async function advanceModel(
  repo: GitRepo,
  from: Model,
  fromCommit: string,
  toCommit: string,
): Promise<{ model: Model; affected: Set<string>; changedPaths: string[] }> {
  const changes = (await repo.diffPaths(fromCommit, toCommit, { exts: YAML_EXTS })).filter((c) => isSiteFile(c.path));
  const blobs = await repo.readBlobs(changes.filter((c) => c.oid).map((c) => c.oid!));
  const { model, affected } = from.withChanges(
    changes.map((c) => ({ path: c.path, file: c.oid ? { path: c.path, oid: c.oid, text: blobs.get(c.oid) ?? "" } : undefined })),
  );
  return { model, affected, changedPaths: changes.map((c) => c.path) };
}
