// TFTP packet codec. Field tables from RFC 1350 section 5, RFC 2347 (options
// appended to RRQ/WRQ, OACK opcode 6). Decoding never throws anything but a
// TftpPacketError, so a garbage datagram can be logged and dropped.

/** RFC 1350 section 5 opcodes, RFC 2347 OACK. */
export const Opcode = {
  RRQ: 1,
  WRQ: 2,
  DATA: 3,
  ACK: 4,
  ERROR: 5,
  OACK: 6,
} as const;

/** RFC 1350 appendix "Error Codes" (8 added by RFC 2347). */
export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_REFUSED: 8,
} as const;

/** A request option, name lowercased (RFC 2347: names are case-insensitive). */
export interface TftpOption {
  name: string;
  value: string;
}

export type TftpPacket =
  | { op: "RRQ" | "WRQ"; filename: string; mode: string; options: TftpOption[] }
  | { op: "DATA"; block: number; data: Buffer }
  | { op: "ACK"; block: number }
  | { op: "ERROR"; code: number; message: string }
  | { op: "OACK"; options: TftpOption[] };

export class TftpPacketError extends Error {
  override readonly name = "TftpPacketError";
  constructor(readonly reason: string) {
    super(`malformed TFTP packet: ${reason}`);
  }
}

/** Splits the NUL-terminated strings that follow the opcode. */
function readStrings(buf: Buffer, start: number): string[] {
  const out: string[] = [];
  let pos = start;
  while (pos < buf.length) {
    const end = buf.indexOf(0, pos);
    if (end < 0) throw new TftpPacketError("string not NUL-terminated");
    out.push(buf.toString("utf8", pos, end));
    pos = end + 1;
  }
  return out;
}

function readOptions(fields: string[]): TftpOption[] {
  if (fields.length % 2 !== 0) throw new TftpPacketError("option without value");
  const options: TftpOption[] = [];
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i].toLowerCase();
    if (name === "") throw new TftpPacketError("empty option name");
    options.push({ name, value: fields[i + 1] });
  }
  return options;
}

export function decodePacket(buf: Buffer): TftpPacket {
  if (buf.length < 2) throw new TftpPacketError("shorter than an opcode");
  const opcode = buf.readUInt16BE(0);
  switch (opcode) {
    case Opcode.RRQ:
    case Opcode.WRQ: {
      // 2 bytes opcode | filename | 0 | mode | 0 | [opt | 0 | value | 0]...
      const fields = readStrings(buf, 2);
      if (fields.length < 2) throw new TftpPacketError("request without filename and mode");
      const [filename, mode, ...rest] = fields;
      if (filename === "") throw new TftpPacketError("empty filename");
      // Some clients pad requests with trailing NULs; drop empty trailing fields.
      while (rest.length > 0 && rest[rest.length - 1] === "" && rest.length % 2 === 1) rest.pop();
      return {
        op: opcode === Opcode.RRQ ? "RRQ" : "WRQ",
        filename,
        mode: mode.toLowerCase(),
        options: readOptions(rest),
      };
    }
    case Opcode.DATA:
      // 2 bytes opcode | 2 bytes block | n bytes data
      if (buf.length < 4) throw new TftpPacketError("DATA shorter than its header");
      return { op: "DATA", block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case Opcode.ACK:
      // 2 bytes opcode | 2 bytes block
      if (buf.length < 4) throw new TftpPacketError("ACK shorter than 4 bytes");
      return { op: "ACK", block: buf.readUInt16BE(2) };
    case Opcode.ERROR: {
      // 2 bytes opcode | 2 bytes code | message | 0
      if (buf.length < 4) throw new TftpPacketError("ERROR shorter than its header");
      const end = buf.indexOf(0, 4);
      return {
        op: "ERROR",
        code: buf.readUInt16BE(2),
        // Lenient: a missing terminator still yields the message.
        message: buf.toString("utf8", 4, end < 0 ? buf.length : end),
      };
    }
    case Opcode.OACK:
      return { op: "OACK", options: readOptions(readStrings(buf, 2)) };
    default:
      throw new TftpPacketError(`unknown opcode ${opcode}`);
  }
}

function cstrings(values: string[]): Buffer[] {
  return values.flatMap((v) => [Buffer.from(v, "utf8"), Buffer.from([0])]);
}

function opcodeHeader(op: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(op, 0);
  return b;
}

export function encodeRequest(
  op: "RRQ" | "WRQ",
  filename: string,
  mode: string,
  options: TftpOption[] = [],
): Buffer {
  return Buffer.concat([
    opcodeHeader(op === "RRQ" ? Opcode.RRQ : Opcode.WRQ),
    ...cstrings([filename, mode, ...options.flatMap((o) => [o.name, o.value])]),
  ]);
}

/** DATA header and payload in one buffer; block is taken modulo 2^16 (rollover). */
export function encodeData(block: number, data: Buffer): Buffer {
  const b = Buffer.allocUnsafe(4 + data.length);
  b.writeUInt16BE(Opcode.DATA, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  data.copy(b, 4);
  return b;
}

export function encodeAck(block: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(Opcode.ACK, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

export function encodeError(code: number, message: string): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(Opcode.ERROR, 0);
  head.writeUInt16BE(code, 2);
  return Buffer.concat([head, ...cstrings([message])]);
}

export function encodeOack(options: TftpOption[]): Buffer {
  return Buffer.concat([opcodeHeader(Opcode.OACK), ...cstrings(options.flatMap((o) => [o.name, o.value]))]);
}
