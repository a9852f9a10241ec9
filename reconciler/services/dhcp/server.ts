// gitrack's DHCPv4 server (RFC 2131) with PXE boot information (RFC 4578,
// iPXE options 77/175) and proxyDHCP (PXE spec, UDP 4011). One handler per
// message type, as RFC 2131 §4.3 lists them. README.md beside this file
// explains the choices (subnet selection, where replies go, durability).
import dgram from "node:dgram";
import {
  BOOTREPLY,
  BOOTREQUEST,
  DhcpParseError,
  FLAG_BROADCAST,
  IpxeOpt,
  MESSAGE_TYPE_NAMES,
  MessageType,
  Opt,
  clientArch,
  enc,
  encodeSubOptions,
  ipToInt,
  macOf,
  optIp,
  optStr,
  optU16,
  optU8,
  parseMessage,
  serializeMessage,
  userClasses,
  DEFAULT_MAX_MESSAGE,
  type DhcpMessage,
  type DhcpMessageInit,
} from "./codec.js";
import { compileConfig, subnetContaining, type CompiledConfig, type CompiledSubnet, type DhcpConfig, type DhcpReservation } from "./config.js";
import { LeaseTable, type LeaseInfo } from "./leases.js";
import { IntervalLog } from "../interval-log.js";

export type { DhcpBootInfo, DhcpConfig, DhcpReservation, DhcpSubnet } from "./config.js";
export { DhcpConfigError } from "./config.js";

/** The pino methods the server uses. */
export interface DhcpLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ClientSeenEvent {
  mac: string;
  ip?: string;
  /** The request came from iPXE (user class "iPXE"). */
  ipxe: boolean;
  /** Option 93, when sent. */
  arch?: number;
  type: "discover" | "request" | "inform" | "release" | "decline";
}

export interface DhcpServerOptions {
  /** Where the lease journal lives. */
  stateDir: string;
  port?: number;
  /** proxyDHCP port (PXE spec); false to not listen there. */
  proxyPort?: number | false;
  bindAddress?: string;
  logger: DhcpLogger;
  onClientSeen?: (e: ClientSeenEvent) => void;
  /** Port clients listen on (68); only tests change it. */
  clientPort?: number;
  /**
   * Bind a second socket to serverId:port for sending limited broadcasts
   * (default true; see README.md "Broadcast replies"). Tests turn it off to
   * exercise the fallbacks.
   */
  serverAddressSocket?: boolean;
  /** Lease table tuning (offer hold, decline quarantine, fsync). */
  leases?: { offerHoldMs?: number; quarantineMs?: number; reclaimAfterMs?: number; sync?: boolean; compactAfter?: number };
  /**
   * A relayed subnet that lists no relays is answered for at most this many
   * distinct giaddr values at a time (default 16; README.md, "Relays").
   */
  maxRelaysPerSubnet?: number;
}

export interface DhcpStats {
  received: number;
  replied: number;
  dropped_malformed: number;
  dropped_not_request: number;
  dropped_no_subnet: number;
  dropped_no_address: number;
  /** Relayed requests whose giaddr is not a relay of a relayed subnet. */
  dropped_bad_relay: number;
  /** Relayed requests from one giaddr too many for a subnet that lists no relays. */
  dropped_relay_budget: number;
  /** Replies not sent because too many to one address were still queued. */
  dropped_send_backlog: number;
  /** DECLINEs not believed (a client past its quarantine budget). */
  declines_refused: number;
  ignored_other_server: number;
  ignored: number;
  discover: number;
  request: number;
  decline: number;
  release: number;
  inform: number;
  offer: number;
  ack: number;
  nak: number;
  send_errors: number;
  /** Limited broadcasts that failed (no route) and went to the subnet broadcast. */
  broadcast_fallbacks: number;
  errors: number;
  leases_bound: number;
  leases_offered: number;
  leases_declined: number;
  journal_batches: number;
  journal_records: number;
}

type Counter = Exclude<keyof DhcpStats, `leases_${string}` | `journal_${string}`>;

/** Where a request came in: the DHCP port or the proxyDHCP port. */
type Via = "dhcp" | "proxy";

interface Ctx {
  req: DhcpMessage;
  mac: string;
  cfg: CompiledConfig;
  subnet: CompiledSubnet;
  reservation?: DhcpReservation;
  via: Via;
  from: dgram.RemoteInfo;
}

const ZERO = "0.0.0.0";
const LIMITED_BROADCAST = "255.255.255.255";
const NO_RANGE_LOG_MS = 60_000;
const RECV_BUFFER_BYTES = 1 << 20;
/** Warnings a flood would repeat per packet are logged once per key in this interval. */
const FLOOD_LOG_MS = 10_000;
/** A giaddr not heard from for this long leaves a subnet's relay set. */
const RELAY_IDLE_MS = 10 * 60_000;
/** Replies to one address still queued in the socket past which more are dropped. */
const MAX_PENDING_PER_DESTINATION = 32;

export class DhcpServer {
  private readonly opts: Required<Omit<DhcpServerOptions, "onClientSeen" | "leases">> & Pick<DhcpServerOptions, "onClientSeen" | "leases">;
  private readonly log: DhcpLogger;
  private cfg: CompiledConfig | null = null;
  private leaseTable: LeaseTable | null = null;
  private main: dgram.Socket | null = null;
  private bcast: dgram.Socket | null = null;
  private bcastAddr: string | null = null;
  private proxy: dgram.Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly inflight = new Set<Promise<void>>();
  private readonly noRangeLogged = new Map<string, number>();
  private readonly floodLog: IntervalLog;
  /** Per relayed subnet without a relay list: giaddr → last heard. */
  private readonly relaysSeen = new Map<string, Map<string, number>>();
  /** Sends not yet completed, per destination address. */
  private readonly pendingSends = new Map<string, number>();
  private readonly counters: Record<Counter, number> = {
    received: 0,
    replied: 0,
    dropped_malformed: 0,
    dropped_not_request: 0,
    dropped_no_subnet: 0,
    dropped_no_address: 0,
    dropped_bad_relay: 0,
    dropped_relay_budget: 0,
    dropped_send_backlog: 0,
    declines_refused: 0,
    ignored_other_server: 0,
    ignored: 0,
    discover: 0,
    request: 0,
    decline: 0,
    release: 0,
    inform: 0,
    offer: 0,
    ack: 0,
    nak: 0,
    send_errors: 0,
    broadcast_fallbacks: 0,
    errors: 0,
  };

  constructor(options: DhcpServerOptions) {
    this.opts = {
      port: 67,
      proxyPort: 4011,
      bindAddress: ZERO,
      clientPort: 68,
      serverAddressSocket: true,
      maxRelaysPerSubnet: 16,
      ...options,
    };
    this.log = options.logger;
    this.floodLog = new IntervalLog(this.log, FLOOD_LOG_MS);
  }

  /**
   * Replaces the configuration atomically: the next packet sees the new one.
   * Throws DhcpConfigError (and keeps the old one) if it is invalid.
   */
  setConfig(cfg: DhcpConfig): void {
    const compiled = compileConfig(cfg);
    const serverIdChanged = this.cfg?.serverId !== compiled.serverId;
    this.cfg = compiled;
    if (serverIdChanged && this.main) void this.openBroadcastSocket();
  }

  async start(): Promise<void> {
    if (this.main) throw new Error("DHCP server already started");
    this.leaseTable = await LeaseTable.open(this.opts.stateDir, {
      ...this.opts.leases,
      onWarning: (m) => this.log.warn({}, m),
    });
    try {
      this.main = await this.bindSocket(this.opts.bindAddress, this.opts.port, "dhcp");
      if (this.opts.proxyPort !== false) this.proxy = await this.bindSocket(this.opts.bindAddress, this.opts.proxyPort, "proxy");
      await this.openBroadcastSocket();
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.timer = setInterval(() => this.housekeeping(), 10_000);
    this.timer.unref();
    this.log.info(
      { port: this.opts.port, proxyPort: this.opts.proxyPort, bindAddress: this.opts.bindAddress, broadcastFrom: this.bcastAddr, leases: this.leaseTable.list().length },
      "DHCP server listening",
    );
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const s of [this.main, this.proxy, this.bcast]) {
      if (s) await new Promise<void>((r) => s.close(() => r()));
    }
    this.main = this.proxy = this.bcast = null;
    this.bcastAddr = null;
    // Requests being ACKed finish writing their leases before the store closes.
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    await this.leaseTable?.close();
    this.leaseTable = null;
  }

  stats(): DhcpStats {
    const c = this.leaseTable?.counts() ?? { bound: 0, offered: 0, declined: 0 };
    const j = this.leaseTable?.storeCounters ?? { batches: 0, records: 0 };
    return {
      ...this.counters,
      leases_bound: c.bound,
      leases_offered: c.offered,
      leases_declined: c.declined,
      journal_batches: j.batches,
      journal_records: j.records,
    };
  }

  /** Every lease, offer, release and quarantine, by address (for status). */
  leases(): LeaseInfo[] {
    return this.leaseTable?.list() ?? [];
  }

  /** One client's lease without listing all of them (O(1)). */
  leaseOf(mac: string): LeaseInfo | undefined {
    return this.leaseTable?.infoOf(mac.toLowerCase());
  }

  // -------------------------------------------------------------------------
  // Sockets

  private bindSocket(address: string, port: number, via: Via): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      // A larger receive buffer than the default (~200 KiB, ~250 requests)
      // absorbs bursts (a rack powering on, a relay flushing its queue),
      // but not so large that an overloaded server answers requests that
      // are seconds old (~1,000 requests, well under a second of work at
      // the measured rate). The kernel caps it at net.core.rmem_max.
      const sock = dgram.createSocket({ type: "udp4", reuseAddr: true, recvBufferSize: RECV_BUFFER_BYTES });
      const onError = (err: Error): void => {
        sock.close();
        reject(err);
      };
      sock.once("error", onError);
      sock.bind({ port, address }, () => {
        sock.off("error", onError);
        sock.on("error", (err) => this.log.error({ err: err.message, address, port }, "DHCP socket error"));
        sock.setBroadcast(true);
        sock.on("message", (msg, rinfo) => this.onPacket(msg, rinfo, via));
        resolve(sock);
      });
    });
  }

  /**
   * A socket bound to serverId:port sends the limited broadcast out of the
   * interface that has serverId, also in a namespace with no route for
   * 255.255.255.255 (measured: README.md, "Broadcast replies"). It also
   * receives the unicast traffic to serverId:port, which is handled alike.
   */
  private async openBroadcastSocket(): Promise<void> {
    const want = this.cfg?.serverId;
    if (!this.opts.serverAddressSocket || this.opts.bindAddress !== ZERO || !want || want === this.bcastAddr) return;
    const old = this.bcast;
    this.bcast = null;
    this.bcastAddr = null;
    if (old) old.close();
    try {
      this.bcast = await this.bindSocket(want, this.opts.port, "dhcp");
      this.bcastAddr = want;
    } catch (err) {
      // Not an address of this host (yet): replies fall back to the main
      // socket and, failing that, to the subnet-directed broadcast.
      this.log.warn({ serverId: want, err: (err as Error).message }, "cannot bind the server address; broadcasts go through the wildcard socket");
    }
  }

  private housekeeping(): void {
    this.leaseTable?.sweep();
    const cutoff = Date.now() - NO_RANGE_LOG_MS;
    for (const [mac, at] of this.noRangeLogged) if (at < cutoff) this.noRangeLogged.delete(mac);
    this.floodLog.sweep();
    const idle = Date.now() - RELAY_IDLE_MS;
    for (const seen of this.relaysSeen.values()) for (const [g, at] of seen) if (at < idle) seen.delete(g);
  }

  // -------------------------------------------------------------------------
  // Receiving

  private onPacket(msg: Buffer, from: dgram.RemoteInfo, via: Via): void {
    this.counters.received++;
    try {
      const p = this.handle(msg, from, via);
      if (p) {
        this.inflight.add(p);
        p.catch((err) => this.fail(err)).finally(() => this.inflight.delete(p));
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.counters.errors++;
    this.log.error({ err: err instanceof Error ? err.stack ?? err.message : String(err) }, "DHCP handler failed");
  }

  /** Decodes, picks the subnet, dispatches by message type (RFC 2131 §4.3). */
  private handle(msg: Buffer, from: dgram.RemoteInfo, via: Via): Promise<void> | void {
    let req: DhcpMessage;
    try {
      req = parseMessage(msg);
    } catch (err) {
      if (!(err instanceof DhcpParseError)) throw err;
      this.counters.dropped_malformed++;
      this.log.debug({ from: from.address, err: err.message }, "malformed DHCP packet dropped");
      return;
    }
    const type = optU8(req, Opt.MESSAGE_TYPE);
    if (req.op !== BOOTREQUEST || type === undefined || req.htype !== 1 || req.hlen !== 6) {
      // Replies from other servers, plain BOOTP, non-Ethernet clients.
      this.counters.dropped_not_request++;
      return;
    }
    const cfg = this.cfg;
    if (!cfg || !this.leaseTable) {
      this.counters.ignored++;
      return;
    }
    const mac = macOf(req);
    const ipxe = isIpxe(req);
    const arch = clientArch(req);
    this.seen(req, mac, type, ipxe, arch);

    const reservation0 = cfg.byMac.get(mac);
    if (req.giaddr !== ZERO && !this.relayAccepted(cfg, req.giaddr, from)) return;
    const subnet = this.selectSubnet(cfg, req, reservation0);
    if (!subnet || subnet.def.mode === "off") {
      this.counters.dropped_no_subnet++;
      this.log.debug({ mac, giaddr: req.giaddr, type: MESSAGE_TYPE_NAMES[type] }, "no subnet served for this request");
      return;
    }
    // A reservation applies only in its own subnet (a machine that moved
    // is an unknown client on its new network).
    const reservation = reservation0 && reservation0.subnet === subnet.name ? reservation0 : undefined;
    const ctx: Ctx = { req, mac, cfg, subnet, reservation, via, from };

    if (via === "proxy" || subnet.def.mode === "proxy") return this.handleProxy(ctx, type);
    switch (type) {
      case MessageType.DISCOVER:
        return this.onDiscover(ctx);
      case MessageType.REQUEST:
        return this.onRequest(ctx);
      case MessageType.DECLINE:
        return this.onDecline(ctx);
      case MessageType.RELEASE:
        return this.onRelease(ctx);
      case MessageType.INFORM:
        return this.onInform(ctx);
      default:
        this.counters.dropped_not_request++;
    }
  }

  private seen(req: DhcpMessage, mac: string, type: number, ipxe: boolean, arch: number | undefined): void {
    const names: Record<number, ClientSeenEvent["type"]> = { 1: "discover", 3: "request", 4: "decline", 7: "release", 8: "inform" };
    const t = names[type];
    if (!t) return;
    this.counters[t]++;
    if (!this.opts.onClientSeen) return;
    const ip = req.ciaddr !== ZERO ? req.ciaddr : optIp(req, Opt.REQUESTED_IP);
    try {
      this.opts.onClientSeen({ mac, ipxe, type: t, ...(ip ? { ip } : {}), ...(arch !== undefined ? { arch } : {}) });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "onClientSeen callback threw");
    }
  }

  /**
   * Relayed: the subnet containing giaddr (RFC 2131 §4.3.1). Else the one
   * containing ciaddr (a renewing client tells us where it is), else the
   * reservation's subnet, else the subnet containing serverId / the only
   * subnet in use.
   */
  private selectSubnet(cfg: CompiledConfig, req: DhcpMessage, reservation?: DhcpReservation): CompiledSubnet | undefined {
    if (req.giaddr !== ZERO) return subnetContaining(cfg, ipToInt(req.giaddr));
    if (req.ciaddr !== ZERO) {
      const s = subnetContaining(cfg, ipToInt(req.ciaddr));
      if (s) return s;
    }
    if (reservation) return cfg.subnetByName.get(reservation.subnet);
    return cfg.local;
  }

  /**
   * A relayed request is answered only when its giaddr can be a relay: an
   * address of a subnet declared relayed (one of its listed relays, when it
   * lists them), never an address of a subnet on the local wire (a reply
   * there waits for ARP that never resolves and stalls everyone's replies
   * in the socket), never 0/broadcast/loopback/multicast. A relayed subnet
   * without a list answers at most maxRelaysPerSubnet giaddrs at a time.
   */
  private relayAccepted(cfg: CompiledConfig, giaddr: string, from: dgram.RemoteInfo): boolean {
    const g = ipToInt(giaddr);
    const first = g >>> 24;
    const subnet = first === 0 || first === 127 || first >= 224 ? undefined : subnetContaining(cfg, g);
    const allowed = subnet !== undefined && subnet.def.relayed === true && (subnet.relays ? subnet.relays.has(g) : g !== subnet.network && g !== subnet.broadcast);
    if (!allowed) {
      this.counters.dropped_bad_relay++;
      this.floodLog.write(
        "bad-relay",
        "warn",
        { giaddr, from: from.address, subnet: subnet?.name, dropped: this.counters.dropped_bad_relay },
        "relayed DHCP requests from an address that is not a relay of a relayed subnet: dropped",
      );
      return false;
    }
    if (subnet.relays) return true;
    const seen = this.relaysSeen.get(subnet.name) ?? new Map<string, number>();
    this.relaysSeen.set(subnet.name, seen);
    const now = Date.now();
    if (!seen.has(giaddr) && seen.size >= this.opts.maxRelaysPerSubnet) {
      for (const [other, at] of seen) if (now - at > RELAY_IDLE_MS) seen.delete(other);
      if (seen.size >= this.opts.maxRelaysPerSubnet) {
        this.counters.dropped_relay_budget++;
        this.floodLog.write(
          `relay-budget:${subnet.name}`,
          "warn",
          { giaddr, from: from.address, subnet: subnet.name, relays: seen.size, dropped: this.counters.dropped_relay_budget },
          "more relay addresses than a relayed subnet without a relay list accepts: dropped (list its relays)",
        );
        return false;
      }
    }
    seen.delete(giaddr);
    seen.set(giaddr, now);
    return true;
  }

  private reservedBy = (ip: string): string | undefined => this.cfg?.byIp.get(ip)?.mac;

  // -------------------------------------------------------------------------
  // RFC 2131 §4.3.1: DHCPDISCOVER

  private onDiscover(ctx: Ctx): void {
    const { mac, subnet, reservation, req } = ctx;
    if (!reservation && subnet.rangeStart === undefined) {
      this.counters.dropped_no_address++;
      const last = this.noRangeLogged.get(mac) ?? 0;
      if (Date.now() - last >= NO_RANGE_LOG_MS) {
        this.noRangeLogged.set(mac, Date.now());
        this.log.info({ mac, subnet: subnet.name }, "unknown MAC on a subnet without a dynamic range: not answered");
      }
      return;
    }
    const ip = this.leaseTable!.offer(mac, subnet, this.reservedBy, {
      reservedIp: reservation?.ip,
      requestedIp: optIp(req, Opt.REQUESTED_IP),
      source: req.giaddr !== ZERO ? req.giaddr : "local",
    });
    if (!ip) {
      this.counters.dropped_no_address++;
      if (reservation) {
        const b = this.leaseTable!.blocker(reservation.ip, mac);
        this.floodLog.write(`reserved:${mac}`, "warn", { mac, ip: reservation.ip, heldBy: b?.mac, why: b?.why }, "reserved address is held by another client; not offered");
      } else {
        this.floodLog.write(`exhausted:${subnet.name}`, "warn", { mac, subnet: subnet.name }, "dynamic range exhausted");
      }
      return;
    }
    this.counters.offer++;
    this.reply(ctx, MessageType.OFFER, ip);
  }

  // -------------------------------------------------------------------------
  // RFC 2131 §4.3.2: DHCPREQUEST (SELECTING, INIT-REBOOT, RENEWING, REBINDING)

  private async onRequest(ctx: Ctx): Promise<void> {
    const { req, mac, cfg, subnet, reservation } = ctx;
    const serverId = optIp(req, Opt.SERVER_ID);
    const requested = optIp(req, Opt.REQUESTED_IP);
    if (serverId !== undefined && serverId !== cfg.serverId) {
      // The client took another server's offer: ours is free again.
      this.leaseTable!.forgetOffer(mac);
      this.counters.ignored_other_server++;
      return;
    }
    let state: "selecting" | "init-reboot" | "renewing";
    let ip: string | undefined;
    if (serverId !== undefined) {
      state = "selecting";
      ip = requested ?? (req.ciaddr !== ZERO ? req.ciaddr : undefined);
    } else if (requested !== undefined) {
      state = "init-reboot";
      ip = requested;
    } else {
      state = "renewing"; // or rebinding: the same answer either way
      ip = req.ciaddr !== ZERO ? req.ciaddr : undefined;
    }
    if (ip === undefined) {
      this.counters.ignored++;
      return;
    }
    const leases = this.leaseTable!;
    const verdict = leases.check(mac, ip, subnet, this.reservedBy, reservation?.ip);
    if (verdict === "ok") {
      await leases.commit(mac, ip, subnet, subnet.def.leaseSeconds, reservation?.hostname);
      // The store may have closed while we waited (stop()): the lease is
      // on disk either way, the client will retry if no ACK arrives.
      if (!this.main) return;
      this.counters.ack++;
      this.reply(ctx, MessageType.ACK, ip);
      return;
    }
    // RFC 2131 §4.3.2: INIT-REBOOT and RENEWING get a NAK when the address
    // is wrong; a server with no record of the client stays silent so that
    // servers that do not talk to each other can share a wire. We have a
    // record when the MAC is reserved, has a lease here, or when the subnet
    // hands out addresses to anyone (we are then authoritative for it).
    const known = reservation !== undefined || leases.recordOf(mac) !== undefined || subnet.rangeStart !== undefined;
    if (state !== "selecting" && verdict !== "outside-subnet" && !known) {
      this.counters.ignored++;
      return;
    }
    this.log.info({ mac, ip, state, verdict, ...(reservation ? { reserved: reservation.ip } : {}) }, "DHCPNAK");
    this.counters.nak++;
    this.reply(ctx, MessageType.NAK);
  }

  // RFC 2131 §4.3.3: DHCPDECLINE
  private async onDecline(ctx: Ctx): Promise<void> {
    const { req, mac, cfg, subnet } = ctx;
    const serverId = optIp(req, Opt.SERVER_ID);
    const ip = optIp(req, Opt.REQUESTED_IP);
    if ((serverId !== undefined && serverId !== cfg.serverId) || ip === undefined) {
      this.counters.ignored++;
      return;
    }
    if (cfg.byIp.has(ip)) {
      // Quarantining a reserved address would only lock out its owner; the
      // conflict needs a person.
      this.log.warn({ mac, ip }, "client declined its reserved address: another host is using it");
      this.leaseTable!.forgetOffer(mac);
      return;
    }
    const result = await this.leaseTable!.decline(mac, ip, subnet);
    if (result === "not-ours") return;
    if (result === "client-budget") {
      this.counters.declines_refused++;
      this.floodLog.write(`decline-refused:${subnet.name}`, "warn", { mac, ip, subnet: subnet.name, refused: this.counters.declines_refused }, "DECLINE not believed: this client already has its quarantines");
      return;
    }
    this.floodLog.write(
      `declined:${subnet.name}`,
      "warn",
      { mac, ip, subnet: subnet.name, ...(result === "replaced-oldest" ? { liftedOldest: true } : {}) },
      result === "replaced-oldest" ? "address declined; quarantined, and the subnet's oldest quarantine lifted (at most an eighth of the range is quarantined)" : "address declined by the client; quarantined",
    );
  }

  // RFC 2131 §4.3.4: DHCPRELEASE
  private async onRelease(ctx: Ctx): Promise<void> {
    const { req, mac, cfg } = ctx;
    const serverId = optIp(req, Opt.SERVER_ID);
    if ((serverId !== undefined && serverId !== cfg.serverId) || req.ciaddr === ZERO) {
      this.counters.ignored++;
      return;
    }
    if (await this.leaseTable!.release(mac, req.ciaddr)) this.log.debug({ mac, ip: req.ciaddr }, "lease released");
  }

  // RFC 2131 §4.3.5: DHCPINFORM: configuration only, no address, no lease time.
  private onInform(ctx: Ctx): void {
    this.counters.ack++;
    this.reply(ctx, MessageType.ACK);
  }

  // -------------------------------------------------------------------------
  // proxyDHCP (PXE 2.1 §2.2.2 and §2.2.3): boot information only, no address.

  private handleProxy(ctx: Ctx, type: number): void {
    const { req, cfg } = ctx;
    if (!isPxeClient(req)) {
      this.counters.ignored++;
      return;
    }
    if (ctx.via === "dhcp") {
      // On port 67 answer DISCOVERs, and REQUESTs meant for us; requests
      // to the DHCP server that gives the address are not ours.
      const serverId = optIp(req, Opt.SERVER_ID);
      const ours = type === MessageType.DISCOVER || (type === MessageType.REQUEST && serverId === cfg.serverId) || type === MessageType.INFORM;
      if (!ours) {
        this.counters.ignored++;
        return;
      }
    } else if (type !== MessageType.REQUEST && type !== MessageType.INFORM) {
      this.counters.ignored++;
      return;
    }
    const replyType = type === MessageType.DISCOVER ? MessageType.OFFER : MessageType.ACK;
    this.counters[replyType === MessageType.OFFER ? "offer" : "ack"]++;
    this.reply(ctx, replyType, undefined, true);
  }

  // -------------------------------------------------------------------------
  // Building and sending replies

  private reply(ctx: Ctx, type: number, yiaddr?: string, proxy = false): void {
    const { req, cfg, subnet, reservation, mac } = ctx;
    const def = subnet.def;
    const o: Array<[number, Buffer]> = [
      [Opt.MESSAGE_TYPE, enc.u8(type)],
      [Opt.SERVER_ID, enc.ip(cfg.serverId)],
    ];
    let file = "";
    let siaddr: string | undefined;
    if (type === MessageType.NAK) {
      o.push([Opt.MESSAGE, enc.str("requested address is not valid here")]);
    } else {
      if (!proxy) {
        if (yiaddr !== undefined) {
          // RFC 2131 §4.3.1: lease time, with T1 = 0.5 and T2 = 0.875 of it.
          const t = def.leaseSeconds;
          o.push([Opt.LEASE_TIME, enc.u32(t)], [Opt.RENEWAL_TIME, enc.u32(Math.floor(t * 0.5))], [Opt.REBINDING_TIME, enc.u32(Math.floor(t * 0.875))]);
        }
        o.push([Opt.SUBNET_MASK, enc.ip(subnet.maskIp)], [Opt.BROADCAST, enc.ip(subnet.broadcastIp)]);
        if (def.gateway) o.push([Opt.ROUTER, enc.ip(def.gateway)]);
        if (def.dns.length > 0) o.push([Opt.DNS, enc.ips(def.dns)]);
        if (def.domain) o.push([Opt.DOMAIN_NAME, enc.str(def.domain)]);
        if (reservation?.hostname) o.push([Opt.HOSTNAME, enc.str(reservation.hostname)]);
      }
      const boot = this.bootInfo(req, mac, cfg, proxy);
      if (boot) {
        siaddr = boot.siaddr;
        const requested = req.options.get(Opt.PARAMETER_LIST) ?? Buffer.alloc(0);
        if (Buffer.byteLength(boot.file) <= 127) file = boot.file;
        if (requested.includes(Opt.TFTP_SERVER)) o.push([Opt.TFTP_SERVER, enc.str(boot.siaddr)]);
        if (requested.includes(Opt.BOOTFILE) || file === "") o.push([Opt.BOOTFILE, enc.str(boot.file)]);
        o.push(...boot.options);
      }
      if (proxy) {
        o.push([Opt.VENDOR_CLASS, enc.str("PXEClient")]);
        // PXE_DISCOVERY_CONTROL (sub-option 6) = 8: take the boot file
        // from this offer, no boot server discovery or menu.
        o.push([Opt.VENDOR_SPECIFIC, encodeSubOptions([[6, enc.u8(8)]])]);
      }
      // RFC 4578 §2.3 / PXE: echo the client machine identifier (type 0
      // and a 16-byte GUID; anything else is not echoed).
      const uuid = req.options.get(Opt.CLIENT_MACHINE_ID);
      if (uuid && isPxeClient(req)) {
        if (uuid.length === 17 && uuid[0] === 0) o.push([Opt.CLIENT_MACHINE_ID, uuid]);
        else this.floodLog.write(`bad-97:${ctx.from.address}`, "warn", { mac, from: ctx.from.address, length: uuid.length }, "client machine identifier (option 97) is not a type-0 GUID; not echoed");
      }
    }
    // RFC 3046 §2.2: the relay agent information goes back, last.
    const agent = req.options.get(Opt.RELAY_AGENT);
    if (agent && req.giaddr !== ZERO) o.push([Opt.RELAY_AGENT, agent]);

    const informOrRenew = req.ciaddr !== ZERO && type === MessageType.ACK;
    const msg: DhcpMessageInit = {
      op: BOOTREPLY,
      htype: req.htype,
      hlen: req.hlen,
      hops: 0,
      xid: req.xid,
      secs: 0,
      // RFC 2131 §4.3.2: a relayed NAK asks the relay to broadcast it.
      flags: type === MessageType.NAK && req.giaddr !== ZERO ? req.flags | FLAG_BROADCAST : req.flags,
      ciaddr: informOrRenew ? req.ciaddr : ZERO,
      yiaddr: yiaddr ?? ZERO,
      siaddr: siaddr ?? ZERO,
      giaddr: req.giaddr,
      chaddr: req.chaddr,
      file,
      options: o,
    };
    const maxSize = optU16(req, Opt.MAX_MESSAGE_SIZE);
    const limit = maxSize && maxSize >= 576 ? Math.min(maxSize, 1500) - 28 : DEFAULT_MAX_MESSAGE;
    let buf: Buffer;
    try {
      buf = serializeMessage(msg, limit);
    } catch (err) {
      // An echoed option 82 too large for the reply: the reply goes without
      // it rather than not at all (the relay forwards it either way).
      const withoutAgent = o.filter(([code]) => code !== Opt.RELAY_AGENT);
      let retried: Buffer | undefined;
      if (withoutAgent.length < o.length) {
        try {
          retried = serializeMessage({ ...msg, options: withoutAgent }, limit);
        } catch {
          retried = undefined;
        }
      }
      this.floodLog.write(
        `encode:${ctx.from.address}`,
        retried ? "warn" : "error",
        { mac, from: ctx.from.address, err: (err as Error).message, ...(agent ? { relayAgentBytes: agent.length } : {}) },
        retried ? "reply too large with the relay agent information echoed; sent without it" : "cannot encode the reply",
      );
      if (!retried) {
        this.counters.errors++;
        return;
      }
      buf = retried;
    }
    this.sendReply(ctx, type, buf);
    this.log.debug({ mac, type: MESSAGE_TYPE_NAMES[type], yiaddr, file: file || undefined, proxy }, "DHCP reply");
  }

  /** PXE firmware gets a binary by architecture; iPXE gets its script URL. */
  private bootInfo(req: DhcpMessage, mac: string, cfg: CompiledConfig, proxy: boolean): { file: string; siaddr: string; options: Array<[number, Buffer]> } | undefined {
    const boot = cfg.source.boot;
    if (isIpxe(req)) {
      return {
        file: boot.ipxeScriptUrl(mac),
        siaddr: boot.nextServer,
        // iPXE: do not wait for proxyDHCP offers (175.176 no-pxedhcp = 1).
        options: proxy ? [] : [[Opt.IPXE_ENCAP, encodeSubOptions([[IpxeOpt.NO_PXEDHCP, enc.u8(1)]])]],
      };
    }
    if (!isPxeClient(req) && clientArch(req) === undefined) return undefined;
    // RFC 4578 §2.1 / IANA processor architecture types.
    const arch = clientArch(req) ?? archFromVendorClass(req) ?? 0;
    let file: string | undefined;
    if (arch === 0) file = boot.biosFile;
    else if (arch === 7 || arch === 9) file = boot.uefiX64File;
    else if (arch === 11) file = boot.uefiArm64File;
    if (!file) {
      this.log.debug({ mac, arch }, "no boot file for this client architecture");
      return undefined;
    }
    return { file, siaddr: boot.nextServer, options: [] };
  }

  /**
   * RFC 2131 §4.1 "Constructing and sending DHCP messages": relayed → the
   * relay's server port; ciaddr set (renewing, INFORM) → unicast to it;
   * proxyDHCP port → back where it came from; otherwise the limited
   * broadcast (also for NAKs, and for clients without the broadcast flag,
   * since Node cannot unicast to an address the client does not have yet:
   * that needs an ARP entry only a raw socket could add).
   */
  private sendReply(ctx: Ctx, type: number, buf: Buffer): void {
    const { req, from, subnet, via } = ctx;
    if (req.giaddr !== ZERO) return this.send(this.main!, buf, this.opts.port, req.giaddr);
    if (via === "proxy") return this.send(this.proxy!, buf, from.port, from.address);
    if (req.ciaddr !== ZERO && type !== MessageType.NAK) {
      // Only to an address of the subnet answered for: a ciaddr elsewhere
      // would make us send to any address a forged packet names.
      if (((ipToInt(req.ciaddr) & subnet.mask) >>> 0) !== subnet.network) {
        this.counters.ignored++;
        this.floodLog.write("ciaddr-outside", "warn", { mac: ctx.mac, ciaddr: req.ciaddr, subnet: subnet.name }, "client address (ciaddr) is outside the subnet answered for; no reply");
        return;
      }
      return this.send(this.main!, buf, this.opts.clientPort, req.ciaddr);
    }
    this.broadcast(buf, subnet);
  }

  private broadcast(buf: Buffer, subnet: CompiledSubnet): void {
    const cfg = this.cfg!;
    const onServerNet = ((cfg.serverIdInt & subnet.mask) >>> 0) === subnet.network;
    if (this.bcast && onServerNet) return this.send(this.bcast, buf, this.opts.clientPort, LIMITED_BROADCAST);
    // Without the bound socket: the limited broadcast needs a route for
    // 255.255.255.255 (ENETUNREACH otherwise); the subnet-directed
    // broadcast leaves by the subnet's own route.
    this.main!.send(buf, this.opts.clientPort, LIMITED_BROADCAST, (err) => {
      if (!err) {
        this.counters.replied++;
        return;
      }
      this.counters.broadcast_fallbacks++;
      this.log.debug({ err: err.message, to: subnet.broadcastIp }, "limited broadcast failed; using the subnet broadcast");
      this.send(this.main!, buf, this.opts.clientPort, subnet.broadcastIp);
    });
  }

  /**
   * Unicast and broadcast replies. A destination with many replies still
   * queued (a relay or client that does not answer ARP) gets no more until
   * they drain, so it cannot fill the socket for everyone else; failures
   * are logged once per interval.
   */
  private send(sock: dgram.Socket, buf: Buffer, port: number, address: string): void {
    const pending = this.pendingSends.get(address) ?? 0;
    if (pending >= MAX_PENDING_PER_DESTINATION) {
      this.counters.dropped_send_backlog++;
      this.floodLog.write(`backlog:${address}`, "warn", { to: address, pending }, "DHCP replies to this address are not leaving; more are dropped until they do");
      return;
    }
    this.pendingSends.set(address, pending + 1);
    const done = (err: Error | null): void => {
      const left = (this.pendingSends.get(address) ?? 1) - 1;
      if (left <= 0) this.pendingSends.delete(address);
      else this.pendingSends.set(address, left);
      if (err) {
        this.counters.send_errors++;
        this.floodLog.write(`send:${(err as NodeJS.ErrnoException).code ?? err.message}`, "warn", { to: `${address}:${port}`, err: err.message, failed: this.counters.send_errors }, "DHCP reply not sent");
      } else {
        this.counters.replied++;
      }
    };
    try {
      sock.send(buf, port, address, done);
    } catch (err) {
      done(err as Error);
    }
  }
}

/** Option 77 says "iPXE" (bare, as iPXE sends it, or RFC 3004 encoded). */
export function isIpxe(req: DhcpMessage): boolean {
  const raw = optStr(req, Opt.USER_CLASS);
  return raw === "iPXE" || userClasses(req).includes("iPXE");
}

/** Option 60 starts with "PXEClient" (PXE 2.1 §2.2.1). */
export function isPxeClient(req: DhcpMessage): boolean {
  return optStr(req, Opt.VENDOR_CLASS)?.startsWith("PXEClient") ?? false;
}

/** "PXEClient:Arch:00007:UNDI:003016" → 7. */
function archFromVendorClass(req: DhcpMessage): number | undefined {
  const m = /^PXEClient:Arch:(\d{5})/.exec(optStr(req, Opt.VENDOR_CLASS) ?? "");
  return m ? Number(m[1]) : undefined;
}
