// The server in this process on 127.0.0.1, real clients (tftp-hpa, atftp,
// busybox) and a hand-driven peer for protocol corner cases.
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeAck, encodeError, encodeRequest, type TftpOption } from "../../reconciler/services/tftp/packet.js";
import { defaultIpxeRoot } from "../../reconciler/services/tftp/root.js";
import { bufferContent, TftpServer } from "../../reconciler/services/tftp/server.js";
import { atftpGet, busyboxGet, hasCommand, sha256, tftpHpaGet, tftpHpaPut } from "./clients.js";
import { RawPeer } from "./rawclient.js";

const HOST = "127.0.0.1";
const haveClients = hasCommand("tftp") && hasCommand("atftp") && hasCommand("busybox");

let dir: string;
let root: string;
let out: string;
let server: TftpServer;
let port: number;
const small = randomBytes(100_000);

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "gt-tftp-"));
  root = path.join(dir, "root");
  out = path.join(dir, "out");
  mkdirSync(path.join(root, "etc"), { recursive: true });
  mkdirSync(path.join(root, "sub"));
  mkdirSync(out);
  mkdirSync(path.join(dir, "outside"));
  writeFileSync(path.join(dir, "outside", "secret.txt"), "outside\n");
  writeFileSync(path.join(root, "small.bin"), small);
  writeFileSync(path.join(root, "sub", "nested.bin"), small.subarray(0, 5000));
  writeFileSync(path.join(root, "etc", "passwd"), "the copy inside the root\n");
  writeFileSync(path.join(root, "text.txt"), "line one\nline two\r\nlast\n");
  writeFileSync(path.join(root, "exact.bin"), randomBytes(1024)); // a multiple of 512: ends with an empty block
  symlinkSync("/etc/passwd", path.join(root, "link-out"));
  symlinkSync("../outside", path.join(root, "dir-out"));
  symlinkSync("/nonexistent/file", path.join(root, "dangling"));
  symlinkSync("sub/nested.bin", path.join(root, "link-in"));
  server = new TftpServer({
    root,
    port: 0,
    bindAddress: HOST,
    resolver: async (p, client) =>
      p === "machines/whoami.ipxe" ? bufferContent(Buffer.from(`#!ipxe\necho ${client.address}:${client.port}\n`)) : undefined,
  });
  await server.start();
  port = server.address().port;
});

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function o(name: string): string {
  return path.join(out, name);
}

/** Sends one RRQ from a fresh peer and returns the first reply; then ends the transfer. */
async function request(file: string, options: TftpOption[] = [], mode = "octet") {
  const peer = await RawPeer.open();
  try {
    peer.send(encodeRequest("RRQ", file, mode, options), port);
    const reply = await peer.next();
    if (reply && reply.packet.op !== "ERROR") peer.send(encodeError(0, "enough"), reply.from.port);
    return reply;
  } finally {
    await peer.close();
  }
}

describe.skipIf(!haveClients)("TFTP server on loopback with real clients", () => {
  it("serves a file to tftp-hpa byte-identical", async () => {
    const r = await tftpHpaGet(undefined, HOST, port, "small.bin", o("hpa.bin"));
    expect(r.ok, r.stderr).toBe(true);
    expect(sha256(o("hpa.bin"))).toBe(sha256(path.join(root, "small.bin")));
  });

  it("answers atftp's blksize, windowsize and tsize in the OACK and the file comes back identical", async () => {
    const r = await atftpGet(undefined, HOST, port, "small.bin", o("atftp.bin"), { blksize: 1468, windowsize: 8, tsize: 0 }, true);
    expect(r.ok, r.stderr).toBe(true);
    const trace = r.stdout + r.stderr;
    const oack = trace.split("\n").find((l) => l.includes("received OACK")) ?? "";
    expect(oack).toContain("windowsize: 8");
    expect(oack).toContain("blksize: 1468");
    expect(oack).toContain(`tsize: ${small.length}`);
    expect(sha256(o("atftp.bin"))).toBe(sha256(path.join(root, "small.bin")));
  });

  it("serves the same bytes with busy-polling turned off", async () => {
    const own = new TftpServer({ root, port: 0, bindAddress: HOST, busyPollUs: 0 });
    await own.start();
    try {
      const r = await atftpGet(undefined, HOST, own.address().port, "small.bin", o("atftp-nopoll.bin"), { blksize: 1468 });
      expect(r.ok, r.stderr).toBe(true);
      expect(sha256(o("atftp-nopoll.bin"))).toBe(sha256(path.join(root, "small.bin")));
      expect(own.stats().blocksSent).toBeGreaterThan(1);
    } finally {
      await own.stop();
    }
  });

  it("serves busybox tftp with blksize 1468", async () => {
    const r = await busyboxGet(undefined, HOST, port, "sub/nested.bin", o("bb.bin"), 1468);
    expect(r.ok, r.stderr).toBe(true);
    expect(readFileSync(o("bb.bin"))).toEqual(small.subarray(0, 5000));
  });

  it("ends a file whose size is a multiple of the block size with an empty block", async () => {
    const r = await busyboxGet(undefined, HOST, port, "exact.bin", o("exact.bin"), 512);
    expect(r.ok, r.stderr).toBe(true);
    expect(sha256(o("exact.bin"))).toBe(sha256(path.join(root, "exact.bin")));
  });

  it("converts netascii line ends on the wire and tftp-hpa restores them", async () => {
    const r = await tftpHpaGet(undefined, HOST, port, "text.txt", o("text.txt"), "netascii");
    expect(r.ok, r.stderr).toBe(true);
    expect(readFileSync(o("text.txt"), "utf8")).toBe("line one\nline two\r\nlast\n");
  });

  it("rolls block numbers over past 65535 on a 40 MB file at blksize 512, stop-and-wait and windowed", async () => {
    const big = path.join(root, "big40.bin");
    writeFileSync(big, randomBytes(40 * 1000 * 1000));
    try {
      const want = sha256(big);
      const r = await busyboxGet(undefined, HOST, port, "big40.bin", o("big40.bin"), 512);
      expect(r.ok, r.stderr).toBe(true);
      expect(sha256(o("big40.bin"))).toBe(want);
      // Windowed too: ACKs of blocks on both sides of the wrap map to the right window.
      rmSync(o("big40.bin"));
      const w = await atftpGet(undefined, HOST, port, "big40.bin", o("big40.bin"), { blksize: 512, windowsize: 16 });
      expect(w.ok, w.stderr).toBe(true);
      expect(sha256(o("big40.bin"))).toBe(want);
    } finally {
      rmSync(big, { force: true });
      rmSync(o("big40.bin"), { force: true });
    }
  }, 60_000);

  it("serves a symlink that stays inside the root", async () => {
    const r = await busyboxGet(undefined, HOST, port, "link-in", o("link-in.bin"), 1468);
    expect(r.ok, r.stderr).toBe(true);
    expect(readFileSync(o("link-in.bin"))).toEqual(small.subarray(0, 5000));
  });

  it("serves /etc/passwd only as the copy inside the root", async () => {
    const r = await tftpHpaGet(undefined, HOST, port, "/etc/passwd", o("passwd"));
    expect(r.ok, r.stderr).toBe(true);
    expect(readFileSync(o("passwd"), "utf8")).toBe("the copy inside the root\n");
  });

  it("refuses a path with '..' to tftp-hpa with error 2", async () => {
    const r = await tftpHpaGet(undefined, HOST, port, "../etc/passwd", o("escape"));
    expect(r.stdout + r.stderr).toContain("Error code 2");
  });

  it("refuses a write request with error 2", async () => {
    writeFileSync(o("upload.bin"), "data");
    const r = await tftpHpaPut(undefined, HOST, port, o("upload.bin"), "upload.bin");
    expect(r.stdout + r.stderr).toContain("Error code 2");
    expect(() => readFileSync(path.join(root, "upload.bin"))).toThrow();
  });
});

describe("TFTP server containment", () => {
  it.each([
    "../etc/passwd",
    "a/../../x",
    "sub/../../outside/secret.txt",
    "..\\..\\etc\\passwd",
    "%2e%2e/etc/passwd",
    "%2e%2e%2fetc%2fpasswd",
    "link-out",
    "dir-out/secret.txt",
    "dangling",
  ])("refuses %j with error 2 and sends no data", async (file) => {
    const reply = await request(file);
    expect(reply?.packet).toMatchObject({ op: "ERROR", code: 2 });
  });

  it("follows a link out of the root only to a file listed in allowOutside", async () => {
    const allowed = path.join(dir, "outside", "secret.txt");
    const own = new TftpServer({ root, port: 0, bindAddress: HOST, allowOutside: [allowed] });
    await own.start();
    const peer = await RawPeer.open();
    try {
      symlinkSync(allowed, path.join(root, "allowed-link"));
      peer.send(encodeRequest("RRQ", "allowed-link", "octet"), own.address().port);
      const data = await peer.next();
      expect(data?.packet).toMatchObject({ op: "DATA", block: 1 });
      if (data?.packet.op === "DATA") expect(data.packet.data.toString()).toBe("outside\n");
      peer.send(encodeAck(1), data!.from.port);
      peer.send(encodeRequest("RRQ", "link-out", "octet"), own.address().port);
      expect((await peer.next())?.packet).toMatchObject({ op: "ERROR", code: 2 });
    } finally {
      rmSync(path.join(root, "allowed-link"), { force: true });
      await peer.close();
      await own.stop();
    }
  });

  it("answers error 1 for a missing file and for a folder", async () => {
    expect((await request("missing.bin"))?.packet).toMatchObject({ op: "ERROR", code: 1 });
    expect((await request("sub"))?.packet).toMatchObject({ op: "ERROR", code: 1 });
  });

  it("answers a dangling link to a missing outside file like one to an existing outside file", async () => {
    const a = (await request("dangling"))?.packet;
    const b = (await request("link-out"))?.packet;
    expect(a).toEqual(b);
  });
});

describe("TFTP server protocol behaviour", () => {
  it("serves a resolver-provided file built for the asking client", async () => {
    const peer = await RawPeer.open();
    try {
      peer.send(encodeRequest("RRQ", "/machines/whoami.ipxe", "octet"), port);
      const reply = await peer.next();
      expect(reply?.packet.op).toBe("DATA");
      if (reply?.packet.op !== "DATA") return;
      expect(reply.packet.data.toString()).toBe(`#!ipxe\necho 127.0.0.1:${peer.socket.address().port}\n`);
      peer.send(encodeAck(1), reply.from.port);
    } finally {
      await peer.close();
    }
  });

  it("caps blksize and windowsize at the server's limits and echoes the timeout", async () => {
    const reply = await request("small.bin", [
      { name: "blksize", value: "65464" },
      { name: "windowsize", value: "500" },
      { name: "timeout", value: "3" },
      { name: "unknown", value: "1" },
    ]);
    expect(reply?.packet).toEqual({
      op: "OACK",
      options: [
        { name: "blksize", value: "1468" },
        { name: "windowsize", value: "16" },
        { name: "timeout", value: "3" },
      ],
    });
  });

  it("ignores out-of-range timeout and blksize values instead of failing", async () => {
    const reply = await request("small.bin", [
      { name: "timeout", value: "0" },
      { name: "blksize", value: "4" },
    ]);
    expect(reply?.packet).toMatchObject({ op: "DATA", block: 1 });
    if (reply?.packet.op === "DATA") expect(reply.packet.data.length).toBe(512);
  });

  it("ends quietly when the client sends an error after the OACK (tsize probe)", async () => {
    const own = new TftpServer({ root, port: 0, bindAddress: HOST });
    await own.start();
    const peer = await RawPeer.open();
    try {
      peer.send(encodeRequest("RRQ", "small.bin", "octet", [{ name: "tsize", value: "0" }]), own.address().port);
      const oack = await peer.next();
      expect(oack?.packet).toEqual({ op: "OACK", options: [{ name: "tsize", value: String(small.length) }] });
      peer.send(encodeError(0, "tsize query only"), oack!.from.port);
      expect(await peer.drain(300)).toEqual([]);
      expect(own.stats()).toMatchObject({ abortedAfterOack: 1, transfersFailed: 0, transfersActive: 0 });
    } finally {
      await peer.close();
      await own.stop();
    }
  });

  it("answers a packet from a foreign transfer ID with error 5 and carries on", async () => {
    const peer = await RawPeer.open();
    const stranger = await RawPeer.open();
    try {
      peer.send(encodeRequest("RRQ", "small.bin", "octet"), port);
      const first = await peer.next();
      expect(first?.packet).toMatchObject({ op: "DATA", block: 1 });
      stranger.send(encodeAck(1), first!.from.port);
      expect((await stranger.next())?.packet).toMatchObject({ op: "ERROR", code: 5 });
      peer.send(encodeAck(1), first!.from.port);
      const second = await peer.next();
      expect(second?.packet).toMatchObject({ op: "DATA", block: 2 });
      expect(second?.from.port).toBe(first!.from.port);
      peer.send(encodeError(0, "done"), first!.from.port);
    } finally {
      await peer.close();
      await stranger.close();
    }
  });

  it("sends each block once when an ACK arrives twice (no Sorcerer's Apprentice)", async () => {
    const slow = new TftpServer({ root, port: 0, bindAddress: HOST, timeoutMs: 10_000 });
    await slow.start();
    const peer = await RawPeer.open();
    try {
      peer.send(encodeRequest("RRQ", "small.bin", "octet"), slow.address().port);
      const first = await peer.next();
      expect(first?.packet).toMatchObject({ op: "DATA", block: 1 });
      peer.send(encodeAck(1), first!.from.port);
      expect((await peer.next())?.packet).toMatchObject({ op: "DATA", block: 2 });
      peer.send(encodeAck(1), first!.from.port); // late duplicate of the previous ACK
      peer.send(encodeAck(1), first!.from.port);
      expect(await peer.drain(500)).toEqual([]);
      expect(slow.stats().duplicateAcks).toBe(2);
    } finally {
      await peer.close();
      await slow.stop();
    }
  });

  it("retransmits an unacknowledged block using the client's timeout option", async () => {
    const slow = new TftpServer({ root, port: 0, bindAddress: HOST, timeoutMs: 30_000 });
    await slow.start();
    const peer = await RawPeer.open();
    try {
      peer.send(encodeRequest("RRQ", "small.bin", "octet", [{ name: "timeout", value: "1" }]), slow.address().port);
      const oack = await peer.next();
      expect(oack?.packet).toEqual({ op: "OACK", options: [{ name: "timeout", value: "1" }] });
      peer.send(encodeAck(0), oack!.from.port);
      expect((await peer.next())?.packet).toMatchObject({ op: "DATA", block: 1 });
      // No ACK: with the server's own 30 s the block would not come again within 5 s.
      expect((await peer.next(5000))?.packet).toMatchObject({ op: "DATA", block: 1 });
      expect(slow.stats().retransmits).toBeGreaterThanOrEqual(1);
    } finally {
      await peer.close();
      await slow.stop();
    }
  });

  it("answers 'server busy' beyond maxTransfers and serves again once a transfer ends", async () => {
    const one = new TftpServer({ root, port: 0, bindAddress: HOST, maxTransfers: 1 });
    await one.start();
    const a = await RawPeer.open();
    const b = await RawPeer.open();
    try {
      a.send(encodeRequest("RRQ", "small.bin", "octet"), one.address().port);
      const first = await a.next();
      expect(first?.packet).toMatchObject({ op: "DATA", block: 1 });
      b.send(encodeRequest("RRQ", "small.bin", "octet"), one.address().port);
      expect((await b.next())?.packet).toMatchObject({ op: "ERROR", code: 0 });
      a.send(encodeError(0, "done"), first!.from.port);
      await a.drain(100);
      b.send(encodeRequest("RRQ", "small.bin", "octet"), one.address().port);
      expect((await b.next())?.packet).toMatchObject({ op: "DATA", block: 1 });
      expect(one.stats().busy).toBe(1);
    } finally {
      await a.close();
      await b.close();
      await one.stop();
    }
  });

  it("ends running transfers with an error on stop() and frees its port", async () => {
    const own = new TftpServer({ root, port: 0, bindAddress: HOST });
    await own.start();
    const p = own.address().port;
    const peer = await RawPeer.open();
    try {
      peer.send(encodeRequest("RRQ", "small.bin", "octet"), p);
      const first = await peer.next();
      expect(first?.packet).toMatchObject({ op: "DATA", block: 1 });
      await own.stop();
      expect((await peer.next())?.packet).toMatchObject({ op: "ERROR", code: 0 });
      expect(own.stats().transfersActive).toBe(0);
      const again = new TftpServer({ root, port: p, bindAddress: HOST });
      await again.start();
      await again.stop();
    } finally {
      await peer.close();
    }
  });

  it("keeps serving after garbage datagrams on the request port", async () => {
    const sock = dgram.createSocket("udp4");
    const junk = [
      Buffer.alloc(0),
      Buffer.from([0xff]),
      Buffer.from([0, 1]),
      Buffer.from([0, 3, 0, 1, 9, 9]),
      Buffer.from([0, 1, 0x61, 0x00]),
      randomBytes(1400),
      Buffer.from("\x00\x01file\x00octet\x00blksize\x00"),
    ];
    try {
      for (let i = 0; i < 50; i++) {
        await new Promise<void>((r) => sock.send(junk[i % junk.length], port, HOST, () => r()));
      }
    } finally {
      sock.close();
    }
    const reply = await request("sub/nested.bin");
    expect(reply?.packet).toMatchObject({ op: "DATA", block: 1 });
    expect(server.stats().malformed).toBeGreaterThan(0);
  });

  it.skipIf(defaultIpxeRoot() === undefined || !haveClients)(
    "serves Debian's undionly.kpxe and ipxe.efi from the default root",
    async () => {
      const ipxe = new TftpServer({ port: 0, bindAddress: HOST });
      await ipxe.start();
      try {
        const p = ipxe.address().port;
        const a = await busyboxGet(undefined, HOST, p, "undionly.kpxe", o("undionly.kpxe"), 1468);
        expect(a.ok, a.stderr).toBe(true);
        expect(sha256(o("undionly.kpxe"))).toBe(sha256("/usr/lib/ipxe/undionly.kpxe"));
        const b = await atftpGet(undefined, HOST, p, "ipxe.efi", o("ipxe.efi"), { blksize: 1468, windowsize: 8 });
        expect(b.ok, b.stderr).toBe(true);
        expect(sha256(o("ipxe.efi"))).toBe(sha256("/usr/lib/ipxe/ipxe.efi"));
      } finally {
        await ipxe.stop();
      }
    },
  );
});
