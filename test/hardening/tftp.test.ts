// Issue 8, TFTP: packets that used to stop the process or pin its memory and
// slots, sent from the client namespace (test/hardening/tftp-flood.ts), each
// followed by the site-still-served check.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canUseNetns } from "../lib/netns.js";
import { hasCommand } from "../daemon/harness.js";
import { ATTACKER, CLIENT, SERVER, attackFromClient, expectStillServing, fatalLines, rssKiB, startAttackSite, takeBaseline, type AttackSite, type Baseline } from "./harness.js";
import type { FloodResult } from "./tftp-flood.js";

const TOOLS = ["busybox", "curl", "git", "tftp", "mkfifo"].every(hasCommand);
const flood = (site: AttackSite, attack: string, args: string[] = [], from = ATTACKER) =>
  attackFromClient<FloodResult & { bytes?: number }>(site, "tftp-flood.ts", [attack, "--server", SERVER, "--bind", from, ...args]);

describe.skipIf(!canUseNetns() || !TOOLS)("TFTP under attack", () => {
  let site: AttackSite;
  let baseline: Baseline;

  beforeAll(async () => {
    site = await startAttackSite("tftp");
    baseline = await takeBaseline(site);
  });
  afterAll(async () => {
    await site?.close();
  });

  it("an ERROR at every port of the ephemeral range, from the sockets of transfers still opening or sending, does not stop the daemon", async () => {
    // Netascii reads of a 16 MiB file are still being prepared when their ERROR comes.
    const r = await flood(site, "error-spray", ["--file", "big.bin", "--count", "4"]);
    expect(r.sent).toBeGreaterThan(100_000);
    await expectStillServing(site, baseline);
  }, 120_000);

  it("50 netascii reads of a 16 MiB file at once are converted as they are sent: memory stays near its level and the site is served meanwhile", async () => {
    let peak = 0;
    const sampler = setInterval(() => {
      if (site.daemon.running) peak = Math.max(peak, rssKiB(site.daemon.child.pid!));
    }, 100);
    try {
      const storm = flood(site, "netascii", ["--file", "big.bin", "--count", "50", "--hold", "8000"]);
      await new Promise((r) => setTimeout(r, 3000));
      // While the storm is on: the attacker's own address may hold 8 transfers; the others are refused.
      await expectStillServing(site, baseline, { rssSlackMiB: 256 });
      const r = await storm;
      expect(r.bytes).toBeGreaterThan(0);
      expect(r.errors["too many transfers from your address"]).toBeGreaterThanOrEqual(42);
    } finally {
      clearInterval(sampler);
    }
    // In memory, each read held the file and its conversion: 50 of them took 1 GB.
    expect(peak - baseline.rssKiB).toBeLessThan(200 * 1024);
    await expectStillServing(site, baseline);
  }, 120_000);

  it("200 reads asking timeout=255 that are never acknowledged hold at most the attacker's share of the slots", async () => {
    const held = flood(site, "hold-slots", ["--file", "undionly.kpxe", "--count", "200", "--hold", "4000"]);
    await new Promise((r) => setTimeout(r, 1000));
    await expectStillServing(site, baseline);
    const r = await held;
    expect(r.errors["too many transfers from your address"]).toBeGreaterThanOrEqual(192);
  }, 120_000);

  it("a FIFO in the TFTP root is refused without waiting for a writer, so the thread pool (and the lease journal's fsync) is never blocked", async () => {
    execFileSync("mkfifo", [join(site.tftpRoot, "pipe")]);
    // From the checker's address: the attacker's may still hold its share of slots from the tests before.
    const r = await flood(site, "hold-slots", ["--file", "pipe", "--count", "8", "--hold", "1500"], CLIENT);
    expect(r.errors["file not found"]).toBe(8);
    await expectStillServing(site, baseline);
  }, 120_000);

  it("100,000 mutated requests and transfer packets leave the daemon serving", async () => {
    const r = await flood(site, "fuzz", ["--file", "undionly.kpxe", "--count", "100000", "--seed", "8"]);
    expect(r.sent).toBe(100_000);
    expect(r.answers).toBeGreaterThan(0);
    await expectStillServing(site, baseline);
  }, 180_000);

  it("SIGTERM during busy transfers stops the daemon cleanly, with exit status 0", async () => {
    const storm = flood(site, "netascii", ["--file", "big.bin", "--count", "8", "--hold", "4000"]).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1500));
    expect(site.daemon.running).toBe(true);
    await site.daemon.kill("SIGTERM");
    await storm;
    expect(site.daemon.child.signalCode).toBeNull();
    expect(site.daemon.child.exitCode).toBe(0);
    expect(fatalLines(site)).toEqual([]);
  }, 60_000);
});
