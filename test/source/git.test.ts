import { afterAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { GitError, GitRepo, redactCredentials, runGit } from "../../reconciler/source/git.js";
import { cleanupTemp, commitFiles, makeWorkingRepo, sh, shInput, tempDir } from "./fixture.js";

afterAll(() => cleanupTemp());

/** Builds a bare repository with `count` YAML files in one commit through `git fast-import`. */
function buildLargeRepo(count: number): { dir: string; expected: Map<string, string> } {
  const dir = tempDir("gitrack-large-");
  sh(dir, "init", "-q", "--bare", "--initial-branch=main");
  const expected = new Map<string, string>();
  const chunks: string[] = [];
  for (let i = 0; i < count; i++) {
    const path = `machines/rack-${i % 50}/node-${i}.yaml`;
    const content = `apiVersion: gitrack/v1\nkind: Machine\nmetadata:\n  name: node-${i}\nspec:\n  mac: "52:54:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}"\n`;
    expected.set(path, content);
    chunks.push(`blob\nmark :${i + 1}\ndata ${Buffer.byteLength(content)}\n${content}\n`);
  }
  chunks.push("commit refs/heads/main\ncommitter Ada <ada@example.com> 1700000000 +0000\ndata 5\nmany\n");
  let i = 0;
  for (const path of expected.keys()) chunks.push(`M 100644 :${++i} ${path}\n`);
  chunks.push("M 100644 inline README.md\ndata 3\nhi\n\n");
  shInput(dir, chunks.join(""), "fast-import", "--quiet");
  return { dir, expected };
}

describe("GitRepo", () => {
  it("lists and reads every file of a 10,000-file commit", async () => {
    const { dir, expected } = buildLargeRepo(10_000);
    const repo = new GitRepo(dir);
    try {
      const started = performance.now();
      const commit = await repo.resolve("refs/heads/main");
      expect(commit).toMatch(/^[0-9a-f]{40}$/);
      const files = await repo.listFiles(commit!, { exts: [".yaml", ".yml"] });
      const blobs = await repo.readBlobs(files.map((f) => f.oid));
      console.log(`listFiles + readBlobs of ${files.length} files: ${(performance.now() - started).toFixed(0)} ms`);
      expect(files).toHaveLength(10_000);
      for (const f of files) expect(blobs.get(f.oid)).toBe(expected.get(f.path));
    } finally {
      await repo.close();
    }
  });

  it("resolves a branch to its commit and an unknown branch to undefined", async () => {
    const dir = makeWorkingRepo();
    const repo = new GitRepo(dir);
    expect(await repo.resolve("refs/heads/main")).toBe(sh(dir, "rev-parse", "HEAD"));
    expect(await repo.resolve("refs/heads/nope")).toBeUndefined();
    await repo.close();
  });

  it("lists only YAML files, optionally under a folder", async () => {
    const dir = makeWorkingRepo({ "a.yaml": "a: 1\n", "b.YML": "b: 1\n", "c.txt": "c\n", "sites/x/m.yaml": "m: 1\n" });
    const repo = new GitRepo(dir);
    const head = (await repo.resolve("HEAD"))!;
    const all = (await repo.listFiles(head, { exts: [".yaml", ".yml"] })).map((f) => f.path).sort();
    expect(all).toEqual(["a.yaml", "b.YML", "sites/x/m.yaml"]);
    const under = (await repo.listFiles(head, { exts: [".yaml"], under: "sites/x" })).map((f) => f.path);
    expect(under).toEqual(["sites/x/m.yaml"]);
    await repo.close();
  });

  it("reports added, modified and deleted paths between two commits", async () => {
    const dir = makeWorkingRepo({ "keep.yaml": "k\n", "change.yaml": "1\n", "gone.yaml": "g\n" });
    const from = sh(dir, "rev-parse", "HEAD");
    sh(dir, "rm", "-q", "gone.yaml");
    const to = commitFiles(dir, { "change.yaml": "2\n", "new.yaml": "n\n" }, "edit");
    const repo = new GitRepo(dir);
    const changes = (await repo.diffPaths(from, to)).sort((a, b) => a.path.localeCompare(b.path));
    expect(changes).toEqual([
      { path: "change.yaml", status: "M", oid: sh(dir, "rev-parse", "HEAD:change.yaml") },
      { path: "gone.yaml", status: "D" },
      { path: "new.yaml", status: "A", oid: sh(dir, "rev-parse", "HEAD:new.yaml") },
    ]);
    await repo.close();
  });

  it("reads a commit's author, committer, subject and parents", async () => {
    const dir = makeWorkingRepo();
    const parent = sh(dir, "rev-parse", "HEAD");
    const oid = commitFiles(dir, { "x.yaml": "x\n" }, "add x\n\nbody text");
    const repo = new GitRepo(dir);
    const info = await repo.commitInfo(oid);
    expect(info.oid).toBe(oid);
    expect(info.parents).toEqual([parent]);
    expect(info.subject).toBe("add x");
    expect(info.author.email).toBe("ada@example.com");
    expect(info.committer.name).toBe("Ada Operator");
    expect(info.committer.timestamp).toBe(Number(sh(dir, "log", "-1", "--format=%ct")));
    expect(info.tree).toBe(sh(dir, "rev-parse", "HEAD^{tree}"));
    await repo.close();
  });

  it("refuses to read a missing blob instead of returning nothing", async () => {
    const dir = makeWorkingRepo();
    const repo = new GitRepo(dir);
    await expect(repo.readBlobs(["0123456789012345678901234567890123456789"])).rejects.toThrow(/missing/);
    expect(await repo.readBlob("0123456789012345678901234567890123456789")).toBeUndefined();
    await repo.close();
  });

  it("tells whether one commit is an ancestor of another", async () => {
    const dir = makeWorkingRepo();
    const a = sh(dir, "rev-parse", "HEAD");
    const b = commitFiles(dir, { "y.yaml": "y\n" }, "y");
    const repo = new GitRepo(dir);
    expect(await repo.isAncestor(a, b)).toBe(true);
    expect(await repo.isAncestor(b, a)).toBe(false);
    await repo.close();
  });

  it("keeps reading after its cat-file process is killed", async () => {
    const dir = makeWorkingRepo({ "a.yaml": "alpha\n" });
    const repo = new GitRepo(dir);
    const oid = sh(dir, "rev-parse", "HEAD:a.yaml");
    expect((await repo.readBlobs([oid])).get(oid)).toBe("alpha\n");
    // Kill the batch process we started (found as our own child by its arguments).
    const pids = await catFilePids();
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 100));
    expect((await repo.readBlobs([oid])).get(oid)).toBe("alpha\n");
    await repo.close();
  });

  it("names the failed command and its stderr, with URL credentials redacted", async () => {
    const err = await runGit(["ls-remote", "https://user:s3cret@127.0.0.1:1/repo.git"], { timeoutMs: 10_000 }).catch((e) => e);
    expect(err).toBeInstanceOf(GitError);
    expect(err.message).toContain("git ls-remote https://***@127.0.0.1:1/repo.git failed");
    expect(err.message).not.toContain("s3cret");
    expect(redactCredentials("see ssh://bob:pw@host/x")).toBe("see ssh://***@host/x");
  });

  it("builds nested trees without touching the working tree, index or HEAD", async () => {
    const dir = makeWorkingRepo({ "a.yaml": "a\n" });
    const before = { status: sh(dir, "status", "--porcelain"), head: sh(dir, "rev-parse", "HEAD"), index: sh(dir, "ls-files", "-s") };
    const repo = new GitRepo(dir);
    const tree = await repo.writeTree(new Map([["machines/x.yaml", "x\n"], ["site.yaml", "s\n"]]));
    expect(sh(dir, "ls-tree", "-r", "--name-only", tree).split("\n")).toEqual(["machines/x.yaml", "site.yaml"]);
    expect(sh(dir, "status", "--porcelain")).toBe(before.status);
    expect(sh(dir, "rev-parse", "HEAD")).toBe(before.head);
    expect(sh(dir, "ls-files", "-s")).toBe(before.index);
    await repo.close();
  });
});

/** PIDs of `git cat-file --batch` processes that are children of this test process. */
async function catFilePids(): Promise<number[]> {
  const out = execFileSync("ps", ["-o", "pid=,ppid=,args=", "-e"], { encoding: "utf8" });
  return out
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => Number(f[1]) === process.pid && f.slice(2).join(" ").includes("cat-file --batch"))
    .map((f) => Number(f[0]));
}
