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
// - a declined address is quarantined (given to nobody) for quarantineMs.
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
  expiresAt: number;
}

export interface LeaseTableOptions {
  /** How long an OFFER keeps its address for the client (default 30 s). */
  offerHoldMs?: number;
  /** How long a declined address is given to nobody (default 24 h, as Kea). */
  quarantineMs?: number;
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
    this.now = opts.now ?? Date.now;
    // Rebuild the MAC index; should two records name one MAC (not written
    // by this code, but cheap to survive), the newest wins.
    for (const [ip, rec] of store.entries()) {
      const cur = this.byMac.get(rec.mac);
      if (!cur || (store.get(cur)?.updatedAt ?? 0) < rec.updatedAt) this.byMac.set(rec.mac, ip);
    }
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
  offer(mac: string, pool: LeasePool, reservedBy: ReservedBy, want: { reservedIp?: string; requestedIp?: string }): string | undefined {
    const now = this.now();
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
      ip ??= this.freeAddress(mac, pool, reservedBy);
    }
    if (ip === undefined) return undefined;
    this.holdOffer(mac, ipToInt(ip), pool.name, now);
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
   * The address is quarantined; the client's binding to it ends.
   */
  async decline(mac: string, ip: string, subnet: string): Promise<boolean> {
    const rec = this.store.get(ip);
    const off = this.offers.get(ipToInt(ip));
    const ours = (rec && rec.mac === mac && rec.state === "bound") || (off && off.mac === mac);
    if (!ours) return false;
    this.dropOffer(mac);
    const now = this.now();
    if (this.byMac.get(mac) === ip) this.byMac.delete(mac);
    await this.store.put(ip, { mac, subnet: rec?.subnet ?? subnet, state: "declined", expiresAt: now + this.quarantineMs, updatedAt: now });
    return true;
  }

  /** The client chose another server's offer (RFC 2131 §4.3.2). */
  forgetOffer(mac: string): void {
    this.dropOffer(mac);
  }

  /** Drops offers that have run out (called periodically). */
  sweep(): void {
    const now = this.now();
    for (const [ip, off] of this.offers) {
      if (off.expiresAt <= now) {
        this.offers.delete(ip);
        if (this.offersByMac.get(off.mac) === off) this.offersByMac.delete(off.mac);
      }
    }
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

  private holdOffer(mac: string, ip: number, subnet: string, now: number): void {
    this.dropOffer(mac);
    const off: Offer = { mac, ip, subnet, expiresAt: now + this.offerHoldMs };
    this.offers.set(ip, off);
    this.offersByMac.set(mac, off);
  }

  private dropOffer(mac: string): void {
    const off = this.offersByMac.get(mac);
    if (!off) return;
    this.offersByMac.delete(mac);
    if (this.offers.get(off.ip) === off) this.offers.delete(off.ip);
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

function inRange(pool: LeasePool, n: number): boolean {
  return pool.rangeStart !== undefined && pool.rangeEnd !== undefined && n >= pool.rangeStart && n <= pool.rangeEnd;
}
