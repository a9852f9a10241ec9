// gitrack's read-only TFTP server: RFC 1350 (protocol), RFC 2347 (option
// negotiation, OACK), RFC 2348 (blksize), RFC 2349 (timeout, tsize) and
// RFC 7440 (windowsize). RRQ only. Every transfer gets its own ephemeral
// socket (its TID, RFC 1350 section 4).
import dgram from "node:dgram";
import { isIPv6 } from "node:net";
import path from "node:path";
import {
  decodePacket,
  encodeData,
  encodeError,
  encodeOack,
  ErrorCode,
  TftpPacketError,
  type TftpOption,
  type TftpPacket,
} from "./packet.js";
import { defaultIpxeAllowOutside, defaultIpxeRoot, normaliseRequestPath, openInsideRoot } from "./root.js";
import { BusyPoll } from "./busy-poll.js";
import { IntervalLog } from "../interval-log.js";

/**
 * What a transfer reads. `read(offset, length)` returns exactly `length` bytes
 * unless the range reaches `size` (then fewer); it is called with increasing
 * offsets, in chunks larger than one block. `close` (optional) runs once when
 * the transfer ends, whatever the outcome.
 */
export interface TftpContent {
  size: number;
  read(offset: number, length: number): Promise<Buffer>;
  close?(): Promise<void>;
}

export interface TftpClient {
  address: string;
  port: number;
}

/**
 * Dynamic, per-client files, asked before the root. `path` is the normalised,
 * root-relative request path ("pxelinux.cfg/01-aa-bb", no leading slash, no
 * "..": paths that fail normalisation never reach the resolver). Return
 * undefined to fall through to the root.
 */
export type TftpResolver = (path: string, client: TftpClient) => Promise<TftpContent | undefined>;

/** The subset of pino the server uses. */
export interface TftpLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface TftpServerOptions {
  /** Folder served read-only. Default: defaultIpxeRoot() when neither root nor resolver is given. */
  root?: string;
  /**
   * Real paths of single files outside the root that symlinks inside it may
   * point to. Default: defaultIpxeAllowOutside() when the root is defaultIpxeRoot(), else none.
   */
  allowOutside?: string[];
  resolver?: TftpResolver;
  port?: number;
  bindAddress?: string;
  logger?: TftpLogger;
  /** Cap for the blksize option (RFC 2348); 1468 fits a 1500-byte MTU. */
  maxBlksize?: number;
  /** Cap for the windowsize option (RFC 7440). */
  maxWindowsize?: number;
  /** Retransmissions of one window or OACK before the transfer is abandoned. */
  retries?: number;
  /** First retransmit timeout; doubles on each retry up to 8x. A client's timeout option replaces it. */
  timeoutMs?: number;
  maxTransfers?: number;
  /**
   * Transfers one client address may hold at once; past it, ERROR 0 "too
   * many transfers from your address". Default 8.
   */
  maxPerClient?: number;
  /**
   * Largest `timeout` option (seconds) accepted; a larger one is left out of
   * the OACK and the server's own timeout applies. Bounds how long a client
   * that never ACKs holds its slot (timeout x (retries + 1)). Default 10.
   */
  maxTimeoutS?: number;
  /** netascii transfers are converted as they are read; larger files are refused. */
  maxNetasciiBytes?: number;
  /**
   * After sending a window, keep the event loop polling for up to this many
   * microseconds instead of sleeping until the ACK: only while transfers are
   * active, backing off when it does not pay (busy-poll.ts). Default 200; 0
   * turns it off.
   */
  busyPollUs?: number;
}

export interface TftpStats {
  requests: number;
  transfersActive: number;
  transfersCompleted: number;
  transfersFailed: number;
  /** Client sent ERROR right after our OACK (firmware tsize probe). */
  abortedAfterOack: number;
  bytesSent: number;
  blocksSent: number;
  retransmits: number;
  duplicateAcks: number;
  notFound: number;
  refused: number;
  writeRefused: number;
  busy: number;
  wrongTid: number;
  malformed: number;
}

const noopLogger: TftpLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** RFC 2348: valid blksize range. */
const BLKSIZE_MIN = 8;
const BLKSIZE_MAX = 65464;
const DEFAULT_BLKSIZE = 512;
const READAHEAD_BYTES = 256 * 1024;
/** A warning that a flood repeats is logged at most once per key in this interval. */
const LOG_INTERVAL_MS = 10_000;

export function bufferContent(buf: Buffer): TftpContent {
  return {
    size: buf.length,
    async read(offset, length) {
      return buf.subarray(offset, Math.min(buf.length, offset + length));
    },
  };
}

/** RFC 1350 / RFC 764: netascii line ends are CR LF, a bare CR is CR NUL. */
export function toNetascii(buf: Buffer): Buffer {
  return convertNetascii(buf, 0, buf.length + lineEnds(buf));
}

/** How many bytes netascii adds to buf: one per LF and one per CR. */
function lineEnds(buf: Buffer): number {
  let extra = 0;
  for (let i = buf.indexOf(0x0a); i !== -1; i = buf.indexOf(0x0a, i + 1)) extra++;
  for (let i = buf.indexOf(0x0d); i !== -1; i = buf.indexOf(0x0d, i + 1)) extra++;
  return extra;
}

/** netascii of buf[from..], stopping once `max` output bytes are written (the last byte pair may be cut). */
function convertNetascii(buf: Buffer, from: number, max: number): Buffer {
  const out = Buffer.allocUnsafe(max);
  let j = 0;
  for (let i = from; i < buf.length && j < max; i++) {
    const b = buf[i]!;
    if (b === 0x0a) {
      out[j++] = 0x0d;
      if (j < max) out[j++] = 0x0a;
    } else if (b === 0x0d) {
      out[j++] = 0x0d;
      if (j < max) out[j++] = 0x00;
    } else out[j++] = b;
  }
  return j === max ? out : out.subarray(0, j);
}

const NETASCII_CHUNK = 64 * 1024;

/**
 * netascii of `original`, converted as it is read: the size comes from a
 * counting pass in 64 KiB reads, and read() converts forward from a cursor,
 * so a transfer holds one read-ahead buffer, never the whole file (50 reads
 * of a 16 MiB file used to take 1 GB), and no step blocks the event loop
 * for longer than one chunk.
 */
export async function netasciiContent(original: TftpContent): Promise<TftpContent> {
  let size = original.size;
  for (let off = 0; off < original.size; off += NETASCII_CHUNK) {
    size += lineEnds(await original.read(off, Math.min(NETASCII_CHUNK, original.size - off)));
  }
  // Where the next output byte comes from: input offset, output offset, and
  // the second byte of a pair that the previous read cut in half.
  let inPos = 0;
  let outPos = 0;
  let carry: number | undefined;
  const rewind = () => {
    inPos = 0;
    outPos = 0;
    carry = undefined;
  };
  const produce = async (max: number): Promise<Buffer> => {
    const parts: Buffer[] = [];
    let got = 0;
    if (carry !== undefined && max > 0) {
      parts.push(Buffer.from([carry]));
      carry = undefined;
      got++;
    }
    while (got < max && inPos < original.size) {
      const input = await original.read(inPos, Math.min(NETASCII_CHUNK, original.size - inPos, max - got));
      if (input.length === 0) break;
      const out = convertNetascii(input, 0, Math.min(max - got, input.length * 2));
      // Input bytes used: every output byte is one input byte, plus one per pair completed.
      let used = 0;
      let k = 0;
      while (k < out.length) {
        const b = input[used]!;
        if (b === 0x0a || b === 0x0d) {
          if (k + 1 === out.length) {
            carry = b === 0x0a ? 0x0a : 0x00;
            k++;
          } else k += 2;
        } else k++;
        used++;
      }
      inPos += used;
      parts.push(out);
      got += out.length;
    }
    outPos += got;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, got);
  };
  return {
    size,
    async read(offset, length) {
      if (offset < outPos) rewind(); // not expected: reads move forward
      if (offset > outPos) await produce(offset - outPos);
      return produce(Math.max(0, Math.min(length, size - offset)));
    },
    close: () => original.close?.() ?? Promise.resolve(),
  };
}

function parseUint(value: string): number | undefined {
  return /^[0-9]{1,9}$/.test(value) ? Number(value) : undefined;
}

interface Negotiated {
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  clientTimeout: boolean;
  oack: TftpOption[];
}

export class TftpServer {
  private readonly opts: Required<
    Pick<
      TftpServerOptions,
      "port" | "bindAddress" | "maxBlksize" | "maxWindowsize" | "retries" | "timeoutMs" | "maxTransfers" | "maxPerClient" | "maxTimeoutS" | "maxNetasciiBytes" | "busyPollUs"
    >
  >;
  private readonly root: string | undefined;
  private readonly allowOutside: Set<string>;
  private readonly resolver: TftpResolver | undefined;
  private readonly log: TftpLogger;
  private socket: dgram.Socket | undefined;
  private readonly transfers = new Map<string, Transfer>();
  /** Transfers held per client address (maxPerClient). */
  private readonly perClient = new Map<string, number>();
  private readonly intervalLog: IntervalLog;
  private readonly counters: Omit<TftpStats, "transfersActive">;
  /** @internal used by Transfer */
  readonly busyPoll: BusyPoll;

  constructor(options: TftpServerOptions = {}) {
    this.opts = {
      port: options.port ?? 69,
      bindAddress: options.bindAddress ?? "0.0.0.0",
      maxBlksize: Math.max(BLKSIZE_MIN, Math.min(BLKSIZE_MAX, options.maxBlksize ?? 1468)),
      maxWindowsize: Math.max(1, Math.min(65535, options.maxWindowsize ?? 16)),
      retries: options.retries ?? 5,
      timeoutMs: options.timeoutMs ?? 1000,
      maxTransfers: options.maxTransfers ?? 200,
      maxPerClient: options.maxPerClient ?? 8,
      maxTimeoutS: options.maxTimeoutS ?? 10,
      maxNetasciiBytes: options.maxNetasciiBytes ?? 16 * 1024 * 1024,
      busyPollUs: Math.max(0, options.busyPollUs ?? 200),
    };
    this.busyPoll = new BusyPoll(this.opts.busyPollUs, () => this.transfers.size > 0);
    this.resolver = options.resolver;
    const useDefault = options.root === undefined && options.resolver === undefined;
    this.root = useDefault ? defaultIpxeRoot() : options.root;
    // Debian's ipxe.efi/ipxe.lkrn are links into /boot: allowed when serving that folder.
    const ipxeRoot = defaultIpxeRoot();
    const servesIpxe = this.root !== undefined && ipxeRoot !== undefined && path.resolve(this.root) === ipxeRoot;
    this.allowOutside = new Set(options.allowOutside ?? (servesIpxe ? defaultIpxeAllowOutside() : []));
    this.log = options.logger ?? noopLogger;
    this.intervalLog = new IntervalLog(this.log, LOG_INTERVAL_MS);
    this.counters = {
      requests: 0,
      transfersCompleted: 0,
      transfersFailed: 0,
      abortedAfterOack: 0,
      bytesSent: 0,
      blocksSent: 0,
      retransmits: 0,
      duplicateAcks: 0,
      notFound: 0,
      refused: 0,
      writeRefused: 0,
      busy: 0,
      wrongTid: 0,
      malformed: 0,
    };
  }

  async start(): Promise<void> {
    if (this.socket) return;
    const socket = dgram.createSocket(isIPv6(this.opts.bindAddress) ? "udp6" : "udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(this.opts.port, this.opts.bindAddress, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    socket.on("error", (err) => this.log.error({ err: err.message }, "tftp: socket error"));
    socket.on("message", (msg, rinfo) => this.onRequest(msg, { address: rinfo.address, port: rinfo.port }));
    this.socket = socket;
    this.log.info({ ...this.address(), root: this.root, resolver: this.resolver !== undefined }, "tftp: listening");
  }

  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    for (const t of [...this.transfers.values()]) t.abort("server stopping");
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  address(): { address: string; port: number } {
    if (!this.socket) throw new Error("tftp server not started");
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  stats(): TftpStats {
    return { ...this.counters, transfersActive: this.transfers.size };
  }

  /** @internal used by Transfer */
  count(key: keyof Omit<TftpStats, "transfersActive">, n = 1): void {
    this.counters[key] += n;
  }

  private onRequest(msg: Buffer, client: TftpClient): void {
    let packet: TftpPacket;
    try {
      packet = decodePacket(msg);
    } catch (err) {
      this.counters.malformed++;
      this.log.debug({ client, reason: err instanceof TftpPacketError ? err.reason : String(err) }, "tftp: dropped datagram");
      return;
    }
    if (packet.op !== "RRQ" && packet.op !== "WRQ") {
      // DATA/ACK/ERROR belong on a transfer's own port, not here.
      this.counters.malformed++;
      this.log.debug({ client, op: packet.op }, "tftp: unexpected packet on the request port");
      return;
    }
    this.counters.requests++;
    const key = `${client.address}:${client.port}`;
    if (this.transfers.has(key)) {
      // A retransmitted request while its transfer runs: the transfer's own
      // retransmission answers it; a second TID would only confuse the client.
      this.log.debug({ client, file: packet.filename }, "tftp: duplicate request ignored");
      return;
    }
    if (packet.op === "WRQ") {
      this.counters.writeRefused++;
      this.log.info({ client, file: packet.filename.slice(0, 200) }, "tftp: write request refused");
      this.sendFromMain(client, ErrorCode.ACCESS_VIOLATION, "server is read-only");
      return;
    }
    if (this.transfers.size >= this.opts.maxTransfers) {
      this.counters.busy++;
      this.intervalLog.write("busy", "warn", { client, file: packet.filename.slice(0, 200), active: this.transfers.size }, "tftp: too many transfers");
      this.sendFromMain(client, ErrorCode.NOT_DEFINED, "server busy, try again");
      return;
    }
    const held = this.perClient.get(client.address) ?? 0;
    if (held >= this.opts.maxPerClient) {
      this.counters.busy++;
      this.intervalLog.write(`client:${client.address}`, "warn", { client, file: packet.filename.slice(0, 200), held }, "tftp: too many transfers from one address");
      this.sendFromMain(client, ErrorCode.NOT_DEFINED, "too many transfers from your address");
      return;
    }
    const transfer = new Transfer(this, key, client, this.log, this.opts);
    this.transfers.set(key, transfer);
    this.perClient.set(client.address, held + 1);
    transfer.run(packet.filename, packet.mode, packet.options).catch((err: unknown) => {
      this.log.error({ client, err: (err as Error).message }, "tftp: transfer error");
      transfer.abort("internal error");
    });
  }

  private sendFromMain(client: TftpClient, code: number, message: string): void {
    try {
      this.socket?.send(encodeError(code, message), client.port, client.address);
    } catch (err) {
      this.log.debug({ client, err: (err as Error).message }, "tftp: send failed");
    }
  }

  /** @internal */
  transferEnded(key: string, transfer: Transfer, client: TftpClient): void {
    if (this.transfers.get(key) !== transfer) return;
    this.transfers.delete(key);
    const held = (this.perClient.get(client.address) ?? 1) - 1;
    if (held > 0) this.perClient.set(client.address, held);
    else this.perClient.delete(client.address);
  }


  /** @internal Finds the content for a request path; resolver first, then the root. */
  async openContent(
    rawPath: string,
    client: TftpClient,
  ): Promise<{ ok: true; content: TftpContent; path: string } | { ok: false; code: number; message: string; reason: string }> {
    const norm = normaliseRequestPath(rawPath);
    if (!norm.ok) {
      this.counters.refused++;
      return { ok: false, code: ErrorCode.ACCESS_VIOLATION, message: "access violation", reason: norm.reason };
    }
    const rel = norm.segments.join("/");
    if (this.resolver) {
      const content = await this.resolver(rel, client);
      if (content) return { ok: true, content, path: rel };
    }
    if (this.root !== undefined) {
      const opened = await openInsideRoot(this.root, norm.segments, this.allowOutside);
      if (opened.ok) {
        const { handle, size } = opened;
        const content: TftpContent = {
          size,
          async read(offset, length) {
            const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, size - offset)));
            let got = 0;
            while (got < buf.length) {
              const { bytesRead } = await handle.read(buf, got, buf.length - got, offset + got);
              if (bytesRead === 0) break; // file shrank under us: send what there is
              got += bytesRead;
            }
            return got === buf.length ? buf : buf.subarray(0, got);
          },
          close: () => handle.close(),
        };
        return { ok: true, content, path: rel };
      }
      if (opened.code === "refused") {
        this.counters.refused++;
        return { ok: false, code: ErrorCode.ACCESS_VIOLATION, message: "access violation", reason: opened.reason };
      }
    }
    this.counters.notFound++;
    return { ok: false, code: ErrorCode.FILE_NOT_FOUND, message: "file not found", reason: "no such file" };
  }
}

type TransferState = "opening" | "oack" | "data" | "done";

/** One RRQ, from request to last ACK, on its own socket. */
class Transfer {
  private socket: dgram.Socket | undefined;
  private state: TransferState = "opening";
  private content: TftpContent | undefined;
  private path = "";
  private neg: Negotiated;
  private lastBlock = 0;
  /** First block not yet acknowledged (blocks count from 1, never wrap here). */
  private base = 1;
  /** Highest block sent so far. */
  private sentUpTo = 0;
  private attempts = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Bumped on each (re)send so an older, still-reading send gives up. */
  private sendGeneration = 0;
  private cache: { offset: number; data: Buffer } = { offset: 0, data: Buffer.alloc(0) };
  private readonly startedAt = Date.now();

  constructor(
    private readonly server: TftpServer,
    private readonly key: string,
    private readonly client: TftpClient,
    private readonly log: TftpLogger,
    private readonly opts: { bindAddress: string; maxBlksize: number; maxWindowsize: number; retries: number; timeoutMs: number; maxTimeoutS: number; maxNetasciiBytes: number },
  ) {
    this.neg = { blksize: DEFAULT_BLKSIZE, windowsize: 1, timeoutMs: opts.timeoutMs, clientTimeout: false, oack: [] };
  }

  async run(filename: string, mode: string, options: TftpOption[]): Promise<void> {
    try {
      await this.openSocket();
      if (this.done) return;
      if (mode !== "octet" && mode !== "netascii") {
        this.fail(ErrorCode.ILLEGAL_OPERATION, `unsupported mode ${mode.slice(0, 20)}`, "unsupported mode");
        return;
      }
      const found = await this.server.openContent(filename, this.client);
      if (this.done) {
        // Ended while the file was being opened (client ERROR, server stop).
        if (found.ok) await found.content.close?.();
        return;
      }
      if (!found.ok) {
        this.log.info({ client: this.client, file: filename.slice(0, 200), reason: found.reason }, "tftp: request refused");
        this.sendError(found.code, found.message);
        this.end(false);
        return;
      }
      this.content = found.content;
      this.path = found.path;
      if (mode === "netascii") {
        const original = found.content;
        if (original.size > this.opts.maxNetasciiBytes) {
          this.fail(ErrorCode.NOT_DEFINED, "file too large for netascii", "netascii file too large");
          return;
        }
        this.content = await netasciiContent(original);
        if (this.done) return;
      }
      this.neg = this.negotiate(options, this.content.size);
      this.lastBlock = Math.floor(this.content.size / this.neg.blksize) + 1;
      if (this.neg.oack.length > 0) {
        this.state = "oack";
        this.sendOack();
      } else {
        this.state = "data";
        this.sendWindow();
      }
    } catch (err) {
      this.log.error({ client: this.client, file: filename.slice(0, 200), err: (err as Error).message }, "tftp: transfer error");
      this.fail(ErrorCode.NOT_DEFINED, "internal error", "internal error");
    }
  }

  /** True once the transfer has ended (its socket is closed or closing). */
  get done(): boolean {
    return this.state === "done";
  }

  /** RFC 2347: answer only the options understood, each with the value used. */
  private negotiate(options: TftpOption[], size: number): Negotiated {
    const n: Negotiated = { blksize: DEFAULT_BLKSIZE, windowsize: 1, timeoutMs: this.opts.timeoutMs, clientTimeout: false, oack: [] };
    const seen = new Set<string>();
    for (const { name, value } of options) {
      if (seen.has(name)) continue;
      seen.add(name);
      const v = parseUint(value);
      switch (name) {
        case "blksize": // RFC 2348: 8..65464; we may answer smaller
          if (v !== undefined && v >= BLKSIZE_MIN) {
            n.blksize = Math.min(v, BLKSIZE_MAX, this.opts.maxBlksize);
            n.oack.push({ name, value: String(n.blksize) });
          }
          break;
        case "timeout": // RFC 2349: 1..255 seconds; the OACK must echo it, so above our cap it is declined
          if (v !== undefined && v >= 1 && v <= Math.min(255, this.opts.maxTimeoutS)) {
            n.timeoutMs = v * 1000;
            n.clientTimeout = true;
            n.oack.push({ name, value: String(v) });
          }
          break;
        case "tsize": // RFC 2349: on RRQ the client sends 0, we answer the size
          if (v !== undefined) n.oack.push({ name, value: String(size) });
          break;
        case "windowsize": // RFC 7440: 1..65535
          if (v !== undefined && v >= 1 && v <= 65535) {
            n.windowsize = Math.min(v, this.opts.maxWindowsize);
            n.oack.push({ name, value: String(n.windowsize) });
          }
          break;
        default:
          break; // unknown options are left out of the OACK
      }
    }
    return n;
  }

  private openSocket(): Promise<void> {
    const family = isIPv6(this.opts.bindAddress) ? 6 : 4;
    const socket = dgram.createSocket({
      type: family === 6 ? "udp6" : "udp4",
      // The peer is always a literal address: skip the resolver on every send.
      lookup: (address, _opts, cb) => cb(null, address, family),
    });
    if (this.state === "done") {
      socket.close();
      return Promise.resolve();
    }
    this.socket = socket;
    socket.on("message", (msg, rinfo) => this.onMessage(msg, rinfo));
    socket.on("error", (err) => {
      this.log.warn({ client: this.client, err: err.message }, "tftp: transfer socket error");
    });
    return new Promise<void>((resolve) => socket.bind(0, this.opts.bindAddress, () => resolve()));
  }

  /**
   * Never throws: after end() the socket is gone (a send on a closed dgram
   * socket throws ERR_SOCKET_DGRAM_NOT_RUNNING, which used to end the
   * process), and errors of a send in flight reach the socket's error handler.
   */
  private send(buf: Buffer, to: TftpClient = this.client): void {
    const socket = this.socket;
    if (!socket) return;
    try {
      socket.send(buf, to.port, to.address);
    } catch (err) {
      this.log.debug({ client: this.client, err: (err as Error).message }, "tftp: send failed");
    }
  }

  private sendError(code: number, message: string): void {
    this.send(encodeError(code, message));
  }

  private currentTimeout(): number {
    // A timeout the client asked for is used as is (RFC 2349); ours backs off.
    if (this.neg.clientTimeout) return this.neg.timeoutMs;
    return this.neg.timeoutMs * Math.min(8, 2 ** this.attempts);
  }

  private armedMs = 0;

  private arm(): void {
    const ms = this.currentTimeout();
    if (this.timer && this.armedMs === ms) {
      this.timer.refresh(); // cheaper than a new timer per block
      return;
    }
    clearTimeout(this.timer);
    this.armedMs = ms;
    this.timer = setTimeout(() => this.onTimeout(), ms);
  }

  private onTimeout(): void {
    if (this.state !== "oack" && this.state !== "data") return;
    this.attempts++;
    if (this.attempts > this.opts.retries) {
      this.log.info({ client: this.client, file: this.path, block: this.base }, "tftp: client stopped answering");
      this.fail(ErrorCode.NOT_DEFINED, "timed out", "timeout");
      return;
    }
    this.server.count("retransmits");
    if (this.state === "oack") this.sendOack();
    else this.sendWindow();
  }

  private sendOack(): void {
    this.send(encodeOack(this.neg.oack));
    this.arm();
    this.server.busyPoll.expectAnswer();
  }

  /** Block n's bytes when the read-ahead buffer holds them, else undefined. */
  private cachedBlock(n: number): Buffer | undefined {
    const offset = (n - 1) * this.neg.blksize;
    const length = Math.max(0, Math.min(this.neg.blksize, this.content!.size - offset));
    const c = this.cache;
    if (length === 0) return Buffer.alloc(0);
    if (offset >= c.offset && offset + length <= c.offset + c.data.length) {
      return c.data.subarray(offset - c.offset, offset - c.offset + length);
    }
    return undefined;
  }

  /** Refills the read-ahead buffer from block n on, in one large read. */
  private async fill(n: number): Promise<void> {
    const content = this.content!;
    const offset = (n - 1) * this.neg.blksize;
    const want = Math.max(READAHEAD_BYTES, this.neg.blksize * this.neg.windowsize);
    const data = await content.read(offset, Math.max(0, Math.min(want, content.size - offset)));
    this.cache = { offset, data };
  }

  /**
   * Sends blocks base .. base+windowsize-1 (RFC 7440 section 4), then waits
   * for an ACK. Synchronous while the read-ahead buffer holds the window, so
   * the common path costs no promise round trip.
   */
  private sendWindow(): void {
    const generation = ++this.sendGeneration;
    const last = Math.min(this.base + this.neg.windowsize - 1, this.lastBlock);
    for (let n = this.base; n <= last; n++) {
      if (this.cachedBlock(n) === undefined) {
        this.fill(n).then(
          () => {
            if (generation === this.sendGeneration && this.state === "data") this.sendWindow();
          },
          (err: unknown) => {
            this.log.error({ client: this.client, file: this.path, err: (err as Error).message }, "tftp: read failed");
            this.fail(ErrorCode.NOT_DEFINED, "read error", "read error");
          },
        );
        return;
      }
    }
    for (let n = this.base; n <= last; n++) {
      const data = this.cachedBlock(n)!;
      this.send(encodeData(n, data));
      this.server.count("blocksSent");
      this.server.count("bytesSent", data.length);
    }
    this.sentUpTo = Math.max(this.sentUpTo, last);
    this.arm();
    this.server.busyPoll.expectAnswer();
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.server.busyPoll.heard();
    if (this.state === "done") return;
    if (rinfo.address !== this.client.address || rinfo.port !== this.client.port) {
      // RFC 1350 section 4: another TID gets ERROR 5, our transfer goes on.
      this.server.count("wrongTid");
      this.log.debug({ client: this.client, from: { address: rinfo.address, port: rinfo.port } }, "tftp: packet from unknown TID");
      this.send(encodeError(ErrorCode.UNKNOWN_TID, "unknown transfer ID"), { address: rinfo.address, port: rinfo.port });
      return;
    }
    let packet: TftpPacket;
    try {
      packet = decodePacket(msg);
    } catch {
      this.server.count("malformed");
      return;
    }
    switch (packet.op) {
      case "ACK":
        this.onAck(packet.block);
        return;
      case "ERROR":
        if (this.state === "oack") {
          // Firmware asks for tsize, then aborts to allocate memory: not a failure.
          this.server.count("abortedAfterOack");
          this.log.debug({ client: this.client, file: this.path, code: packet.code }, "tftp: client ended after OACK");
          this.end(true, false);
        } else {
          this.log.info(
            { client: this.client, file: this.path, code: packet.code, message: packet.message.slice(0, 100) },
            "tftp: client aborted transfer",
          );
          this.end(false);
        }
        return;
      default:
        this.server.count("malformed");
        this.fail(ErrorCode.ILLEGAL_OPERATION, "illegal TFTP operation", `unexpected ${packet.op}`);
    }
  }

  private onAck(wireBlock: number): void {
    if (this.state === "oack") {
      if (wireBlock !== 0) return;
      this.state = "data";
      this.attempts = 0;
      this.sendWindow();
      return;
    }
    if (this.state !== "data") return;
    // Map the 16-bit block number onto our counter: blocks roll over 65535 -> 0.
    const diff = (wireBlock - ((this.base - 1) & 0xffff)) & 0xffff;
    const acked = this.base - 1 + diff;
    if (diff === 0) {
      // A repeated ACK must not trigger a resend (Sorcerer's Apprentice, RFC 1123 4.2.3.1);
      // the retransmit timer handles real loss.
      this.server.count("duplicateAcks");
      return;
    }
    if (acked > this.sentUpTo) return; // old or bogus
    if (acked >= this.lastBlock) {
      this.end(true);
      return;
    }
    this.base = acked + 1;
    this.attempts = 0;
    this.sendWindow();
  }

  private fail(code: number, message: string, reason: string): void {
    if (this.state === "done") return;
    this.log.debug({ client: this.client, file: this.path, reason }, "tftp: transfer failed");
    this.sendError(code, message);
    this.end(false);
  }

  abort(message: string): void {
    this.fail(ErrorCode.NOT_DEFINED, message, message);
  }

  private end(ok: boolean, counted = true): void {
    if (this.state === "done") return;
    const wasData = this.state === "data";
    this.state = "done";
    clearTimeout(this.timer);
    this.sendGeneration++;
    if (counted) this.server.count(ok ? "transfersCompleted" : "transfersFailed");
    if (ok && wasData) {
      this.log.info(
        {
          client: this.client,
          file: this.path,
          bytes: this.content?.size,
          blksize: this.neg.blksize,
          windowsize: this.neg.windowsize,
          ms: Date.now() - this.startedAt,
        },
        "tftp: sent",
      );
    }
    const socket = this.socket;
    this.socket = undefined;
    // Let queued sends (a final ERROR) leave before closing.
    if (socket) setImmediate(() => socket.close());
    void this.content?.close?.().catch(() => undefined);
    this.server.transferEnded(this.key, this, this.client);
  }
}
