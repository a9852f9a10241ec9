import { afterAll, describe, expect, it } from "vitest";
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { RemoteSource, verifyWebhookSignature, watchLocalBranch } from "../../reconciler/source/watch.js";
import { cleanupTemp, commitFiles, makeBareFrom, makeWorkingRepo, sh, tempDir } from "./fixture.js";

afterAll(() => cleanupTemp());

/** Waits until `predicate` holds, polling; fails the test after `ms`. */
async function until(predicate: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("watchLocalBranch", () => {
  it("reports the current commit, then a commit made with git commit", async () => {
    const dir = makeWorkingRepo();
    const seen: string[] = [];
    // pollMs 0: only file events can explain a report.
    const w = await watchLocalBranch(dir, "main", (c) => seen.push(c), { pollMs: 0 });
    try {
      expect(seen).toEqual([sh(dir, "rev-parse", "HEAD")]);
      const next = commitFiles(dir, { "m.yaml": "m\n" }, "add m");
      await until(() => seen.includes(next));
      expect(w.commit).toBe(next);
    } finally {
      await w.close();
    }
  });

  it("sees a merge and ignores commits on other branches", async () => {
    const dir = makeWorkingRepo();
    sh(dir, "checkout", "-q", "-b", "feature");
    const feature = commitFiles(dir, { "f.yaml": "f\n" }, "feature");
    sh(dir, "checkout", "-q", "main");
    const seen: string[] = [];
    const w = await watchLocalBranch(dir, "main", (c) => seen.push(c), { pollMs: 0 });
    try {
      sh(dir, "branch", "-f", "other", feature);
      commitFiles(dir, { "g.yaml": "g\n" }, "on main");
      sh(dir, "merge", "-q", "--no-edit", "feature");
      const merged = sh(dir, "rev-parse", "HEAD");
      await until(() => seen.includes(merged));
      expect(seen.every((c) => c !== feature)).toBe(true);
    } finally {
      await w.close();
    }
  });

  it("sees a git push into a bare repository, also after git gc packed its refs", async () => {
    const work = makeWorkingRepo();
    const bare = makeBareFrom(work);
    const seen: string[] = [];
    const w = await watchLocalBranch(bare, "main", (c) => seen.push(c), { pollMs: 0 });
    try {
      const first = commitFiles(work, { "a.yaml": "a\n" }, "a");
      sh(work, "push", "-q", bare, "main");
      await until(() => seen.includes(first));
      sh(bare, "gc", "-q");
      const second = commitFiles(work, { "b.yaml": "b\n" }, "b");
      sh(work, "push", "-q", bare, "main");
      await until(() => seen.includes(second));
      sh(bare, "pack-refs", "--all");
      expect(w.commit).toBe(second);
    } finally {
      await w.close();
    }
  });

  it("watches a branch through a linked worktree, whose refs live in the main repository", async () => {
    const main = makeWorkingRepo();
    const linked = join(tempDir("gitrack-wt-"), "wt");
    sh(main, "worktree", "add", "-q", "-b", "site-a", linked);
    const seen: string[] = [];
    const w = await watchLocalBranch(linked, "site-a", (c) => seen.push(c), { pollMs: 0 });
    try {
      const next = commitFiles(linked, { "w.yaml": "w\n" }, "in worktree");
      await until(() => seen.includes(next));
    } finally {
      await w.close();
    }
  });

  it("notices a change through the poll when file events are not seen", async () => {
    const dir = makeWorkingRepo();
    const seen: string[] = [];
    // A debounce longer than the test: only the poll can report in time.
    const w = await watchLocalBranch(dir, "main", (c) => seen.push(c), { debounceMs: 60_000, pollMs: 100 });
    try {
      const next = commitFiles(dir, { "p.yaml": "p\n" }, "p");
      await until(() => seen.includes(next));
    } finally {
      await w.close();
    }
  });
});

describe("RemoteSource", () => {
  it("mirrors the tracked branch of a file:// remote and fetches new commits", async () => {
    const work = makeWorkingRepo();
    const origin = makeBareFrom(work);
    sh(origin, "branch", "other", "main");
    const stateDir = tempDir("gitrack-state-");
    const seen: string[] = [];
    const src = new RemoteSource({ url: `file://${origin}`, branch: "main", stateDir, intervalMs: 0, onCommit: (c) => seen.push(c) });
    try {
      const first = await src.start();
      expect(first).toBe(sh(origin, "rev-parse", "main"));
      const mirror = join(stateDir, "repo.git");
      expect(sh(mirror, "rev-parse", "--is-bare-repository")).toBe("true");
      expect(sh(mirror, "for-each-ref", "--format=%(refname)")).toBe("refs/heads/main");
      expect(sh(mirror, "config", "--list", "--local")).not.toContain("url");

      const next = commitFiles(work, { "n.yaml": "n\n" }, "n");
      sh(work, "push", "-q", origin, "main");
      expect(await src.fetch()).toBe(next);
      expect(seen).toEqual([first, next]);
      // Nothing new: no new report.
      await src.fetch();
      expect(seen).toHaveLength(2);
    } finally {
      await src.close();
    }
  });

  it("shares one follow-up fetch among triggers that arrive during a fetch", async () => {
    const work = makeWorkingRepo();
    const origin = makeBareFrom(work);
    const src = new RemoteSource({ url: `file://${origin}`, branch: "main", stateDir: tempDir("gitrack-state-"), intervalMs: 0 });
    try {
      await src.start();
      const next = commitFiles(work, { "t.yaml": "t\n" }, "t");
      sh(work, "push", "-q", origin, "main");
      const running = src.trigger();
      const later = [src.trigger(), src.trigger(), src.trigger()];
      expect(later[0]).toBe(later[1]);
      expect(later[1]).toBe(later[2]);
      expect(later[0]).not.toBe(running);
      expect(await running).toBe(next);
      expect(await Promise.all(later)).toEqual([next, next, next]);
    } finally {
      await src.close();
    }
  });

  it("never puts URL credentials into an error", async () => {
    const src = new RemoteSource({
      url: "http://robot:t0ken-s3cret@127.0.0.1:9/site.git",
      branch: "main",
      stateDir: tempDir("gitrack-state-"),
      intervalMs: 0,
      networkTimeoutMs: 10_000,
    });
    const err: Error = await src.start().then(
      () => new Error("fetch unexpectedly worked"),
      (e: Error) => e,
    );
    expect(err.message).toContain("git fetch");
    expect(err.message).toContain("http://***@127.0.0.1:9/site.git");
    expect(err.message).not.toContain("t0ken-s3cret");
    await src.close();
  });
});

describe("verifyWebhookSignature", () => {
  const secret = "webhook-secret";
  const body = Buffer.from('{"ref":"refs/heads/main"}');
  const sign = (key: string, data: Buffer) => `sha256=${createHmac("sha256", key).update(data).digest("hex")}`;

  it("accepts the signature GitHub sends for the body", () => {
    expect(verifyWebhookSignature(secret, body, sign(secret, body))).toBe(true);
  });

  it("rejects a signature made with another secret or over another body", () => {
    expect(verifyWebhookSignature(secret, body, sign("other", body))).toBe(false);
    expect(verifyWebhookSignature(secret, body, sign(secret, Buffer.from("{}")))).toBe(false);
    expect(verifyWebhookSignature(secret, body, sign(secret, body).replace("sha256=", "sha1="))).toBe(false);
    expect(verifyWebhookSignature(secret, body, "sha256=zz")).toBe(false);
  });

  it("rejects a request without a signature or a check without a secret", () => {
    expect(verifyWebhookSignature(secret, body, undefined)).toBe(false);
    expect(verifyWebhookSignature(secret, body, "")).toBe(false);
    expect(verifyWebhookSignature("", body, sign("", body))).toBe(false);
  });
});
