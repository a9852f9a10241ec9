// Issue 8, DHCP: floods that used to silence the server or drain its range,
// sent from the client namespace (test/hardening/dhcp-flood.ts), each
// followed by the site-still-served check.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canUseNetns } from "../lib/netns.js";
import { parseJsonLines } from "../lib/json-log.js";
import { hasCommand } from "../daemon/harness.js";
import { ATTACKER, KNOWN, RELAY, SERVER, attackFromClient, expectStillServing, leaseRecords, startAttackSite, takeBaseline, udhcpcLease, type AttackSite, type Baseline } from "./harness.js";
import type { DhcpFloodResult } from "./dhcp-flood.js";

const TOOLS = ["busybox", "curl", "git", "tftp"].every(hasCommand);
const flood = (site: AttackSite, attack: string, args: string[] = []) => attackFromClient<DhcpFloodResult>(site, "dhcp-flood.ts", [attack, "--server", SERVER, ...args], 180_000);

/** The daemon's log lines since `from` (an index into its lines) whose msg matches. */
function linesSince(site: AttackSite, from: number, msg: RegExp): Array<Record<string, unknown>> {
  return parseJsonLines(site.daemon.log())
    .slice(from)
    .filter((l) => msg.test(String(l.msg ?? "")));
}
const lineCount = (site: AttackSite) => parseJsonLines(site.daemon.log()).length;

describe.skipIf(!canUseNetns() || !TOOLS)("DHCP under attack", () => {
  let site: AttackSite;
  let baseline: Baseline;

  beforeAll(async () => {
    site = await startAttackSite("dhcp");
    // The known machine renews from its reserved address (RENEWING: ciaddr set, answer unicast to it).
    site.pair.client.run("ip", ["addr", "add", `${KNOWN.ip}/32`, "dev", site.pair.clientIf]);
    baseline = await takeBaseline(site);
  });
  afterAll(async () => {
    await site?.close();
  });

  it("5,000 DISCOVERs with spoofed relay addresses on the local subnet do not silence relayed or renewing clients, and are logged once per interval", async () => {
    const from = lineCount(site);
    const attack = flood(site, "spoof-relay", ["--bind", ATTACKER, "--net", "10.79.0", "--count", "5000", "--pps", "2000"]);
    await new Promise((r) => setTimeout(r, 1000));
    // While the flood is on: a real relay's client and a renewing client are answered within a second.
    const relayed = await flood(site, "probe-relayed", ["--relay", RELAY, "--timeout", "2000"]);
    const renew = await flood(site, "probe-renew", ["--ciaddr", KNOWN.ip, "--mac", KNOWN.mac, "--timeout", "2000"]);
    const r = await attack;
    expect(r.sent).toBe(5000);
    expect(relayed.answered).toBe(true);
    expect(relayed.ms).toBeLessThan(1000);
    expect(renew.answered).toBe(true);
    expect(renew.ms).toBeLessThan(1000);
    // Nothing was answered to a giaddr where no relay lives.
    expect(r.replies.offer ?? 0).toBe(0);
    await expectStillServing(site, baseline);
    expect(linesSince(site, from, /not a relay/).length).toBeLessThanOrEqual(2);
    expect(linesSince(site, from, /reply not sent/).length).toBeLessThanOrEqual(2);
  }, 120_000);

  it("5,000 new MACs through a relay, then 5,000 on the wire, leave the relayed range answering and a new local machine a lease, logged once per interval", async () => {
    const from = lineCount(site);
    const viaRelay = await flood(site, "new-macs", ["--relay", RELAY, "--count", "5000", "--pps", "2000"]);
    expect(viaRelay.sent).toBe(5000);
    const relayed = await flood(site, "probe-relayed", ["--relay", RELAY, "--timeout", "2000"]);
    expect(relayed.answered).toBe(true);

    const local = await flood(site, "new-macs", ["--bind", ATTACKER, "--count", "5000", "--pps", "2000"]);
    expect(local.sent).toBe(5000);
    // A machine never seen before, right after the flood: its DISCOVERs reclaim an unconfirmed offer.
    const lease = await udhcpcLease(site, "02:79:00:00:00:42", "gtnew", 3);
    expect(lease?.ip).toMatch(/^10\.79\.0\.2\d\d$/);
    await expectStillServing(site, baseline);
    // One warning per subnet and interval, not one per packet (4,762 before).
    expect(linesSince(site, from, /dynamic range exhausted/).length).toBeLessThanOrEqual(6);
  }, 180_000);

  it("200 new MACs that each DECLINE their offer cannot quarantine more than an eighth of the range", async () => {
    const from = lineCount(site);
    const r = (await flood(site, "decline", ["--count", "200", "--pps", "200"])) as DhcpFloodResult & { declined: number };
    expect(r.declined).toBeGreaterThan(6);
    const lease = await udhcpcLease(site, "02:79:00:00:00:43", "gtnew2", 3);
    expect(lease?.ip).toMatch(/^10\.79\.0\.2\d\d$/);
    // The store holds at most an eighth of the 50-address range in quarantine.
    const quarantined = quarantinedIps(site.stateDir);
    expect(quarantined.length).toBeGreaterThan(0);
    expect(quarantined.length).toBeLessThanOrEqual(6);
    expect(linesSince(site, from, /declined/).length).toBeLessThanOrEqual(6);
    await expectStillServing(site, baseline);
  }, 120_000);

  it("relayed requests with a 255-byte option 82 and an oversized option 97 are answered (without the echo they cannot carry) and logged once", async () => {
    const from = lineCount(site);
    const r = await flood(site, "big-options", ["--relay", RELAY, "--count", "300", "--pps", "1000"]);
    expect(r.sent).toBe(300);
    expect(r.replies.offer ?? 0).toBeGreaterThan(200);
    expect(r.replies.unparsable ?? 0).toBe(0);
    expect(linesSince(site, from, /option 97|relay agent information/).length).toBeLessThanOrEqual(4);
    await expectStillServing(site, baseline);
  }, 120_000);

  it("100,000 mutated requests to ports 67 and 4011, from the wire and from a relay, leave the daemon serving", async () => {
    const r = await flood(site, "fuzz", ["--bind", ATTACKER, "--relay", RELAY, "--count", "100000", "--pps", "20000", "--seed", "8"]);
    expect(r.sent).toBe(100_000);
    expect(Object.values(r.replies).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    await expectStillServing(site, baseline);
  }, 180_000);
});

/** Addresses the lease store on disk holds as declined and not yet expired. */
function quarantinedIps(stateDir: string): string[] {
  const now = Date.now();
  return [...leaseRecords(stateDir).leases].filter(([, r]) => r.state === "declined" && r.expiresAt > now).map(([ip]) => ip);
}
