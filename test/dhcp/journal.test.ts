import { afterEach, describe, expect, it } from "vitest";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { JournalStore } from "../../reconciler/store/journal.js";
import { REPO, tempDir } from "./harness.js";

const dirs: Array<{ remove(): void }> = [];
function dir(): string {
  const d = tempDir("journal");
  dirs.push(d);
  return d.path;
}
afterEach(() => {
  while (dirs.length) dirs.pop()!.remove();
});

describe("JournalStore", () => {
  it("keeps puts and deletes across a close and reopen", async () => {
    const d = dir();
    const s = await JournalStore.open<{ n: number }>(d, "t");
    await s.put("a", { n: 1 });
    await s.put("b", { n: 2 });
    await s.put("a", { n: 3 });
    await s.delete("b");
    await s.close();
    const r = await JournalStore.open<{ n: number }>(d, "t");
    expect([...r.entries()]).toEqual([["a", { n: 3 }]]);
    await r.close();
  });

  it("shows a put to readers at once, before it is durable", async () => {
    const s = await JournalStore.open<number>(dir(), "t");
    const p = s.put("k", 1);
    expect(s.get("k")).toBe(1);
    await p;
    await s.close();
  });

  it("commits puts issued in the same tick with one write and one fdatasync", async () => {
    const s = await JournalStore.open<number>(dir(), "t");
    await Promise.all(Array.from({ length: 500 }, (_, i) => s.put(`k${i}`, i)));
    expect(s.counters.batches).toBe(1);
    expect(s.counters.records).toBe(500);
    await s.close();
  });

  it("drops a torn last line on open and keeps appending cleanly after it", async () => {
    const d = dir();
    const s = await JournalStore.open<number>(d, "t");
    await s.put("a", 1);
    await s.put("b", 2);
    await s.close();
    const journal = join(d, "t.journal.ndjson");
    appendFileSync(journal, '{"k":"c","v":');
    const warnings: string[] = [];
    const r = await JournalStore.open<number>(d, "t", { onWarning: (m) => warnings.push(m) });
    expect([...r.entries()]).toEqual([["a", 1], ["b", 2]]);
    expect(r.recovery.truncatedBytes).toBe('{"k":"c","v":'.length);
    expect(warnings.join()).toMatch(/torn last line/);
    await r.put("d", 4);
    await r.close();
    expect(readFileSync(journal, "utf8").trim().split("\n").map((l) => JSON.parse(l).k)).toEqual(["a", "b", "d"]);
  });

  it("keeps a whole last record that lacks its newline", async () => {
    const d = dir();
    writeFileSync(join(d, "t.journal.ndjson"), '{"k":"a","v":1}\n{"k":"b","v":2}');
    const r = await JournalStore.open<number>(d, "t");
    await r.put("c", 3);
    await r.close();
    const again = await JournalStore.open<number>(d, "t");
    expect([...again.entries()]).toEqual([["a", 1], ["b", 2], ["c", 3]]);
    await again.close();
  });

  it("compacts into a snapshot and an empty journal, and recovers from both", async () => {
    const d = dir();
    const s = await JournalStore.open<number>(d, "t", { compactAfter: 50 });
    for (let i = 0; i < 200; i++) await s.put(`k${i % 10}`, i);
    expect(s.counters.compactions).toBeGreaterThan(0);
    await s.put("last", 1);
    await s.close();
    expect(existsSync(join(d, "t.snapshot.json"))).toBe(true);
    expect(readFileSync(join(d, "t.journal.ndjson"), "utf8").split("\n").length).toBeLessThan(60);
    const r = await JournalStore.open<number>(d, "t");
    expect(r.size).toBe(11);
    expect(r.get("k9")).toBe(199);
    expect(r.get("last")).toBe(1);
    await r.close();
  });

  it("replays a journal that a crash left behind after the snapshot was renamed", async () => {
    const d = dir();
    const s = await JournalStore.open<number>(d, "t");
    await s.put("a", 1);
    await s.put("b", 2);
    await s.compact();
    await s.close();
    // The state a crash between "rename snapshot" and "empty journal" leaves:
    // the journal still holds records the snapshot already has.
    writeFileSync(join(d, "t.journal.ndjson"), '{"k":"a","v":1}\n{"k":"b","v":2}\n{"k":"b","d":1}\n');
    writeFileSync(join(d, "t.snapshot.json.tmp"), "{half");
    const r = await JournalStore.open<number>(d, "t");
    expect([...r.entries()]).toEqual([["a", 1]]);
    expect(existsSync(join(d, "t.snapshot.json.tmp"))).toBe(false);
    await r.close();
  });

  it("loses no acknowledged put when its process is killed with SIGKILL", async () => {
    const d = dir();
    const script = join(d, "writer.mts");
    writeFileSync(
      script,
      `import { JournalStore } from ${JSON.stringify(join(REPO, "reconciler/store/journal.ts"))};
       const s = await JournalStore.open(process.argv[2], "t", { compactAfter: 300 });
       let i = 0;
       for (;;) {
         const batch = [];
         for (let j = 0; j < 20; j++, i++) batch.push(s.put("k" + i, { i, pad: "x".repeat(100) }).then(() => i));
         const acked = await Promise.all(batch);
         process.stdout.write(Math.max(...acked) + "\\n");
       }`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script, d], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let acked = -1;
    child.stdout.setEncoding("utf8");
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (c: string) => {
        const nums = c.trim().split("\n").map(Number);
        acked = Math.max(acked, ...nums);
        if (acked > 1500) {
          child.kill("SIGKILL");
          resolve();
        }
      });
      child.once("exit", (code) => (acked > 1500 ? resolve() : reject(new Error(`writer exited ${code}`))));
    });
    await new Promise((r) => child.once("exit", r));
    const r = await JournalStore.open<{ i: number }>(d, "t");
    for (let i = 0; i < acked; i++) expect(r.get(`k${i}`)?.i, `k${i}`).toBe(i);
    await r.close();
  }, 60_000);
});
