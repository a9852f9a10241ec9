// BOOTP/DHCP message codec: RFC 2131 §2 (message format), RFC 2132 (options),
// RFC 3396 (long options split into several instances), RFC 2132 §9.3
// (option overload of the sname and file fields). Pure functions on Buffers;
// malformed input throws DhcpParseError and nothing else.

/** Thrown for any input that is not a well-formed BOOTP/DHCP message. */
export class DhcpParseError extends Error {
  override readonly name = "DhcpParseError";
  constructor(
    message: string,
    /** Byte offset in the input where the problem was found. */
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
  }
}

/** RFC 2131 §3.1 / RFC 2132 §9.6: the DHCP message type, option 53. */
export const MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType];

export const MESSAGE_TYPE_NAMES: Record<number, string> = {
  1: "DISCOVER",
  2: "OFFER",
  3: "REQUEST",
  4: "DECLINE",
  5: "ACK",
  6: "NAK",
  7: "RELEASE",
  8: "INFORM",
};

/** Option codes used by gitrack (RFC 2132 unless noted). */
export const Opt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  BROADCAST: 28,
  VENDOR_SPECIFIC: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER: 66,
  BOOTFILE: 67,
  USER_CLASS: 77, // RFC 3004
  RELAY_AGENT: 82, // RFC 3046
  CLIENT_ARCH: 93, // RFC 4578 §2.1
  CLIENT_NDI: 94, // RFC 4578 §2.2
  CLIENT_MACHINE_ID: 97, // RFC 4578 §2.3
  IPXE_ENCAP: 175, // iPXE encapsulated options
  END: 255,
} as const;

/** iPXE sub-options inside option 175. */
export const IpxeOpt = { NO_PXEDHCP: 176 } as const;

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
/** RFC 2131 §2: the leftmost bit of flags is the BROADCAST flag. */
export const FLAG_BROADCAST = 0x8000;
/** RFC 2131 §3: 99.130.83.99 at the start of the options field. */
export const MAGIC_COOKIE = 0x63825363;

const HEADER_LEN = 236; // op..file, RFC 2131 §2 figure 1
const SNAME_OFF = 44;
const SNAME_LEN = 64;
const FILE_OFF = 108;
const FILE_LEN = 128;
const OPTIONS_OFF = 240; // after the magic cookie
/** RFC 1542 §3.2.1: BOOTP messages are at least 300 octets. */
const MIN_MESSAGE_LEN = 300;
/** RFC 2131 §2: a client must accept messages of 576 octets (IP + UDP + DHCP). */
export const DEFAULT_MAX_MESSAGE = 576 - 28;

/**
 * A decoded message. Options are kept raw: one Buffer per option code, the
 * values of repeated instances already concatenated (RFC 3396 §5), in the
 * order they first appeared.
 */
export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** All 16 bytes of chaddr; the hardware address is the first hlen. */
  chaddr: Buffer;
  /** Empty when the field carried options (overload). */
  sname: string;
  file: string;
  options: Map<number, Buffer>;
}

/** What serialize() needs; omitted fields are zero or empty. */
export interface DhcpMessageInit {
  op: number;
  htype?: number;
  hlen?: number;
  hops?: number;
  xid: number;
  secs?: number;
  flags?: number;
  ciaddr?: string;
  yiaddr?: string;
  siaddr?: string;
  giaddr?: string;
  chaddr: Buffer;
  sname?: string;
  file?: string;
  /** Written in this order; option 53 should come first (RFC 2131 §4.1 advice). */
  options: Array<[number, Buffer]> | Map<number, Buffer>;
}

// ---------------------------------------------------------------------------
// Decoding

/**
 * Decodes one BOOTP/DHCP message (RFC 2131 §2). Throws DhcpParseError for a
 * short message, a missing magic cookie, an option running past its field,
 * or an overload option with a bad value.
 */
export function parseMessage(buf: Buffer): DhcpMessage {
  if (!Buffer.isBuffer(buf)) throw new DhcpParseError("input is not a buffer", 0);
  if (buf.length < OPTIONS_OFF) {
    throw new DhcpParseError(`message too short: ${buf.length} bytes, need at least ${OPTIONS_OFF}`, buf.length);
  }
  const op = buf[0];
  if (op !== BOOTREQUEST && op !== BOOTREPLY) throw new DhcpParseError(`bad op ${op}`, 0);
  const hlen = buf[2];
  if (hlen > 16) throw new DhcpParseError(`bad hlen ${hlen}`, 2);
  const cookie = buf.readUInt32BE(HEADER_LEN);
  if (cookie !== MAGIC_COOKIE) {
    throw new DhcpParseError(`bad magic cookie 0x${cookie.toString(16).padStart(8, "0")}`, HEADER_LEN);
  }

  // RFC 3396 §5: instances of one code are concatenated in the order
  // options field, then file, then sname.
  const parts = new Map<number, Buffer[]>();
  const overloadAt = readOptionArea(buf, OPTIONS_OFF, buf.length, parts, true);
  let overload = 0;
  const ov = parts.get(Opt.OVERLOAD);
  if (ov) {
    const v = Buffer.concat(ov);
    if (v.length !== 1 || v[0] < 1 || v[0] > 3) throw new DhcpParseError("bad option overload (52) value", overloadAt);
    overload = v[0];
  }
  if (overload & 1) readOptionArea(buf, FILE_OFF, FILE_OFF + FILE_LEN, parts, false);
  if (overload & 2) readOptionArea(buf, SNAME_OFF, SNAME_OFF + SNAME_LEN, parts, false);

  const options = new Map<number, Buffer>();
  for (const [code, vals] of parts) options.set(code, vals.length === 1 ? vals[0] : Buffer.concat(vals));

  return {
    op,
    htype: buf[1],
    hlen,
    hops: buf[3],
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: ipAt(buf, 12),
    yiaddr: ipAt(buf, 16),
    siaddr: ipAt(buf, 20),
    giaddr: ipAt(buf, 24),
    chaddr: Buffer.from(buf.subarray(28, 44)),
    sname: overload & 2 ? "" : cString(buf, SNAME_OFF, SNAME_LEN),
    file: overload & 1 ? "" : cString(buf, FILE_OFF, FILE_LEN),
    options,
  };
}

/**
 * Reads options (RFC 2132 §2) from buf[start, end) into parts. Pad (0) is
 * one byte with no length; End (255) stops the area. An area that simply
 * runs out without End is accepted (some clients omit it); an option whose
 * length runs past the area is not. Returns the offset of option 52, if seen.
 */
function readOptionArea(buf: Buffer, start: number, end: number, parts: Map<number, Buffer[]>, main: boolean): number {
  let i = start;
  let overloadAt = -1;
  while (i < end) {
    const code = buf[i];
    if (code === Opt.PAD) {
      i += 1;
      continue;
    }
    if (code === Opt.END) return overloadAt;
    if (i + 1 >= end) throw new DhcpParseError(`option ${code} has no length byte`, i);
    const len = buf[i + 1];
    if (i + 2 + len > end) throw new DhcpParseError(`option ${code} length ${len} runs past the end`, i);
    if (code === Opt.OVERLOAD) {
      // RFC 2132 §9.3: only meaningful in the options field itself.
      if (!main) throw new DhcpParseError("option overload (52) inside an overloaded field", i);
      overloadAt = i;
    }
    const list = parts.get(code);
    const val = buf.subarray(i + 2, i + 2 + len);
    if (list) list.push(val);
    else parts.set(code, [val]);
    i += 2 + len;
  }
  return overloadAt;
}

/**
 * Decodes an encapsulated option list: vendor-specific information (43,
 * RFC 2132 §8.4), relay agent information (82, RFC 3046 §2.0) or iPXE's 175.
 * Same layout as the options field; repeated sub-options are concatenated.
 */
export function parseSubOptions(value: Buffer): Map<number, Buffer> {
  const parts = new Map<number, Buffer[]>();
  readOptionArea(value, 0, value.length, parts, false);
  const out = new Map<number, Buffer>();
  for (const [code, vals] of parts) out.set(code, Buffer.concat(vals));
  return out;
}

// ---------------------------------------------------------------------------
// Encoding

/** Encodes sub-options (for 43, 82, 175), ending with End (255). */
export function encodeSubOptions(subs: Array<[number, Buffer]>, withEnd = true): Buffer {
  const chunks: Buffer[] = [];
  for (const [code, val] of subs) chunks.push(...encodeOption(code, val));
  if (withEnd) chunks.push(Buffer.from([Opt.END]));
  return Buffer.concat(chunks);
}

/**
 * One option as one or more TLV instances: values longer than 255 octets are
 * split into consecutive instances of the same code (RFC 3396 §7).
 */
export function encodeOption(code: number, value: Buffer): Buffer[] {
  if (code === Opt.PAD || code === Opt.END) throw new RangeError(`option ${code} has no value`);
  if (!Number.isInteger(code) || code < 1 || code > 254) throw new RangeError(`bad option code ${code}`);
  const out: Buffer[] = [];
  let off = 0;
  do {
    const len = Math.min(255, value.length - off);
    const tlv = Buffer.allocUnsafe(2 + len);
    tlv[0] = code;
    tlv[1] = len;
    value.copy(tlv, 2, off, off + len);
    out.push(tlv);
    off += len;
  } while (off < value.length);
  return out;
}

/**
 * Encodes a message. Options go into the options field; when they do not
 * fit in maxSize (default 548, RFC 2131 §2) and sname/file are unused, the
 * rest go into file and then sname with option 52 (RFC 2132 §9.3). The
 * result is padded to 300 octets (RFC 1542 §3.2.1).
 */
export function serializeMessage(m: DhcpMessageInit, maxSize = DEFAULT_MAX_MESSAGE): Buffer {
  const sname = m.sname ?? "";
  const file = m.file ?? "";
  const snameBytes = Buffer.from(sname, "utf8");
  const fileBytes = Buffer.from(file, "utf8");
  if (snameBytes.length > SNAME_LEN - 1) throw new RangeError(`sname longer than ${SNAME_LEN - 1} bytes`);
  if (fileBytes.length > FILE_LEN - 1) throw new RangeError(`file longer than ${FILE_LEN - 1} bytes`);
  if (m.chaddr.length > 16) throw new RangeError("chaddr longer than 16 bytes");

  const entries = m.options instanceof Map ? [...m.options] : m.options;
  const tlvs: Buffer[] = [];
  for (const [code, val] of entries) {
    if (code === Opt.OVERLOAD) continue; // computed below
    tlvs.push(...encodeOption(code, val));
  }

  // Fill the options field first; spill into file, then sname, if allowed.
  const budget = Math.max(maxSize, MIN_MESSAGE_LEN) - OPTIONS_OFF;
  const total = tlvs.reduce((n, t) => n + t.length, 0) + 1; // + End
  const main: Buffer[] = [];
  const inFile: Buffer[] = [];
  const inSname: Buffer[] = [];
  let overload = 0;
  if (total <= budget) {
    main.push(...tlvs);
  } else {
    const mainRoom = budget - 1 - 3; // End + option 52
    let used = 0;
    let fileUsed = 0;
    let snameUsed = 0;
    for (const t of tlvs) {
      if (used + t.length <= mainRoom && inFile.length === 0 && inSname.length === 0) {
        main.push(t);
        used += t.length;
      } else if (file === "" && fileUsed + t.length <= FILE_LEN - 1 && inSname.length === 0) {
        inFile.push(t);
        fileUsed += t.length;
        overload |= 1;
      } else if (sname === "" && snameUsed + t.length <= SNAME_LEN - 1) {
        inSname.push(t);
        snameUsed += t.length;
        overload |= 2;
      } else {
        throw new RangeError(`options do not fit in a ${maxSize}-byte message`);
      }
    }
    main.push(Buffer.from([Opt.OVERLOAD, 1, overload]));
  }

  const optLen = main.reduce((n, t) => n + t.length, 0) + 1;
  const len = Math.max(OPTIONS_OFF + optLen, MIN_MESSAGE_LEN);
  const buf = Buffer.alloc(len);
  buf[0] = m.op;
  buf[1] = m.htype ?? 1;
  buf[2] = m.hlen ?? 6;
  buf[3] = m.hops ?? 0;
  buf.writeUInt32BE(m.xid >>> 0, 4);
  buf.writeUInt16BE(m.secs ?? 0, 8);
  buf.writeUInt16BE(m.flags ?? 0, 10);
  writeIp(buf, 12, m.ciaddr);
  writeIp(buf, 16, m.yiaddr);
  writeIp(buf, 20, m.siaddr);
  writeIp(buf, 24, m.giaddr);
  m.chaddr.copy(buf, 28);
  if (overload & 2) writeArea(buf, SNAME_OFF, inSname);
  else snameBytes.copy(buf, SNAME_OFF);
  if (overload & 1) writeArea(buf, FILE_OFF, inFile);
  else fileBytes.copy(buf, FILE_OFF);
  buf.writeUInt32BE(MAGIC_COOKIE, HEADER_LEN);
  let off = OPTIONS_OFF;
  for (const t of main) {
    t.copy(buf, off);
    off += t.length;
  }
  buf[off] = Opt.END;
  return buf;
}

function writeArea(buf: Buffer, start: number, tlvs: Buffer[]): void {
  let off = start;
  for (const t of tlvs) {
    t.copy(buf, off);
    off += t.length;
  }
  buf[off] = Opt.END;
}

// ---------------------------------------------------------------------------
// Addresses and option values

function ipAt(buf: Buffer, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

function writeIp(buf: Buffer, off: number, ip: string | undefined): void {
  if (!ip) return;
  buf.writeUInt32BE(ipToInt(ip), off);
}

function cString(buf: Buffer, off: number, len: number): string {
  const field = buf.subarray(off, off + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? len : nul).toString("latin1");
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(s: string): boolean {
  return IPV4_RE.test(s);
}

/** Dotted quad to an unsigned 32-bit integer. Throws RangeError if not IPv4. */
export function ipToInt(ip: string): number {
  if (!IPV4_RE.test(ip)) throw new RangeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  const p = ip.split(".");
  return ((+p[0] << 24) | (+p[1] << 16) | (+p[2] << 8) | +p[3]) >>> 0;
}

export function intToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** "aa:bb:cc:dd:ee:ff" from the first hlen bytes of chaddr. */
export function macOf(m: Pick<DhcpMessage, "chaddr" | "hlen">): string {
  const parts: string[] = [];
  for (let i = 0; i < m.hlen; i++) parts.push(m.chaddr[i].toString(16).padStart(2, "0"));
  return parts.join(":");
}

/** chaddr (16 bytes) from "aa:bb:.." or "aa-bb-..". */
export function macToChaddr(mac: string): Buffer {
  const bytes = mac.split(/[:-]/).map((h) => parseInt(h, 16));
  if (bytes.length < 1 || bytes.length > 16 || bytes.some((b) => !(b >= 0 && b <= 255))) {
    throw new RangeError(`not a hardware address: ${mac}`);
  }
  const buf = Buffer.alloc(16);
  Buffer.from(bytes).copy(buf);
  return buf;
}

/** Option value helpers (RFC 2132 §2 data types). */
export const enc = {
  ip: (ip: string): Buffer => {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(ipToInt(ip));
    return b;
  },
  ips: (ips: string[]): Buffer => Buffer.concat(ips.map((ip) => enc.ip(ip))),
  u8: (n: number): Buffer => Buffer.from([n & 255]),
  u16: (n: number): Buffer => {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16BE(n);
    return b;
  },
  u32: (n: number): Buffer => {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  },
  str: (s: string): Buffer => Buffer.from(s, "utf8"),
};

/** Reads an option as a single IPv4 address, or undefined if absent/not 4 bytes. */
export function optIp(m: DhcpMessage, code: number): string | undefined {
  const v = m.options.get(code);
  return v && v.length === 4 ? ipAt(v, 0) : undefined;
}

export function optU8(m: DhcpMessage, code: number): number | undefined {
  const v = m.options.get(code);
  return v && v.length === 1 ? v[0] : undefined;
}

export function optU16(m: DhcpMessage, code: number): number | undefined {
  const v = m.options.get(code);
  return v && v.length >= 2 ? v.readUInt16BE(0) : undefined;
}

export function optStr(m: DhcpMessage, code: number): string | undefined {
  const v = m.options.get(code);
  return v ? v.toString("latin1") : undefined;
}

/** Option 93 (RFC 4578 §2.1): a list of 16-bit architecture types; the first. */
export function clientArch(m: DhcpMessage): number | undefined {
  return optU16(m, Opt.CLIENT_ARCH);
}

/**
 * Option 77 user classes. RFC 3004 encodes a list of length-prefixed
 * strings; iPXE (and many firmwares) send one bare string. Both are read.
 */
export function userClasses(m: DhcpMessage): string[] {
  const v = m.options.get(Opt.USER_CLASS);
  if (!v || v.length === 0) return [];
  const out: string[] = [];
  let i = 0;
  while (i < v.length) {
    const len = v[i];
    if (len === 0 || i + 1 + len > v.length) return [v.toString("latin1")];
    out.push(v.subarray(i + 1, i + 1 + len).toString("latin1"));
    i += 1 + len;
  }
  return out;
}
