// `gitrack validate` and `gitrack init` as a person uses them: exit codes,
// one FILE:LINE:COL: message per line, JSON output, and the first steps of a
// new user.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SiteRepo, baseFiles, git, machineYaml, profileYaml, tempDir, siteRepos } from "../model/site-repo.js";
import { ensureBuilt, gitrack, gitrackBin, lines } from "./run.js";

const newRepo = siteRepos();

function repoWith(changes: Record<string, string | null> = {}): SiteRepo {
  const repo = newRepo(baseFiles());
  if (Object.keys(changes).length) repo.commit(changes, "change");
  return repo;
}

const broken = {
  "machines/n1.yaml": machineYaml("n1", 1, { mac: "52:54:00:00:00:zz" }),
  "machines/n2.yaml": machineYaml("n2", 2, { ip: "10.0.0.210" }),
  "profiles/base.yaml": profileYaml("base", { bootEnv: "nope" }),
};

describe("gitrack validate", () => {
  it("exits 0 and prints nothing for a valid repository", async () => {
    const repo = repoWith();
    expect(await gitrack("validate", "--repo", repo.dir)).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  it("reports several problems, each on its own line as FILE:LINE:COL: message, and exits 1", async () => {
    const repo = repoWith(broken);
    const r = await gitrack("validate", "--repo", repo.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("");
    const out = lines(r.stdout);
    expect(out).toHaveLength(3);
    for (const l of out) expect(l).toMatch(/^[\w/.-]+\.yaml:\d+:\d+: \S.*$/);
    expect(out[0]).toMatch(/^machines\/n1\.yaml:9:12: spec\.interfaces\[0\]\.mac: "52:54:00:00:00:zz" is not a MAC address/);
    expect(out[1]).toBe("machines/n2.yaml:10:11: ip 10.0.0.210 is inside the dynamic range 10.0.0.200-10.0.0.249 of subnet prov");
    expect(out[2]).toBe('profiles/base.yaml:6:12: bootEnv "nope" is not defined');
  });

  it("with --format json prints the same problems as parseable JSON", async () => {
    const repo = repoWith(broken);
    const text = await gitrack("validate", "--repo", repo.dir);
    const r = await gitrack("validate", "--repo", repo.dir, "--format", "json");
    expect(r.code).toBe(1);
    const json = JSON.parse(r.stdout) as { valid: boolean; problems: Array<{ file: string; line: number; col: number; message: string; machine?: string }> };
    expect(json.valid).toBe(false);
    expect(json.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`)).toEqual(lines(text.stdout));
    expect(json.problems[1]).toMatchObject({ file: "machines/n2.yaml", line: 10, col: 11, machine: "n2" });
  });

  it("with --format json says valid for a valid repository", async () => {
    const repo = repoWith();
    const r = await gitrack("validate", "--repo", repo.dir, "--format", "json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ valid: true, problems: [] });
  });

  it("reads the commit named by --rev, not the work tree", async () => {
    const repo = repoWith();
    const good = repo.head();
    repo.commit(broken, "break it");
    writeFileSync(join(repo.dir, "machines", "n1.yaml"), "not: [valid\n"); // uncommitted: never read
    expect((await gitrack("validate", "--repo", repo.dir, "--rev", good)).code).toBe(0);
    expect((await gitrack("validate", "--repo", repo.dir, "--rev", "HEAD~1")).code).toBe(0);
    expect(lines((await gitrack("validate", "--repo", repo.dir)).stdout)).toHaveLength(3);
  });

  it("says so when the folder is not a Git repository", async () => {
    const dir = tempDir();
    const r = await gitrack("validate", "--repo", dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("is not a Git repository");
  });

  it("says so when the revision does not exist", async () => {
    const repo = repoWith();
    const r = await gitrack("validate", "--repo", repo.dir, "--rev", "no-such-branch");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`gitrack: revision "no-such-branch" not found in ${repo.dir}\n`);
  });
});

describe("gitrack init", () => {
  it("creates a valid repository with one commit and a clean work tree", async () => {
    const dir = join(tempDir(), "site");
    const r = await gitrack("init", dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("valid");
    expect(git(dir, "log", "--format=%s")).toBe("New gitrack site repository");
    expect(git(dir, "status", "--porcelain")).toBe("");
    expect(git(dir, "branch", "--show-current")).toBe("main");
    expect(await gitrack("validate", "--repo", dir)).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(git(dir, "ls-files")).toContain(".gitrack/schemas/machine.schema.json");
  });

  it("refuses a folder that is not empty", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "notes.txt"), "mine\n");
    const r = await gitrack("init", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("exists and is not empty");
    expect(readFileSync(join(dir, "notes.txt"), "utf8")).toBe("mine\n");
  });

  it("as a new user: init, commit a bad MAC, validate shows its line, fix it, validate passes", async () => {
    const dir = join(tempDir(), "site");
    expect((await gitrack("init", dir)).code).toBe(0);
    const file = join(dir, "machines", "node01.yaml");
    const original = readFileSync(file, "utf8");
    const lineNo = original.split("\n").findIndex((l) => l.includes('mac: "52:54:00:77:00:01"')) + 1;
    const col = original.split("\n")[lineNo - 1]!.indexOf('"') + 1;
    writeFileSync(file, original.replace('"52:54:00:77:00:01"', '"52:54:00:77:00:1"'));
    git(dir, "commit", "-q", "-am", "node01: new NIC");

    const bad = await gitrack("validate", "--repo", dir);
    expect(bad.code).toBe(1);
    // (node01 then drops out of the model, so the template's cluster selector
    // also reports one machine too few: a known follow-on problem.)
    expect(lines(bad.stdout)).toContain(
      `machines/node01.yaml:${lineNo}:${col}: spec.interfaces[0].mac: "52:54:00:77:00:1" is not a MAC address, six colon-separated hex pairs (quote it in YAML)`,
    );

    writeFileSync(file, original.replace('"52:54:00:77:00:01"', '"52:54:00:77:00:11"'));
    git(dir, "commit", "-q", "-am", "node01: fix the MAC");
    expect(await gitrack("validate", "--repo", dir)).toEqual({ code: 0, stdout: "", stderr: "" });
  });
});

describe("the installed binary", () => {
  beforeAll(() => ensureBuilt());

  it("validates with the same output and exit code as main()", async () => {
    const repo = repoWith(broken);
    const inProcess = await gitrack("validate", "--repo", repo.dir);
    const spawned = await gitrackBin(["validate"], repo.dir);
    expect(spawned).toEqual(inProcess);
    expect(spawned.code).toBe(1);
  });

  it("exits 2 from plan when there are changes and 0 when there are none", async () => {
    const repo = repoWith({ "machines/n3.yaml": machineYaml("n3", 3) });
    const changed = await gitrackBin(["plan", "--to", "HEAD"], repo.dir);
    expect(changed.code).toBe(2);
    expect(changed.stdout).toContain("machine lab/n3");
    repo.commit({ "README.md": "notes\n" }, "docs only");
    const none = await gitrackBin(["plan", "--to", "HEAD"], repo.dir);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain("No changes");
  });
});
