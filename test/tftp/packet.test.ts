import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  decodePacket,
  encodeAck,
  encodeData,
  encodeError,
  encodeOack,
  encodeRequest,
  TftpPacketError,
} from "../../reconciler/services/tftp/packet.js";
import { normaliseRequestPath } from "../../reconciler/services/tftp/root.js";

describe("TFTP packet codec", () => {
  it("decodes an RRQ with options, lowercasing option names and mode", () => {
    const buf = encodeRequest("RRQ", "undionly.kpxe", "OCTET", [
      { name: "BlkSize", value: "1468" },
      { name: "tsize", value: "0" },
    ]);
    expect(decodePacket(buf)).toEqual({
      op: "RRQ",
      filename: "undionly.kpxe",
      mode: "octet",
      options: [
        { name: "blksize", value: "1468" },
        { name: "tsize", value: "0" },
      ],
    });
  });

  it("round-trips DATA, ACK, ERROR and OACK", () => {
    const data = randomBytes(100);
    expect(decodePacket(encodeData(7, data))).toEqual({ op: "DATA", block: 7, data });
    expect(decodePacket(encodeAck(65535))).toEqual({ op: "ACK", block: 65535 });
    expect(decodePacket(encodeError(2, "access violation"))).toEqual({ op: "ERROR", code: 2, message: "access violation" });
    expect(decodePacket(encodeOack([{ name: "windowsize", value: "8" }]))).toEqual({
      op: "OACK",
      options: [{ name: "windowsize", value: "8" }],
    });
  });

  it("writes block numbers modulo 65536 so they roll over to 0", () => {
    expect(decodePacket(encodeData(65536, Buffer.alloc(0)))).toMatchObject({ block: 0 });
    expect(decodePacket(encodeAck(65537))).toMatchObject({ block: 1 });
  });

  it.each([
    ["an empty datagram", Buffer.alloc(0)],
    ["a lone byte", Buffer.from([0])],
    ["an unknown opcode", Buffer.from([0, 9, 0, 0])],
    ["an RRQ without terminator", Buffer.from("\x00\x01file\x00octet")],
    ["an RRQ without mode", Buffer.from("\x00\x01file\x00")],
    ["an RRQ with an option but no value", Buffer.from("\x00\x01file\x00octet\x00blksize\x00")],
    ["a short ACK", Buffer.from([0, 4, 1])],
  ])("rejects %s with a TftpPacketError", (_name, buf) => {
    expect(() => decodePacket(buf)).toThrow(TftpPacketError);
  });

  it("never throws anything but TftpPacketError on random bytes", () => {
    for (let i = 0; i < 2000; i++) {
      const buf = randomBytes(1 + (i % 40));
      try {
        decodePacket(buf);
      } catch (err) {
        expect(err).toBeInstanceOf(TftpPacketError);
      }
    }
  });
});

describe("TFTP request path normalisation", () => {
  it("treats absolute paths and backslashes as relative to the root", () => {
    expect(normaliseRequestPath("/boot\\x86//undionly.kpxe")).toEqual({ ok: true, segments: ["boot", "x86", "undionly.kpxe"] });
  });

  it.each(["../etc/passwd", "a/../../x", "..\\..\\x", "%2e%2e/etc/passwd", "a%2fb", "a\u0001b", "C:/x", "/"])(
    "refuses %j",
    (p) => {
      expect(normaliseRequestPath(p).ok).toBe(false);
    },
  );
});
