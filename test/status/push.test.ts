import { afterAll, describe, expect, it } from "vitest";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { RemoteSource } from "../../reconciler/source/remote.js";
import {
  DiscoveredBranchWriter,
  NotesWriter,
  StatusBranchWriter,
  discoveredRef,
  notesRef,
  pushStatus,
  statusRef,
} from "../../reconciler/status/index.js";
import { cleanupTemp, commitFiles, makeBareFrom, makeWorkingRepo, sh, tempDir } from "../source/fixture.js";

afterAll(() => cleanupTemp());

const site = "lab";
const refs = [statusRef(site), notesRef(site), discoveredRef(site)];

/** One daemon's view of a remote site repository, with its own mirror. */
async function daemon(origin: string) {
  const source = new RemoteSource({ url: `file://${origin}`, branch: "main", stateDir: tempDir("gitrack-state-"), intervalMs: 0 });
  const desired = (await source.start())!;
  return {
    source,
    desired,
    status: new StatusBranchWriter(source.repo, site),
    notes: new NotesWriter(source.repo, site),
    discovered: new DiscoveredBranchWriter(source.repo, site),
  };
}

describe("pushStatus", () => {
  it("pushes the status branch, notes and discovered branch to the remote", async () => {
    const work = makeWorkingRepo();
    const origin = makeBareFrom(work);
    const d = await daemon(origin);
    try {
      await d.status.write(new Map([["site.yaml", "phase: ready\n"]]), { desiredCommit: d.desired, message: "ready" });
      await d.notes.setNote(d.desired, "outcome: applied\n");
      await d.discovered.propose(d.desired, new Map([["machines/n1.yaml", "kind: Machine\n"]]), "discovered: n1");
      await pushStatus(d.source, refs);
      expect(sh(origin, "show", `gitrack/status/${site}:site.yaml`)).toBe("phase: ready");
      expect(sh(origin, "notes", `--ref=gitrack/${site}`, "show", d.desired)).toBe("outcome: applied");
      expect(sh(origin, "show", `gitrack/discovered/${site}:machines/n1.yaml`)).toBe("kind: Machine");
      // The tracked branch itself is never pushed.
      expect(sh(origin, "rev-parse", "main")).toBe(d.desired);
    } finally {
      await d.source.close();
    }
  });

  it("retries a push rejected by a racing writer and keeps both writers' work", async () => {
    const work = makeWorkingRepo();
    const origin = makeBareFrom(work);
    const a = await daemon(origin);
    const b = await daemon(origin);
    try {
      const first = a.desired;
      const second = commitFiles(work, { "m.yaml": "m\n" }, "second");
      sh(work, "push", "-q", origin, "main");
      await b.source.fetch();
      await a.source.fetch();

      // A writes and pushes first.
      const aStatus = await a.status.write(new Map([["site.yaml", "by: a\n"]]), { desiredCommit: first, message: "a" });
      await a.notes.setNote(first, "a only\n");
      await a.notes.setNote(second, "a: shared commit\n");
      await a.discovered.propose(first, new Map([["machines/from-a.yaml", "a\n"]]), "discovered: from-a");
      await pushStatus(a.source, refs);

      // B, unaware of A's push, writes its own and pushes: rejected, rebuilt, retried.
      await b.status.write(new Map([["site.yaml", "by: b\n"]]), { desiredCommit: second, message: "b" });
      await b.notes.setNote(second, "b: shared commit\n");
      await b.discovered.propose(second, new Map([["machines/from-b.yaml", "b\n"]]), "discovered: from-b");
      await pushStatus(b.source, refs);

      // Status: A's commit is in the history (nothing forced), B's state is on top.
      expect(sh(origin, "merge-base", "--is-ancestor", aStatus!, `gitrack/status/${site}`)).toBe("");
      expect(sh(origin, "show", `gitrack/status/${site}:site.yaml`)).toBe("by: b");
      expect(sh(origin, "log", "-1", "--format=%(trailers:key=Gitrack-Desired-Commit,valueonly)", `gitrack/status/${site}`)).toBe(second);
      // Notes: both sides' notes survive; on the commit both annotated, the later pusher (B) wins.
      expect(sh(origin, "notes", `--ref=gitrack/${site}`, "show", first)).toBe("a only");
      expect(sh(origin, "notes", `--ref=gitrack/${site}`, "show", second)).toBe("b: shared commit");
      // Discovered: both proposals are on the branch, which still builds on the tracked branch.
      const proposed = sh(origin, "ls-tree", "--name-only", `gitrack/discovered/${site}`, "machines/").split("\n");
      expect(proposed).toEqual(["machines/from-a.yaml", "machines/from-b.yaml"]);
      expect(sh(origin, "merge-base", "--is-ancestor", second, `gitrack/discovered/${site}`)).toBe("");
    } finally {
      await a.source.close();
      await b.source.close();
    }
  });

  it("pushes a discovered branch rebuilt on a moved tracked branch without forcing", async () => {
    const work = makeWorkingRepo();
    const origin = makeBareFrom(work);
    const d = await daemon(origin);
    try {
      await d.discovered.propose(d.desired, new Map([["machines/n1.yaml", "n1\n"]]), "discovered: n1");
      await pushStatus(d.source, refs);
      const pushedBefore = sh(origin, "rev-parse", `gitrack/discovered/${site}`);
      const moved = commitFiles(work, { "site.yaml": "kind: Site # v2\n" }, "site v2");
      sh(work, "push", "-q", origin, "main");
      await d.source.fetch();
      await d.discovered.propose(moved, new Map([["machines/n2.yaml", "n2\n"]]), "discovered: n2");
      await pushStatus(d.source, refs);
      const ref = `gitrack/discovered/${site}`;
      expect(sh(origin, "merge-base", "--is-ancestor", pushedBefore, ref)).toBe("");
      expect(sh(origin, "merge-base", "--is-ancestor", moved, ref)).toBe("");
      expect(sh(origin, "diff", "--name-only", moved, ref).split("\n")).toEqual(["machines/n1.yaml", "machines/n2.yaml"]);
    } finally {
      await d.source.close();
    }
  });

  it("fails without forcing when the remote refuses for another reason", async () => {
    const work = makeWorkingRepo();
    const origin = makeBareFrom(work);
    const d = await daemon(origin);
    try {
      await d.status.write(new Map([["site.yaml", "x: 1\n"]]), { desiredCommit: d.desired, message: "x" });
      mkdirSync(`${origin}/hooks`, { recursive: true });
      writeFileSync(`${origin}/hooks/pre-receive`, "#!/bin/sh\necho 'status pushes are closed' >&2\nexit 1\n");
      chmodSync(`${origin}/hooks/pre-receive`, 0o755);
      await expect(pushStatus(d.source, [statusRef(site)])).rejects.toThrow(/remote rejected|pre-receive/);
    } finally {
      await d.source.close();
    }
  });
});
