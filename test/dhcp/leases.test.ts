import { afterEach, describe, expect, it } from "vitest";
import { LeaseTable, type LeasePool } from "../../reconciler/services/dhcp/leases.js";
import { ipToInt } from "../../reconciler/services/dhcp/codec.js";
import { tempDir } from "./harness.js";

const dirs: Array<{ remove(): void }> = [];
afterEach(() => {
  while (dirs.length) dirs.pop()!.remove();
});

function pool(start = "10.0.0.100", end = "10.0.0.103"): LeasePool {
  return {
    name: "prov",
    network: ipToInt("10.0.0.0"),
    mask: ipToInt("255.255.255.0"),
    rangeStart: ipToInt(start),
    rangeEnd: ipToInt(end),
    excluded: new Set([ipToInt("10.0.0.1")]),
  };
}

async function table(opts: { now?: () => number; dir?: string } = {}): Promise<{ t: LeaseTable; dir: string }> {
  let dir = opts.dir;
  if (!dir) {
    const d = tempDir("leases");
    dirs.push(d);
    dir = d.path;
  }
  return { t: await LeaseTable.open(dir, { now: opts.now, offerHoldMs: 30_000, quarantineMs: 3_600_000, reclaimAfterMs: 1_000 }), dir };
}

const reserved: Record<string, string> = { "10.0.0.10": "aa:00:00:00:00:10", "10.0.0.101": "aa:00:00:00:00:99" };
const reservedBy = (ip: string): string | undefined => reserved[ip];
const A = "aa:00:00:00:00:0a";
const B = "aa:00:00:00:00:0b";
const C = "aa:00:00:00:00:0c";

describe("lease table", () => {
  it("offers a reserved client its reserved address even outside the range", async () => {
    const { t } = await table();
    expect(t.offer("aa:00:00:00:00:10", pool(), reservedBy, { reservedIp: "10.0.0.10" })).toBe("10.0.0.10");
    await t.close();
  });

  it("never offers an address reserved for another MAC from the range", async () => {
    const { t } = await table();
    const got = [A, B, C].map((m) => t.offer(m, pool(), reservedBy, {}));
    expect(got).toEqual(["10.0.0.100", "10.0.0.102", "10.0.0.103"]);
    expect(t.offer("aa:00:00:00:00:0d", pool(), reservedBy, {})).toBeUndefined();
    await t.close();
  });

  it("holds an offer so that a second client gets another address", async () => {
    const { t } = await table();
    const a = t.offer(A, pool(), reservedBy, { requestedIp: "10.0.0.102" });
    const b = t.offer(B, pool(), reservedBy, { requestedIp: "10.0.0.102" });
    expect(a).toBe("10.0.0.102");
    expect(b).not.toBe(a);
    expect(t.check(B, "10.0.0.102", pool(), reservedBy)).toBe("taken");
    await t.close();
  });

  it("binds durably: a reopened table still has the lease and refuses the address to others", async () => {
    const { t, dir } = await table();
    await t.commit(A, "10.0.0.100", pool(), 600, "a-host");
    await t.close();
    const { t: r } = await table({ dir });
    expect(r.activeLeaseOf(A)?.ip).toBe("10.0.0.100");
    expect(r.check(B, "10.0.0.100", pool(), reservedBy)).toBe("taken");
    expect(r.offer(B, pool(), reservedBy, {})).not.toBe("10.0.0.100");
    expect(r.offer(A, pool(), reservedBy, {})).toBe("10.0.0.100");
    await r.close();
  });

  it("gives an expired lease's address to another client only when nothing else is free", async () => {
    let now = 1_000_000;
    const { t } = await table({ now: () => now });
    await t.commit(A, "10.0.0.100", pool(), 60);
    now += 61_000;
    expect(t.offer(B, pool(), reservedBy, {})).toBe("10.0.0.102");
    expect(t.offer(C, pool(), reservedBy, {})).toBe("10.0.0.103");
    expect(t.offer("aa:00:00:00:00:0d", pool(), reservedBy, {})).toBe("10.0.0.100");
    await t.close();
  });

  it("shows one client's lease or offer without listing the table", async () => {
    const { t } = await table();
    const ip = t.offer(A, pool(), reservedBy, {})!;
    expect(t.infoOf(A)).toMatchObject({ ip, state: "offered", subnet: "prov" });
    await t.commit(A, ip, pool(), 600, "a");
    expect(t.infoOf(A)).toMatchObject({ ip, state: "bound", hostname: "a" });
    expect(t.infoOf(B)).toBeUndefined();
    await t.close();
  });

  it("keeps a released address for its client when it comes back", async () => {
    const { t } = await table();
    await t.commit(A, "10.0.0.103", pool(), 600);
    expect(await t.release(A, "10.0.0.103")).toBe(true);
    expect(t.activeLeaseOf(A)).toBeUndefined();
    expect(t.offer(A, pool(), reservedBy, {})).toBe("10.0.0.103");
    await t.close();
  });

  it("quarantines a declined address for everyone until the quarantine ends", async () => {
    let now = 1_000_000;
    const { t, dir } = await table({ now: () => now });
    await t.commit(A, "10.0.0.100", pool(), 600);
    expect(await t.decline(A, "10.0.0.100", pool())).toBe("quarantined");
    await t.close();
    const { t: r } = await table({ dir, now: () => now });
    expect(r.check(A, "10.0.0.100", pool(), reservedBy)).toBe("taken");
    expect(r.offer(A, pool(), reservedBy, {})).not.toBe("10.0.0.100");
    now += 3_600_001;
    expect(r.check(B, "10.0.0.100", pool(), reservedBy)).toBe("ok");
    await r.close();
  });

  it("refuses addresses outside the subnet, outside the range, or reserved for another MAC", async () => {
    const { t } = await table();
    expect(t.check(A, "10.9.0.5", pool(), reservedBy)).toBe("outside-subnet");
    expect(t.check(A, "10.0.0.50", pool(), reservedBy)).toBe("not-assignable");
    expect(t.check(A, "10.0.0.101", pool(), reservedBy)).toBe("not-assignable");
    expect(t.check(A, "10.0.0.1", pool(), reservedBy)).toBe("not-assignable");
    expect(t.check("aa:00:00:00:00:10", "10.0.0.100", pool(), reservedBy, "10.0.0.10")).toBe("not-assignable");
    await t.close();
  });

  it("moves a client to its new address and frees the old one in the same commit", async () => {
    const { t, dir } = await table();
    await t.commit(A, "10.0.0.100", pool(), 600);
    await t.commit(A, "10.0.0.102", pool(), 600);
    await t.close();
    const { t: r } = await table({ dir });
    expect(r.list().map((l) => [l.ip, l.mac])).toEqual([["10.0.0.102", A]]);
    await r.close();
  });

  it("never binds one address to two clients under concurrent commits and checks", async () => {
    const { t } = await table();
    const p = pool("10.0.0.100", "10.0.0.199");
    const macs = Array.from({ length: 150 }, (_, i) => `bb:00:00:00:00:${i.toString(16).padStart(2, "0")}`);
    const commits: Promise<unknown>[] = [];
    for (const m of macs) {
      const ip = t.offer(m, p, () => undefined, {});
      if (ip && t.check(m, ip, p, () => undefined) === "ok") commits.push(t.commit(m, ip, p, 600));
    }
    await Promise.all(commits);
    const ips = t.list().map((l) => l.ip);
    expect(ips.length).toBe(100);
    expect(new Set(ips).size).toBe(100);
    await t.close();
  });

  const mac = (i: number): string => `bb:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;

  it("takes back the oldest offer older than reclaimAfterMs when the range is full, and none younger", async () => {
    let now = 1_000_000;
    const { t } = await table({ now: () => now });
    const big = pool("10.0.0.100", "10.0.0.109"); // 10 addresses, .101 reserved: 9 free
    const first: string[] = [];
    for (let i = 0; i < 9; i++) first.push(t.offer(mac(i), big, reservedBy, {})!);
    expect(new Set(first).size).toBe(9);
    now += 500;
    expect(t.offer(C, big, reservedBy, {})).toBeUndefined(); // every offer younger than 1 s
    now += 600;
    expect(t.offer(C, big, reservedBy, {})).toBe(first[0]); // the oldest one
    expect(t.check(mac(0), first[0]!, big, reservedBy)).toBe("taken");
    await t.close();
  });

  it("keeps one relay's offers within half the range, taking back its own oldest first", async () => {
    const now = 1_000_000;
    const { t } = await table({ now: () => now });
    const big = pool("10.0.0.100", "10.0.0.109"); // 9 free
    const fromRelay: string[] = [];
    for (let i = 0; i < 20; i++) fromRelay.push(t.offer(mac(i), big, reservedBy, { source: "10.80.0.2" })!);
    expect(fromRelay.every((ip) => ip !== undefined)).toBe(true);
    expect(new Set(fromRelay).size).toBe(5); // its share, floor(10 / 2), cycled over
    const others = [A, B, C, "aa:00:00:00:00:0d"].map((m) => t.offer(m, big, reservedBy, {}));
    expect(others.every((ip) => ip !== undefined && !fromRelay.slice(-5).includes(ip))).toBe(true);
    expect(new Set(others).size).toBe(4);
    await t.close();
  });

  it("lets one client quarantine at most two addresses, and at most an eighth of the range at once", async () => {
    const now = 1_000_000;
    const { t } = await table({ now: () => now });
    const wide: LeasePool = { ...pool("10.0.0.100", "10.0.0.163"), name: "prov" }; // 64 addresses: cap 8
    const results: string[] = [];
    for (let i = 0; i < 40; i++) {
      const ip = t.offer(mac(i), wide, reservedBy, {})!;
      results.push(await t.decline(mac(i), ip, wide));
    }
    expect(results.slice(0, 8).every((r) => r === "quarantined")).toBe(true);
    expect(results.slice(8).every((r) => r === "replaced-oldest")).toBe(true);
    expect(t.counts().declined).toBe(8);
    // One client declining again and again: two quarantines, then not believed.
    const again: string[] = [];
    for (let k = 0; k < 4; k++) {
      const ip = t.offer(A, wide, reservedBy, {})!;
      again.push(await t.decline(A, ip, wide));
    }
    expect(again.slice(2)).toEqual(["client-budget", "client-budget"]);
    expect(t.counts().declined).toBe(8);
    await t.close();
  });
});
