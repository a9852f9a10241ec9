import { describe, expect, it } from "vitest";
import {
  DhcpParseError,
  MessageType,
  Opt,
  encodeSubOptions,
  enc,
  macOf,
  macToChaddr,
  parseMessage,
  parseSubOptions,
  serializeMessage,
  userClasses,
  clientArch,
} from "../../reconciler/services/dhcp/codec.js";

/** A DISCOVER laid out by hand, byte by byte, as RFC 2131 §2 draws it. */
function craftDiscover(options: number[]): Buffer {
  const head = Buffer.alloc(236);
  head[0] = 1; // op BOOTREQUEST
  head[1] = 1; // htype Ethernet
  head[2] = 6; // hlen
  head.writeUInt32BE(0xdeadbeef, 4); // xid
  head.writeUInt16BE(0x8000, 10); // flags: broadcast
  Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]).copy(head, 28);
  return Buffer.concat([head, Buffer.from([99, 130, 83, 99]), Buffer.from(options)]);
}

function parseError(buf: Buffer): DhcpParseError {
  try {
    parseMessage(buf);
  } catch (err) {
    expect(err).toBeInstanceOf(DhcpParseError);
    return err as DhcpParseError;
  }
  throw new Error("parsed without error");
}

describe("DHCP codec: decoding", () => {
  it("reads the fixed header fields and the options", () => {
    const m = parseMessage(craftDiscover([53, 1, 1, 50, 4, 10, 0, 0, 7, 255]));
    expect(m.op).toBe(1);
    expect(m.xid).toBe(0xdeadbeef);
    expect(m.flags).toBe(0x8000);
    expect(macOf(m)).toBe("52:54:00:12:34:56");
    expect(m.options.get(Opt.MESSAGE_TYPE)).toEqual(Buffer.from([MessageType.DISCOVER]));
    expect(m.options.get(Opt.REQUESTED_IP)).toEqual(Buffer.from([10, 0, 0, 7]));
  });

  it("skips a pad byte between options instead of reading it as an option", () => {
    const m = parseMessage(craftDiscover([53, 1, 1, 0, 55, 3, 1, 3, 6, 0, 0, 255]));
    expect([...m.options.keys()]).toEqual([53, 55]);
    expect(m.options.get(55)).toEqual(Buffer.from([1, 3, 6]));
  });

  it("ignores everything after the end option", () => {
    const m = parseMessage(craftDiscover([53, 1, 1, 255, 12, 3, 65, 66, 67]));
    expect(m.options.has(12)).toBe(false);
  });

  it("accepts an options field that runs out without an end option", () => {
    const m = parseMessage(craftDiscover([53, 1, 1]));
    expect(m.options.get(53)).toEqual(Buffer.from([1]));
  });

  it("concatenates repeated instances of one option (RFC 3396)", () => {
    const m = parseMessage(craftDiscover([53, 1, 1, 43, 2, 1, 2, 12, 1, 120, 43, 2, 3, 4, 255]));
    expect(m.options.get(43)).toEqual(Buffer.from([1, 2, 3, 4]));
  });

  it("reads options from file and sname when option 52 overloads them", () => {
    const buf = craftDiscover([53, 1, 1, 52, 1, 3, 255]);
    Buffer.from([12, 4, 0x68, 0x6f, 0x73, 0x74, 255]).copy(buf, 108); // file: hostname "host"
    Buffer.from([60, 3, 0x61, 0x62, 0x63, 255]).copy(buf, 44); // sname: vendor class "abc"
    const m = parseMessage(buf);
    expect(m.options.get(12)?.toString()).toBe("host");
    expect(m.options.get(60)?.toString()).toBe("abc");
    expect(m.file).toBe("");
    expect(m.sname).toBe("");
  });

  it("reads sname and file as strings when they are not overloaded", () => {
    const buf = craftDiscover([53, 1, 1, 255]);
    buf.write("boot.ipxe", 108, "latin1");
    buf.write("srv", 44, "latin1");
    const m = parseMessage(buf);
    expect(m.file).toBe("boot.ipxe");
    expect(m.sname).toBe("srv");
  });

  it("rejects a message shorter than the fixed header and cookie", () => {
    const e = parseError(craftDiscover([53, 1, 1, 255]).subarray(0, 200));
    expect(e.message).toMatch(/too short/);
  });

  it("rejects an option whose length runs past the end of the packet", () => {
    const e = parseError(craftDiscover([53, 1, 1, 12, 10, 65, 66]));
    expect(e.message).toMatch(/option 12 length 10 runs past the end/);
    expect(e.offset).toBe(243);
  });

  it("rejects an option cut off before its length byte", () => {
    expect(parseError(craftDiscover([53, 1, 1, 12])).message).toMatch(/no length byte/);
  });

  it("rejects a bad magic cookie", () => {
    const buf = craftDiscover([53, 1, 1, 255]);
    buf[236] = 0;
    expect(parseError(buf).message).toMatch(/bad magic cookie/);
  });

  it("rejects a bad op and an impossible hardware address length", () => {
    const a = craftDiscover([53, 1, 1, 255]);
    a[0] = 7;
    expect(parseError(a).message).toMatch(/bad op/);
    const b = craftDiscover([53, 1, 1, 255]);
    b[2] = 17;
    expect(parseError(b).message).toMatch(/bad hlen/);
  });

  it("rejects an overload option with a bad value", () => {
    expect(parseError(craftDiscover([53, 1, 1, 52, 1, 9, 255])).message).toMatch(/overload/);
  });

  it("throws only DhcpParseError for random and truncated input", () => {
    const good = serializeMessage({ op: 1, xid: 1, chaddr: macToChaddr("52:54:00:00:00:01"), options: [[53, enc.u8(1)], [55, Buffer.from([1, 3, 6, 67])]] });
    let seed = 42;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      let buf: Buffer;
      if (i % 2 === 0) {
        buf = Buffer.from(good.subarray(0, rnd() % good.length));
      } else {
        buf = Buffer.from(good);
        for (let j = 0; j < 8; j++) buf[236 + (rnd() % (buf.length - 236))] = rnd() & 255;
        if (i % 3 === 0) buf[236] = rnd() & 255;
      }
      try {
        parseMessage(buf);
      } catch (err) {
        expect(err).toBeInstanceOf(DhcpParseError);
      }
    }
  });
});

describe("DHCP codec: encoding", () => {
  it("round-trips header fields and options", () => {
    const buf = serializeMessage({
      op: 2,
      xid: 0x01020304,
      flags: 0x8000,
      yiaddr: "10.0.0.9",
      siaddr: "10.0.0.1",
      giaddr: "10.1.0.1",
      chaddr: macToChaddr("aa:bb:cc:dd:ee:ff"),
      file: "undionly.kpxe",
      options: [
        [53, enc.u8(2)],
        [54, enc.ip("10.0.0.1")],
        [51, enc.u32(3600)],
        [6, enc.ips(["10.0.0.1", "10.0.0.2"])],
      ],
    });
    expect(buf.length).toBe(300); // RFC 1542 minimum
    const m = parseMessage(buf);
    expect(m.op).toBe(2);
    expect(m.xid).toBe(0x01020304);
    expect(m.yiaddr).toBe("10.0.0.9");
    expect(m.siaddr).toBe("10.0.0.1");
    expect(m.giaddr).toBe("10.1.0.1");
    expect(macOf(m)).toBe("aa:bb:cc:dd:ee:ff");
    expect(m.file).toBe("undionly.kpxe");
    expect(m.options.get(51)!.readUInt32BE(0)).toBe(3600);
    expect(m.options.get(6)).toEqual(Buffer.from([10, 0, 0, 1, 10, 0, 0, 2]));
    expect([...m.options.keys()]).toEqual([53, 54, 51, 6]);
  });

  it("splits an option longer than 255 bytes into several instances and joins them back", () => {
    const long = Buffer.alloc(300, 0x61);
    const buf = serializeMessage({ op: 2, xid: 1, chaddr: Buffer.alloc(6), options: [[53, enc.u8(5)], [67, long]] }, 1472);
    // two instances of option 67 on the wire: 255 + 45 bytes
    const first = buf.indexOf(Buffer.from([67, 255]), 240);
    expect(first).toBeGreaterThan(0);
    expect(buf[first + 2 + 255]).toBe(67);
    expect(buf[first + 2 + 255 + 1]).toBe(45);
    expect(parseMessage(buf).options.get(67)).toEqual(long);
  });

  it("moves options into file and sname with option 52 when they do not fit", () => {
    const opts: Array<[number, Buffer]> = [[53, enc.u8(5)]];
    for (let code = 200; code < 210; code++) opts.push([code, Buffer.alloc(40, code)]);
    const buf = serializeMessage({ op: 2, xid: 1, chaddr: Buffer.alloc(6), options: opts }, 548);
    expect(buf.length).toBeLessThanOrEqual(548);
    const m = parseMessage(buf);
    expect(m.options.get(52)).toBeDefined();
    for (let code = 200; code < 210; code++) expect(m.options.get(code)).toEqual(Buffer.alloc(40, code));
  });

  it("encodes and decodes encapsulated options (iPXE 175.176 = 1)", () => {
    const v = encodeSubOptions([[176, enc.u8(1)]]);
    expect(v).toEqual(Buffer.from([0xb0, 0x01, 0x01, 0xff]));
    expect(parseSubOptions(v).get(176)).toEqual(Buffer.from([1]));
  });

  it("reads relay agent information sub-options (RFC 3046)", () => {
    const v = Buffer.from([1, 3, 0x65, 0x74, 0x30, 2, 2, 0xab, 0xcd]);
    const subs = parseSubOptions(v);
    expect(subs.get(1)?.toString()).toBe("et0");
    expect(subs.get(2)).toEqual(Buffer.from([0xab, 0xcd]));
  });

  it("reads the client architecture (option 93) and user class (option 77) both ways", () => {
    const bare = parseMessage(serializeMessage({ op: 1, xid: 1, chaddr: Buffer.alloc(6), options: [[53, enc.u8(1)], [77, enc.str("iPXE")], [93, enc.u16(7)]] }));
    expect(userClasses(bare)).toEqual(["iPXE"]);
    expect(clientArch(bare)).toBe(7);
    const rfc3004 = parseMessage(serializeMessage({ op: 1, xid: 1, chaddr: Buffer.alloc(6), options: [[53, enc.u8(1)], [77, Buffer.from([4, 0x69, 0x50, 0x58, 0x45, 3, 0x61, 0x62, 0x63])]] }));
    expect(userClasses(rfc3004)).toEqual(["iPXE", "abc"]);
  });
});
