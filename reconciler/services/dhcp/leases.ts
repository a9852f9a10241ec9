// The lease table (RFC 2131 §4.3): which address belongs to which client.
// Bound leases, releases and declines are kept in a JournalStore keyed by
// address, so they survive restarts and kill -9; offers are held in memory
// only, for a short while, so that two clients are never offered the same
// free address at once.
//
// Invariants:
// - one record per address, so an address is never bound to two clients;
// - a client (MAC) has at most one record;
// - an address reserved for one MAC is never offered or bound to another;
// - a declined address is quarantined (given to nobody) for quarantineMs;
//   at most an eighth of a range is quarantined at once, and one client
//   quarantines at most two addresses (a DECLINE flood cannot drain a range);
// - offers from one source (a relay) hold at most half a range, and when a
//   range is full the oldest offer past `reclaimAfterMs` makes room (a
//   DISCOVER flood cannot starve new machines for the whole hold time).
import { JournalStore } from "../../store/journal.js";
import { intToIp, ipToInt } from "./codec.js";

export type LeaseState = "bound" | "released" | "declined";

/** What is stored per address. */
export interface LeaseRecord {
  mac: string;
  subnet: string;
  state: LeaseState;
  /** Milliseconds since the epoch: end of the lease, or of the quarantine. */
  expiresAt: number;
  hostname?: string;
  updatedAt: number;
}

/** One row of leases() for status and the API. */
export interface LeaseInfo {
  ip: string;
  mac: string;
  subnet: string;
  /** "offered" is in memory only; "expired" is a bound lease past its end. */
  state: LeaseState | "offered" | "expired";
  expiresAt: string;
  hostname?: string;
}

/** An address pool as the lease table needs it (built from a DhcpSubnet). */
export interface LeasePool {
  name: string;
  /** Network address and mask as unsigned 32-bit integers. */
  network: number;
  mask: number;
  /** Dynamic range, inclusive; absent when the subnet has no range. */
  rangeStart?: number;
  rangeEnd?: number;
  /** Addresses never handed out (the server's own, the gateway). */
  excluded: ReadonlySet<number>;
}

/** Answers "for which MAC is this address reserved?" (undefined: for nobody). */
export type ReservedBy = (ip: string) => string | undefined;

export type AssignCheck = "ok" | "outside-subnet" | "not-assignable" | "taken";

interface Offer {
  mac: string;
  ip: number;
  subnet: string;
  /** Where the DISCOVER came from: a relay's giaddr, or "local". */
  source: string;
  at: number;
  expiresAt: number;
}

/** What one DECLINE did. */
export type DeclineResult = "quarantined" | "not-ours" | "client-budget" | "replaced-oldest";

/** Share of a range one relay's offers may hold. */
const SOURCE_OFFER_SHARE = 0.5;
/** Share of a range that may be quarantined at once. */
const QUARANTINE_SHARE = 1 / 8;
/** Live quarantines one client may cause. */
const QUARANTINES_PER_CLIENT = 2;

export interface LeaseTableOptions {
  /** How long an OFFER keeps its address for the client (default 30 s). */
  offerHoldMs?: number;
  /** How long a declined address is given to nobody (default 24 h, as Kea). */
  quarantineMs?: number;
  /** A full range takes back offers older than this (default 1 s). */
  reclaimAfterMs?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** Passed to the store. */
  sync?: boolean;
  compactAfter?: number;
  onWarning?: (message: string) => void;
}

export function inSubnet(pool: Pick<LeasePool, "network" | "mask">, ip: number): boolean {
  return ((ip & pool.mask) >>> 0) === pool.network;
}

export class LeaseTable {
  private readonly byMac = new Map<string, string>();
  private readonly offers = new Map<number, Offer>();
  private readonly offersByMac = new Map<string, Offer>();
  /** Per pool, its offers oldest first (Map keeps insertion order). */
  private readonly poolOffers = new Map<string, Map<number, Offer>>();
  /** Per pool and source, that source's offers oldest first. */
  private readonly sourceOffers = new Map<string, Map<number, Offer>>();
  /** Per subnet, its live quarantines oldest first (ip → record). */
  private readonly quarantines = new Map<string, Map<string, LeaseRecord>>();
  private readonly reclaimAfterMs: number;
  private readonly cursors = new Map<string, number>();
  private readonly offerHoldMs: number;
  private readonly quarantineMs: number;
  private readonly now: () => number;

  private constructor(
    private readonly store: JournalStore<LeaseRecord>,
    opts: LeaseTableOptions,
  ) {
    this.offerHoldMs = opts.offerHoldMs ?? 30_000;
    this.quarantineMs = opts.quarantineMs ?? 86_400_000;
    this.reclaimAfterMs = opts.reclaimAfterMs ?? 1_000;
    this.now = opts.now ?? Date.now;
    // Rebuild the MAC index; should two records name one MAC (not written
    // by this code, but cheap to survive), the newest wins.
    for (const [ip, rec] of store.entries()) {
      const cur = this.byMac.get(rec.mac);
      if (!cur || (store.get(cur)?.updatedAt ?? 0) < rec.updatedAt) this.byMac.set(rec.mac, ip);
    }
    const now = this.now();
    const declined = [...store.entries()].filter(([, r]) => r.state === "declined" && r.expiresAt > now).sort((a, b) => a[1].updatedAt - b[1].updatedAt);
    for (const [ip, rec] of declined) this.quarantinesOf(rec.subnet).set(ip, rec);
  }

  static async open(stateDir: string, opts: LeaseTableOptions = {}): Promise<LeaseTable> {
    const store = await JournalStore.open<LeaseRecord>(stateDir, "dhcp-leases", {
      sync: opts.sync,
      compactAfter: opts.compactAfter,
      onWarning: opts.onWarning,
    });
    return new LeaseTable(store, opts);
  }

  get storeCounters(): JournalStore<LeaseRecord>["counters"] {
    return this.store.counters;
  }

  close(): Promise<void> {
    return this.store.close();
  }

  /** The client's record (any state), if it has one. */
  recordOf(mac: string): ({ ip: string } & LeaseRecord) | undefined {
    const ip = this.byMac.get(mac);
    if (!ip) return undefined;
    const rec = this.store.get(ip);
    return rec && rec.mac === mac ? { ip, ...rec } : undefined;
  }

  /** The client's lease if it is bound and unexpired. */
  activeLeaseOf(mac: string): ({ ip: string } & LeaseRecord) | undefined {
    const r = this.recordOf(mac);
    return r && r.state === "bound" && r.expiresAt > this.now() ? r : undefined;
  }

  /**
   * Who keeps this address from `mac` right now: another client's unexpired
   * lease or offer, or a quarantine. undefined when nothing does.
   */
  blocker(ip: string, mac: string): { mac: string; why: "bound" | "offered" | "declined" } | undefined {
    const now = this.now();
    const rec = this.store.get(ip);
    if (rec) {
      if (rec.state === "declined" && rec.expiresAt > now) return { mac: rec.mac, why: "declined" };
      if (rec.state === "bound" && rec.expiresAt > now && rec.mac !== mac) return { mac: rec.mac, why: "bound" };
    }
    const off = this.offers.get(ipToInt(ip));
    if (off && off.mac !== mac && off.expiresAt > now) return { mac: off.mac, why: "offered" };
    return undefined;
  }

  /**
   * May `mac` have `ip` in `pool`? "outside-subnet": wrong network;
   * "not-assignable": network/broadcast/excluded, reserved for another MAC,
   * or (when `reservedIp` is not this ip) outside the dynamic range;
   * "taken": another client holds it, or it is quarantined.
   */
  check(mac: string, ip: string, pool: LeasePool, reservedBy: ReservedBy, reservedIp?: string): AssignCheck {
    const n = ipToInt(ip);
    if (!inSubnet(pool, n)) return "outside-subnet";
    if (!this.usable(n, pool)) return "not-assignable";
    const owner = reservedBy(ip);
    if (owner !== undefined && owner !== mac) return "not-assignable";
    if (reservedIp !== undefined) {
      if (reservedIp !== ip) return "not-assignable";
    } else if (!inRange(pool, n)) {
      return "not-assignable";
    }
    return this.blocker(ip, mac) ? "taken" : "ok";
  }

  /**
   * RFC 2131 §4.3.1: picks an address to offer and holds it for the client.
   * Order: the address already offered to it, its reservation, its current
   * or previous lease, the address it asked for, a never-used address from
   * the range, then the longest-expired one. undefined when none is free.
   */
  offer(mac: string, pool: LeasePool, reservedBy: ReservedBy, want: { reservedIp?: string; requestedIp?: string; source?: string }): string | undefined {
    const now = this.now();
    const source = want.source ?? "local";
    let ip: string | undefined;
    if (want.reservedIp !== undefined) {
      if (this.check(mac, want.reservedIp, pool, reservedBy, want.reservedIp) === "ok") ip = want.reservedIp;
    } else if (pool.rangeStart !== undefined) {
      const prior = this.offersByMac.get(mac);
      const candidates = [
        prior && prior.expiresAt > now ? intToIp(prior.ip) : undefined,
        this.recordOf(mac)?.state !== "declined" ? this.recordOf(mac)?.ip : undefined,
        want.requestedIp,
      ];
      for (const c of candidates) {
        if (c !== undefined && this.check(mac, c, pool, reservedBy) === "ok") {
          ip = c;
          break;
        }
      }
      // A relay past its share gives up its own oldest offer first, so
      // that one relay cannot hold the whole range.
      if (ip === undefined && source !== "local") {
        const own = this.sourceOffers.get(`${pool.name}\0${source}`);
        const share = Math.max(1, Math.floor(rangeSize(pool) * SOURCE_OFFER_SHARE));
        if (own && own.size >= share) ip = this.reclaim(mac, own.values(), pool, reservedBy, now, 0);
      }
      ip ??= this.freeAddress(mac, pool, reservedBy);
      // Full: the oldest offer nobody has taken up within reclaimAfterMs
      // makes room (a client answers its offer within milliseconds).
      ip ??= this.reclaim(mac, this.poolOffers.get(pool.name)?.values(), pool, reservedBy, now, this.reclaimAfterMs);
    }
    if (ip === undefined) return undefined;
    this.holdOffer(mac, ipToInt(ip), pool.name, source, now);
    return ip;
  }

  /**
   * Binds ip to mac until now + leaseSeconds and resolves once that is on
   * disk (RFC 2131 §4.3.2: the ACK must not precede the durable lease). The
   * in-memory table changes synchronously, so a concurrent request for the
   * same address already sees it taken.
   */
  async commit(mac: string, ip: string, pool: LeasePool, leaseSeconds: number, hostname?: string): Promise<LeaseRecord> {
    const now = this.now();
    this.dropOffer(mac);
    const writes: Promise<void>[] = [];
    const old = this.byMac.get(mac);
    if (old !== undefined && old !== ip && this.store.get(old)?.mac === mac) {
      const oldRec = this.store.get(old)!;
      // A quarantine outlives its decliner's next lease.
      if (oldRec.state !== "declined") writes.push(this.store.delete(old));
    }
    const rec: LeaseRecord = {
      mac,
      subnet: pool.name,
      state: "bound",
      expiresAt: now + leaseSeconds * 1000,
      updatedAt: now,
      ...(hostname ? { hostname } : {}),
    };
    this.byMac.set(mac, ip);
    writes.push(this.store.put(ip, rec));
    await Promise.all(writes);
    return rec;
  }

  /** RFC 2131 §4.3.4: the client gives the address back. */
  async release(mac: string, ip: string): Promise<boolean> {
    this.dropOffer(mac);
    const rec = this.store.get(ip);
    if (!rec || rec.mac !== mac || rec.state !== "bound") return false;
    const now = this.now();
    // Kept, expired, so that the client gets the same address next time
    // if nobody else has taken it.
    await this.store.put(ip, { ...rec, state: "released", expiresAt: now, updatedAt: now });
    return true;
  }

  /**
   * RFC 2131 §4.3.3: the client found the address in use by someone else.
   * The address is quarantined; the client's binding to it ends. Bounded:
   * a client with two live quarantines is not believed again, and past an
   * eighth of the range the oldest quarantine is lifted for the new one.
   */
  async decline(mac: string, ip: string, pool: LeasePool): Promise<DeclineResult> {
    const rec = this.store.get(ip);
    const off = this.offers.get(ipToInt(ip));
    const ours = (rec && rec.mac === mac && rec.state === "bound") || (off && off.mac === mac);
    if (!ours) return "not-ours";
    this.dropOffer(mac);
    const now = this.now();
    const subnet = rec?.subnet ?? pool.name;
    const q = this.quarantinesOf(subnet);
    this.expireQuarantines(q, now);
    let byClient = 0;
    for (const r of q.values()) if (r.mac === mac) byClient++;
    if (byClient >= QUARANTINES_PER_CLIENT) return "client-budget";
    if (this.byMac.get(mac) === ip) this.byMac.delete(mac);
    const writes: Promise<void>[] = [];
    let result: DeclineResult = "quarantined";
    const cap = Math.max(1, Math.floor(rangeSize(pool) * QUARANTINE_SHARE));
    while (q.size >= cap) {
      const [oldest] = q.keys();
      q.delete(oldest!);
      const old = this.store.get(oldest!);
      if (old?.state === "declined") writes.push(this.store.delete(oldest!));
      result = "replaced-oldest";
    }
    const next: LeaseRecord = { mac, subnet, state: "declined", expiresAt: now + this.quarantineMs, updatedAt: now };
    q.delete(ip);
    q.set(ip, next);
    writes.push(this.store.put(ip, next));
    await Promise.all(writes);
    return result;
  }

  /** The client chose another server's offer (RFC 2131 §4.3.2). */
  forgetOffer(mac: string): void {
    this.dropOffer(mac);
  }

  /** Drops offers that have run out (called periodically). */
  sweep(): void {
    const now = this.now();
    for (const off of [...this.offers.values()]) if (off.expiresAt <= now) this.unlinkOffer(off);
    for (const q of this.quarantines.values()) this.expireQuarantines(q, now);
  }

  /** The client's row as list() would show it (its offer if it has no record). */
  infoOf(mac: string): LeaseInfo | undefined {
    const now = this.now();
    const rec = this.recordOf(mac);
    const off = this.offersByMac.get(mac);
    if (off && off.expiresAt > now && !(rec && rec.state === "bound" && rec.expiresAt > now)) {
      return { ip: intToIp(off.ip), mac, subnet: off.subnet, state: "offered", expiresAt: new Date(off.expiresAt).toISOString() };
    }
    if (!rec) return undefined;
    const state = rec.state === "bound" && rec.expiresAt <= now ? "expired" : rec.state;
    return { ip: rec.ip, mac, subnet: rec.subnet, state, expiresAt: new Date(rec.expiresAt).toISOString(), ...(rec.hostname ? { hostname: rec.hostname } : {}) };
  }

  list(): LeaseInfo[] {
    const now = this.now();
    const out: LeaseInfo[] = [];
    for (const [ip, rec] of this.store.entries()) {
      const state = rec.state === "bound" && rec.expiresAt <= now ? "expired" : rec.state;
      out.push({ ip, mac: rec.mac, subnet: rec.subnet, state, expiresAt: new Date(rec.expiresAt).toISOString(), ...(rec.hostname ? { hostname: rec.hostname } : {}) });
    }
    for (const off of this.offers.values()) {
      if (off.expiresAt <= now) continue;
      const ip = intToIp(off.ip);
      const rec = this.store.get(ip);
      if (rec && rec.mac === off.mac && rec.state === "bound" && rec.expiresAt > now) continue;
      out.push({ ip, mac: off.mac, subnet: off.subnet, state: "offered", expiresAt: new Date(off.expiresAt).toISOString() });
    }
    return out.sort((a, b) => ipToInt(a.ip) - ipToInt(b.ip));
  }

  /** Counts for metrics. */
  counts(): { bound: number; offered: number; declined: number } {
    const now = this.now();
    let bound = 0;
    let declined = 0;
    for (const rec of this.store.entries()) {
      if (rec[1].state === "bound" && rec[1].expiresAt > now) bound++;
      else if (rec[1].state === "declined" && rec[1].expiresAt > now) declined++;
    }
    let offered = 0;
    for (const off of this.offers.values()) if (off.expiresAt > now) offered++;
    return { bound, offered, declined };
  }

  private holdOffer(mac: string, ip: number, subnet: string, source: string, now: number): void {
    this.dropOffer(mac);
    const held = this.offers.get(ip);
    if (held) this.unlinkOffer(held);
    const off: Offer = { mac, ip, subnet, source, at: now, expiresAt: now + this.offerHoldMs };
    this.offers.set(ip, off);
    this.offersByMac.set(mac, off);
    mapOf(this.poolOffers, subnet).set(ip, off);
    mapOf(this.sourceOffers, `${subnet}\0${source}`).set(ip, off);
  }

  private dropOffer(mac: string): void {
    const off = this.offersByMac.get(mac);
    if (off) this.unlinkOffer(off);
  }

  private unlinkOffer(off: Offer): void {
    if (this.offersByMac.get(off.mac) === off) this.offersByMac.delete(off.mac);
    if (this.offers.get(off.ip) === off) this.offers.delete(off.ip);
    const inPool = this.poolOffers.get(off.subnet);
    if (inPool?.get(off.ip) === off) inPool.delete(off.ip);
    const key = `${off.subnet}\0${off.source}`;
    const bySource = this.sourceOffers.get(key);
    if (bySource?.get(off.ip) === off) {
      bySource.delete(off.ip);
      if (bySource.size === 0) this.sourceOffers.delete(key);
    }
  }

  /**
   * Takes back the oldest offer (of `offers`, oldest first) made at least
   * minAgeMs ago whose address `mac` may have, and returns that address.
   */
  private reclaim(mac: string, offers: Iterable<Offer> | undefined, pool: LeasePool, reservedBy: ReservedBy, now: number, minAgeMs: number): string | undefined {
    if (!offers) return undefined;
    for (const off of offers) {
      if (now - off.at < minAgeMs) return undefined;
      if (off.mac === mac) continue;
      const ip = intToIp(off.ip);
      this.unlinkOffer(off);
      if (this.check(mac, ip, pool, reservedBy) === "ok") return ip;
    }
    return undefined;
  }

  private quarantinesOf(subnet: string): Map<string, LeaseRecord> {
    return mapOf(this.quarantines, subnet);
  }

  private expireQuarantines(q: Map<string, LeaseRecord>, now: number): void {
    for (const [ip, r] of q) {
      if (r.expiresAt > now && this.store.get(ip) === r) continue;
      q.delete(ip);
    }
  }

  private usable(n: number, pool: LeasePool): boolean {
    const bcast = (pool.network | ~pool.mask) >>> 0;
    // /31 and /32 have no network or broadcast address (RFC 3021).
    if (pool.mask !== 0xffffffff && pool.mask !== 0xfffffffe && (n === pool.network || n === bcast)) return false;
    return !pool.excluded.has(n);
  }

  /**
   * A free range address: first one never used (scanning on from where the
   * last scan stopped, so allocation is O(1) while the range has room), else
   * the one whose lease ended longest ago.
   */
  private freeAddress(mac: string, pool: LeasePool, reservedBy: ReservedBy): string | undefined {
    const start = pool.rangeStart!;
    const end = pool.rangeEnd!;
    const size = end - start + 1;
    if (size <= 0) return undefined;
    let cur = this.cursors.get(pool.name) ?? start;
    if (cur < start || cur > end) cur = start;
    const now = this.now();
    let oldest: { ip: string; at: number } | undefined;
    for (let i = 0; i < size; i++) {
      const n = cur + i > end ? cur + i - size : cur + i;
      if (!this.usable(n, pool)) continue;
      const ip = intToIp(n);
      if (reservedBy(ip) !== undefined) continue;
      const off = this.offers.get(n);
      if (off && off.expiresAt > now && off.mac !== mac) continue;
      const rec = this.store.get(ip);
      if (!rec) {
        this.cursors.set(pool.name, n + 1 > end ? start : n + 1);
        return ip;
      }
      if (rec.expiresAt <= now && (!oldest || rec.expiresAt < oldest.at)) oldest = { ip, at: rec.expiresAt };
    }
    return oldest?.ip;
  }
}

function rangeSize(pool: LeasePool): number {
  return pool.rangeStart === undefined || pool.rangeEnd === undefined ? 0 : pool.rangeEnd - pool.rangeStart + 1;
}

function mapOf<K, V>(m: Map<string, Map<K, V>>, key: string): Map<K, V> {
  let v = m.get(key);
  if (!v) m.set(key, (v = new Map()));
  return v;
}

function inRange(pool: LeasePool, n: number): boolean {
  return pool.rangeStart !== undefined && pool.rangeEnd !== undefined && n >= pool.rangeStart && n <= pool.rangeEnd;
}
