// Real repositories for tests, made with the git CLI in temporary directories
// (never inside the checkout under test).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const made: string[] = [];

/** A fresh temporary directory, removed by cleanupTemp(). */
export function tempDir(prefix = "gitrack-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function cleanupTemp(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

const testEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("GIT_")) delete env[k];
  return {
    ...env,
    GIT_AUTHOR_NAME: "Ada Operator",
    GIT_AUTHOR_EMAIL: "ada@example.com",
    GIT_COMMITTER_NAME: "Ada Operator",
    GIT_COMMITTER_EMAIL: "ada@example.com",
    GIT_CONFIG_NOSYSTEM: "1",
    HOME: tmpdir(),
  };
};

/** Runs git in `cwd` like a person at a shell would; returns trimmed stdout. */
export function sh(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, env: testEnv(), encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], maxBuffer: 1 << 30 }).trim();
}

export function shInput(cwd: string, input: string | Buffer, ...args: string[]): string {
  return execFileSync("git", args, { cwd, env: testEnv(), input, encoding: "utf8", maxBuffer: 1 << 30 }).trim();
}

/** A working copy on branch main with one commit holding `files`. */
export function makeWorkingRepo(files: Record<string, string> = { "site.yaml": "kind: Site\n" }): string {
  const dir = tempDir("gitrack-wc-");
  sh(dir, "init", "-q", "--initial-branch=main");
  commitFiles(dir, files, "initial");
  return dir;
}

/** Writes files into a working copy, then `git add` + `git commit`; returns the new commit. */
export function commitFiles(dir: string, files: Record<string, string>, message: string): string {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  sh(dir, "add", "--", ...Object.keys(files));
  sh(dir, "commit", "-q", "-m", message);
  return sh(dir, "rev-parse", "HEAD");
}

/** A bare repository whose branch main is a clone of `source`'s main. */
export function makeBareFrom(source: string): string {
  const dir = join(tempDir("gitrack-bare-"), "origin.git");
  sh(tmpdir(), "clone", "-q", "--bare", source, dir);
  return dir;
}
