// Issue 8, hostile commits: each is committed to the tracked branch of a
// running daemon and must be rejected like any invalid commit (a note naming
// FILE:LINE, /healthz still naming the last good commit), after which the
// site is served as before. The corpus itself is hostileCommits() below,
// shared with the validate tests of test/model.
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canUseNetns } from "../lib/netns.js";
import { git, hasCommand, waitFor } from "../daemon/harness.js";
import { expectStillServing, httpServed, noteOf, startAttackSite, takeBaseline, type AttackSite, type Baseline, type Health } from "./harness.js";
import { hostileCommits } from "./hostile-commits.js";

const run = promisify(execFile);
const GITRACK = join(dirname(fileURLToPath(import.meta.url)), "../../bin/gitrack.js");
const TOOLS = ["busybox", "curl", "git", "tftp"].every(hasCommand);

/** /healthz; throws without an answer, which fails the test where it is asked. */
async function health(site: AttackSite): Promise<Health> {
  const h = await httpServed(site);
  if (!h) throw new Error("GET /healthz got no answer");
  return h;
}

describe.skipIf(!canUseNetns() || !TOOLS)("hostile commits against a running daemon", () => {
  let site: AttackSite;
  let baseline: Baseline;
  let good: string;

  beforeAll(async () => {
    site = await startAttackSite("commits");
    baseline = await takeBaseline(site);
    good = git(site.repo, ["rev-parse", "HEAD"]).trim();
    await waitFor("the first commit to be served", async () => (await health(site)).commit === good, 20_000);
  });
  afterAll(async () => {
    await site?.close();
  });

  for (const c of hostileCommits()) {
    it(`${c.name}: rejected with a note at ${c.at}, the last good commit keeps serving`, async () => {
      const bad = site.commit(c.files, `hostile: ${c.name}`);
      // `gitrack validate` says the same, and exits 1.
      const v = await run(process.execPath, [GITRACK, "validate", "--repo", site.repo, "--rev", bad]).then(
        (r) => ({ code: 0, out: r.stdout }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
      expect(v.code).toBe(1);
      expect(v.out).toContain(c.at);
      expect(v.out).toMatch(c.message);
      const note = await waitFor(`a note on the ${c.name} commit`, () => noteOf(site, bad), 60_000, 250);
      expect(note).toMatch(/outcome: rejected/);
      expect(note).toContain(c.at);
      expect(note).toMatch(c.message);
      const h = await health(site);
      expect(h.commit).toBe(good);
      expect(h.lastSeenCommit).toBe(bad);
      expect(h.lastRejected?.commit).toBe(bad);
      await expectStillServing(site, baseline);
      // The next commit, with the hostile file still in the tree, is rejected too.
      const next = site.commit({ "README.md": `after ${c.name}\n` }, `an unrelated change after ${c.name}`);
      const nextNote = await waitFor("a note on the commit after it", () => noteOf(site, next), 30_000, 250);
      expect(nextNote).toMatch(/outcome: rejected/);
      expect((await health(site)).commit).toBe(good);
      // Removing it makes the site valid again.
      const fixed = site.commit(Object.fromEntries(Object.keys(c.files).map((p) => [p, null])), `remove ${c.name}`);
      await waitFor("the fixed commit to be served", async () => (await health(site)).commit === fixed, 30_000, 250);
      good = fixed;
    }, 180_000);
  }

  // Not a bound this time: a commit that passes every check but cannot be
  // read, because one of its blobs is missing from the object store (a
  // damaged disk, an interrupted gc, a partial clone). Loading it throws
  // inside reconcile, which must be recorded as a failure, not passed over.
  it("a commit whose blob is missing fails with a note, health names it, the last good commit keeps serving, also across a restart", async () => {
    const ghost = git(site.repo, ["hash-object", "--stdin"], "apiVersion: gitrack/v1\nkind: Machine\n").trim();
    // Written to the index and tree without the object (hash-object without -w).
    git(site.repo, ["update-index", "--add", "--cacheinfo", `100644,${ghost},machines/ghost.yaml`]);
    const tree = git(site.repo, ["write-tree", "--missing-ok"]);
    const bad = git(site.repo, ["commit-tree", tree, "-p", "HEAD", "-m", "a machine file whose blob is missing"]);
    git(site.repo, ["update-ref", "refs/heads/main", bad]);

    const note = await waitFor("a note on the unreadable commit", () => noteOf(site, bad), 60_000, 250);
    expect(note).toMatch(/outcome: failed/);
    expect(note).toContain(`object ${ghost} is missing`);
    const h = await health(site);
    expect(h.commit).toBe(good);
    expect(h.lastSeenCommit).toBe(bad);
    expect(h.lastFailed?.commit).toBe(bad);
    expect(site.daemon.log()).toMatch(/reconciling a commit failed; the last good commit keeps serving/);
    await expectStillServing(site, baseline);

    // A start whose branch head cannot be read serves the commit applied before it.
    await site.restart();
    await waitFor("the last good commit to be served after the restart", async () => (await health(site)).commit === good, 30_000, 250);
    expect((await health(site)).lastFailed?.commit).toBe(bad);
    await expectStillServing(site, baseline);

    // Removing the file makes the branch readable and applied again.
    git(site.repo, ["read-tree", bad]);
    const fixed = site.commit({ "machines/ghost.yaml": null }, "remove the unreadable machine file");
    await waitFor("the fixed commit to be served", async () => (await health(site)).commit === fixed, 30_000, 250);
    expect(noteOf(site, fixed)).toMatch(/outcome: applied/);
    good = fixed;
  }, 180_000);
});
