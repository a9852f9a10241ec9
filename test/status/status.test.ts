import { afterAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { GitRepo } from "../../reconciler/source/git.js";
import { DiscoveredBranchWriter, NotesWriter, StatusBranchWriter, stableYaml } from "../../reconciler/status/index.js";
import { cleanupTemp, commitFiles, makeWorkingRepo, sh } from "../source/fixture.js";

afterAll(() => cleanupTemp());

/** Everything a person's checkout consists of besides the object database. */
function checkoutState(dir: string) {
  return {
    status: sh(dir, "status", "--porcelain", "--untracked-files=all"),
    head: sh(dir, "rev-parse", "HEAD"),
    symbolic: sh(dir, "symbolic-ref", "HEAD"),
    index: sh(dir, "ls-files", "-s", "--debug"),
  };
}

function machineFiles(phase: string): Map<string, string> {
  return new Map([
    ["machines/x.yaml", stableYaml({ status: { phase, address: "10.0.0.5" }, metadata: { name: "x" } })],
    ["site.yaml", stableYaml({ status: { machines: 1 } })],
  ]);
}

const countCommits = (dir: string, ref: string) => Number(sh(dir, "rev-list", "--count", ref));

describe("StatusBranchWriter", () => {
  it("commits status files readable with git log and git show, leaving the checkout untouched", async () => {
    const dir = makeWorkingRepo({ "machines/x.yaml": "kind: Machine\n" });
    writeFileSync(join(dir, "untracked.txt"), "mine\n");
    writeFileSync(join(dir, "machines/x.yaml"), "kind: Machine # edited, not staged\n");
    const before = checkoutState(dir);
    const desired = before.head;
    const repo = new GitRepo(dir);
    const writer = new StatusBranchWriter(repo, "site");

    const commit = await writer.write(machineFiles("ready"), { desiredCommit: desired, message: "1 machine ready" });

    expect(commit).toMatch(/^[0-9a-f]{40}$/);
    expect(sh(dir, "log", "--format=%s", "gitrack/status/site")).toBe("status: 1 machine ready");
    expect(sh(dir, "show", "gitrack/status/site:machines/x.yaml")).toBe(
      "metadata:\n  name: x\nstatus:\n  address: 10.0.0.5\n  phase: ready",
    );
    expect(sh(dir, "log", "-1", "--format=%an <%ae>", "gitrack/status/site")).toBe("gitrack <gitrack@localhost>");
    expect(checkoutState(dir)).toEqual(before);
    await repo.close();
  });

  it("names the desired commit in a trailer", async () => {
    const dir = makeWorkingRepo();
    const desired = sh(dir, "rev-parse", "HEAD");
    const repo = new GitRepo(dir);
    await new StatusBranchWriter(repo, "site").write(machineFiles("ready"), { desiredCommit: desired, message: "ok" });
    expect(sh(dir, "log", "-1", "--format=%(trailers:key=Gitrack-Desired-Commit,valueonly)", "gitrack/status/site")).toBe(desired);
    expect(sh(dir, "log", "-1", "--format=%(trailers)", "gitrack/status/site")).toBe(`Gitrack-Desired-Commit: ${desired}`);
  });

  it("makes no commit when the status is unchanged", async () => {
    const dir = makeWorkingRepo();
    const desired = sh(dir, "rev-parse", "HEAD");
    const writer = new StatusBranchWriter(new GitRepo(dir), "site");
    const first = await writer.write(machineFiles("ready"), { desiredCommit: desired, message: "a" });
    const second = await writer.write(machineFiles("ready"), { desiredCommit: desired, message: "b" });
    expect(first).toBeDefined();
    expect(second).toBeUndefined();
    expect(countCommits(dir, "gitrack/status/site")).toBe(1);
  });

  it("builds each commit on the previous one and removes files no longer given", async () => {
    const dir = makeWorkingRepo();
    const desired = sh(dir, "rev-parse", "HEAD");
    const writer = new StatusBranchWriter(new GitRepo(dir), "site");
    await writer.write(machineFiles("ready"), { desiredCommit: desired, message: "a" });
    await writer.write(new Map([["site.yaml", "status: {}\n"]]), { desiredCommit: desired, message: "b" });
    expect(countCommits(dir, "gitrack/status/site")).toBe(2);
    expect(sh(dir, "ls-tree", "-r", "--name-only", "gitrack/status/site")).toBe("site.yaml");
  });

  it("coalesces several scheduled writes into one commit of the latest state", async () => {
    const dir = makeWorkingRepo();
    const desired = sh(dir, "rev-parse", "HEAD");
    const writer = new StatusBranchWriter(new GitRepo(dir), "site", { minIntervalMs: 60_000 });
    let produced = 0;
    for (const phase of ["pxe", "installing", "rebooting", "ready"]) {
      writer.scheduleWrite(() => {
        produced++;
        return machineFiles(phase);
      }, { desiredCommit: desired, message: `x ${phase}` });
    }
    const commit = await writer.flush();
    expect(commit).toBeDefined();
    expect(produced).toBe(1);
    expect(countCommits(dir, "gitrack/status/site")).toBe(1);
    expect(sh(dir, "show", "gitrack/status/site:machines/x.yaml")).toContain("phase: ready");
    await writer.close();
  });

  it("writes the latest scheduled state eventually without a flush", async () => {
    const dir = makeWorkingRepo();
    const desired = sh(dir, "rev-parse", "HEAD");
    const writer = new StatusBranchWriter(new GitRepo(dir), "site", { minIntervalMs: 200 });
    writer.scheduleWrite(() => machineFiles("pxe"), { desiredCommit: desired, message: "pxe" });
    await new Promise((r) => setTimeout(r, 20));
    writer.scheduleWrite(() => machineFiles("installing"), { desiredCommit: desired, message: "installing" });
    writer.scheduleWrite(() => machineFiles("ready"), { desiredCommit: desired, message: "ready" });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !sh(dir, "for-each-ref", "--format=%(subject)", "refs/heads/gitrack/status/site").includes("ready")) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(sh(dir, "log", "-1", "--format=%s", "gitrack/status/site")).toBe("status: ready");
    expect(countCommits(dir, "gitrack/status/site")).toBeLessThanOrEqual(2);
    await writer.close();
  });
});

describe("stableYaml", () => {
  it("sorts keys at every level so equal objects give equal bytes", () => {
    const a = stableYaml({ b: 1, a: { d: [{ z: 1, y: 2 }], c: "52:54:00:aa:bb:cc" } });
    const b = stableYaml({ a: { c: "52:54:00:aa:bb:cc", d: [{ y: 2, z: 1 }] }, b: 1 });
    expect(a).toBe(b);
    // js-yaml quotes keys a YAML 1.1 reader would take for booleans ('y').
    expect(a).toBe("a:\n  c: 52:54:00:aa:bb:cc\n  d:\n    - 'y': 2\n      z: 1\nb: 1\n");
  });
});

describe("NotesWriter", () => {
  it("attaches a note readable with git notes show, and replaces it", async () => {
    const dir = makeWorkingRepo();
    const commit = sh(dir, "rev-parse", "HEAD");
    const before = checkoutState(dir);
    const notes = new NotesWriter(new GitRepo(dir), "site");
    expect(await notes.getNote(commit)).toBeUndefined();
    await notes.setNote(commit, "outcome: rejected\nerrors:\n  - machines/x.yaml:3 bad mac\n");
    await notes.setNote(commit, "outcome: applied\nactions: 3\n");
    expect(sh(dir, "notes", "--ref=gitrack/site", "show", commit)).toBe("outcome: applied\nactions: 3");
    expect(await notes.getNote(commit)).toBe("outcome: applied\nactions: 3\n");
    expect(checkoutState(dir)).toEqual(before);
  });
});

describe("DiscoveredBranchWriter", () => {
  const machine = (name: string) => `apiVersion: gitrack/v1\nkind: Machine\nmetadata:\n  name: ${name}\n`;

  it("proposes files on a branch that fast-forwards the tracked branch", async () => {
    const dir = makeWorkingRepo();
    const base = sh(dir, "rev-parse", "HEAD");
    const writer = new DiscoveredBranchWriter(new GitRepo(dir), "site");
    const before = checkoutState(dir);
    const tip = await writer.propose(base, new Map([["machines/new-1.yaml", machine("new-1")]]), "discovered: new-1");
    expect(tip).toBeDefined();
    expect(sh(dir, "merge-base", "--is-ancestor", base, "gitrack/discovered/site")).toBe("");
    expect(sh(dir, "show", "gitrack/discovered/site:machines/new-1.yaml")).toContain("name: new-1");
    expect(checkoutState(dir)).toEqual(before);
    // A second proposal of the same file changes nothing.
    expect(await writer.propose(base, new Map([["machines/new-1.yaml", machine("new-1")]]), "again")).toBeUndefined();
    // A person merges it.
    sh(dir, "merge", "-q", "--ff-only", "gitrack/discovered/site");
    expect(sh(dir, "show", "HEAD:machines/new-1.yaml")).toContain("name: new-1");
  });

  it("rebuilds on a moved tracked branch, keeping unmerged proposals and dropping merged ones", async () => {
    const dir = makeWorkingRepo();
    const base1 = sh(dir, "rev-parse", "HEAD");
    const writer = new DiscoveredBranchWriter(new GitRepo(dir), "site");
    await writer.propose(base1, new Map([["machines/a.yaml", machine("a")]]), "discovered: a");
    await writer.propose(base1, new Map([["machines/b.yaml", machine("b")]]), "discovered: b");
    // The operator merges only a (by hand, as a cherry-picked file) and changes something else.
    const base2 = commitFiles(dir, { "machines/a.yaml": machine("a") + "spec: {}\n", "site.yaml": "kind: Site # v2\n" }, "take a");

    const tip = await writer.propose(base2, new Map([["machines/c.yaml", machine("c")]]), "discovered: c");

    expect(tip).toBeDefined();
    expect(sh(dir, "merge-base", "--is-ancestor", base2, "gitrack/discovered/site")).toBe("");
    const changed = sh(dir, "diff", "--name-only", base2, "gitrack/discovered/site").split("\n").sort();
    expect(changed).toEqual(["machines/b.yaml", "machines/c.yaml"]);
    // A merge of the branch brings in both pending proposals.
    sh(dir, "merge", "-q", "--no-edit", "gitrack/discovered/site");
    expect(sh(dir, "ls-tree", "--name-only", "HEAD", "machines/").split("\n")).toEqual([
      "machines/a.yaml",
      "machines/b.yaml",
      "machines/c.yaml",
    ]);
    // After the merge, nothing is pending any more.
    expect((await writer.pending(sh(dir, "rev-parse", "HEAD"))).size).toBe(0);
  });
});
