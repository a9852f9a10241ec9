// TFTP attacks of issue 8, as functions (for the bench) and as a command run
// inside an attacker's namespace:
//   node --import tsx test/hardening/tftp-flood.ts ATTACK --server IP [--bind IP] [--count N] [--file NAME]
// ATTACK is one of
//   error-spray   read requests (netascii and octet), then from the same
//                 socket an ERROR at every port of the ephemeral range: the
//                 transfers get theirs while still opening or sending
//   netascii      COUNT netascii reads of FILE acknowledged slowly, holding
//                 the transfers open (memory: conversion must stream)
//   hold-slots    COUNT reads asking timeout=255 that never acknowledge
//   fuzz          COUNT mutated requests and transfer packets
// It prints one JSON line with what it sent and what came back.
import dgram from "node:dgram";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { encodeAck, encodeError, encodeRequest, Opcode } from "../../reconciler/services/tftp/packet.js";

export interface FloodResult {
  sent: number;
  answers: number;
  errors: Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function socket(bind?: string): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  s.on("error", () => {});
  await new Promise<void>((r) => s.bind(0, bind, () => r()));
  return s;
}

function noteError(r: FloodResult, msg: Buffer): void {
  if (msg.length >= 4 && msg.readUInt16BE(0) === Opcode.ERROR) {
    const text = msg.subarray(4, msg.indexOf(0, 4) === -1 ? msg.length : msg.indexOf(0, 4)).toString();
    r.errors[text] = (r.errors[text] ?? 0) + 1;
  }
}

/**
 * `count` reads of `file` from one socket each, then an ERROR at every
 * port from `firstPort` to `lastPort` from each of them (Linux's default
 * ephemeral range is 32768-60999: about 28,000 packets per socket).
 */
export async function errorSpray(opts: { server: string; bind?: string; file: string; count?: number; firstPort?: number; lastPort?: number }): Promise<FloodResult> {
  const r: FloodResult = { sent: 0, answers: 0, errors: {} };
  const socks = await Promise.all(Array.from({ length: opts.count ?? 4 }, () => socket(opts.bind)));
  const error = encodeError(0, "spray");
  socks.forEach((s, i) => {
    s.on("message", (m) => {
      r.answers++;
      noteError(r, m);
    });
    s.send(encodeRequest("RRQ", opts.file, i % 2 === 0 ? "netascii" : "octet", [{ name: "blksize", value: "1468" }, { name: "windowsize", value: "8" }]), 69, opts.server);
    r.sent++;
  });
  // A moment for the transfers to start, then the spray from every socket.
  await sleep(5);
  for (let port = opts.firstPort ?? 32768; port <= (opts.lastPort ?? 60999); port++) {
    for (const s of socks) s.send(error, port, opts.server);
    r.sent += socks.length;
    if (port % 256 === 0) await sleep(0); // let the sends drain
  }
  await sleep(500);
  for (const s of socks) s.close();
  return r;
}

/** One read driven by hand: ACKs every DATA after `ackDelayMs`, for `holdMs` at most. */
function slowRead(server: string, bind: string | undefined, file: string, mode: string, ackDelayMs: number, holdMs: number, r: FloodResult): Promise<number> {
  return socket(bind).then(
    (s) =>
      new Promise<number>((resolve) => {
        let bytes = 0;
        let closed = false;
        const finish = () => {
          if (closed) return;
          closed = true;
          clearTimeout(timer);
          s.close();
          resolve(bytes);
        };
        const timer = setTimeout(finish, holdMs);
        s.on("message", (m, rinfo) => {
          r.answers++;
          const op = m.readUInt16BE(0);
          if (op === Opcode.ERROR) {
            noteError(r, m);
            return finish();
          }
          const block = op === Opcode.DATA ? m.readUInt16BE(2) : 0;
          if (op === Opcode.DATA) bytes += m.length - 4;
          setTimeout(() => {
            if (!closed) s.send(encodeAck(block), rinfo.port, rinfo.address);
          }, ackDelayMs);
        });
        s.send(encodeRequest("RRQ", file, mode, [{ name: "blksize", value: "1468" }]), 69, server);
        r.sent++;
      }),
  );
}

/** `count` netascii reads of `file` at once, each acknowledged slowly, for `holdMs`. */
export async function netasciiStorm(opts: { server: string; bind?: string; file: string; count?: number; holdMs?: number }): Promise<FloodResult & { bytes: number }> {
  const r: FloodResult = { sent: 0, answers: 0, errors: {} };
  const got = await Promise.all(Array.from({ length: opts.count ?? 50 }, () => slowRead(opts.server, opts.bind, opts.file, "netascii", 200, opts.holdMs ?? 5000, r)));
  return { ...r, bytes: got.reduce((a, b) => a + b, 0) };
}

/** `count` reads asking timeout=255 that are never acknowledged; the sockets stay open for `holdMs`. */
export async function holdSlots(opts: { server: string; bind?: string; file: string; count?: number; holdMs?: number }): Promise<FloodResult> {
  const r: FloodResult = { sent: 0, answers: 0, errors: {} };
  const socks = await Promise.all(Array.from({ length: opts.count ?? 200 }, () => socket(opts.bind)));
  for (const s of socks) {
    s.on("message", (m) => {
      r.answers++;
      noteError(r, m);
    });
    s.send(encodeRequest("RRQ", opts.file, "octet", [{ name: "timeout", value: "255" }, { name: "tsize", value: "0" }]), 69, opts.server);
    r.sent++;
  }
  await sleep(opts.holdMs ?? 2000);
  for (const s of socks) s.close();
  return r;
}

/** A small deterministic generator, so a failing fuzz run can be repeated. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

/** A request or transfer packet, valid or not: flipped bytes, cut lengths, odd opcodes, huge option lists. */
export function mutatedPacket(next: () => number, file: string): Buffer {
  const pick = Math.floor(next() * 6);
  let p: Buffer;
  if (pick === 0) p = encodeRequest("RRQ", file, next() < 0.5 ? "octet" : "netascii", [{ name: "blksize", value: String(Math.floor(next() * 70000)) }, { name: "windowsize", value: String(Math.floor(next() * 70000)) }, { name: "timeout", value: String(Math.floor(next() * 300)) }, { name: "tsize", value: "0" }]);
  else if (pick === 1) p = encodeRequest("RRQ", next() < 0.5 ? "../../etc/passwd" : "a".repeat(Math.floor(next() * 600)), "octet");
  else if (pick === 2) p = encodeRequest("WRQ", file, "octet");
  else if (pick === 3) p = encodeAck(Math.floor(next() * 65536));
  else if (pick === 4) p = encodeError(Math.floor(next() * 10), "x".repeat(Math.floor(next() * 100)));
  else p = Buffer.from(Array.from({ length: Math.floor(next() * 600) }, () => Math.floor(next() * 256)));
  const out = Buffer.from(p);
  const flips = Math.floor(next() * 4);
  for (let i = 0; i < flips && out.length > 0; i++) out[Math.floor(next() * out.length)] = Math.floor(next() * 256);
  return next() < 0.2 ? out.subarray(0, Math.floor(next() * out.length)) : out;
}

/**
 * `count` mutated packets at the request port and at the ports that
 * answered, from 16 sockets, at most `pps` per second.
 */
export async function fuzz(opts: { server: string; bind?: string; file: string; count?: number; seed?: number; pps?: number }): Promise<FloodResult> {
  const r: FloodResult = { sent: 0, answers: 0, errors: {} };
  const next = rng(opts.seed ?? 1);
  const socks = await Promise.all(Array.from({ length: 16 }, () => socket(opts.bind)));
  const ports: number[] = [];
  for (const s of socks) {
    s.on("message", (m, rinfo) => {
      r.answers++;
      if (rinfo.port !== 69 && ports.length < 64) ports.push(rinfo.port);
    });
  }
  const count = opts.count ?? 100_000;
  const perMs = (opts.pps ?? 20_000) / 1000;
  const start = Date.now();
  for (let i = 0; i < count; i++) {
    const s = socks[i % socks.length]!;
    const port = ports.length > 0 && next() < 0.3 ? ports[Math.floor(next() * ports.length)]! : 69;
    s.send(mutatedPacket(next, opts.file), port, opts.server);
    r.sent++;
    if (i % 200 === 0) {
      const ahead = i / perMs - (Date.now() - start);
      await sleep(Math.max(0, ahead));
    }
  }
  await sleep(300);
  for (const s of socks) s.close();
  return r;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      server: { type: "string" },
      bind: { type: "string" },
      file: { type: "string", default: "big.bin" },
      count: { type: "string" },
      hold: { type: "string" },
      seed: { type: "string" },
    },
  });
  const base = { server: values.server!, bind: values.bind, file: values.file!, count: values.count ? Number(values.count) : undefined };
  const hold = values.hold ? Number(values.hold) : undefined;
  const attacks: Record<string, () => Promise<unknown>> = {
    "error-spray": () => errorSpray(base),
    netascii: () => netasciiStorm({ ...base, holdMs: hold }),
    "hold-slots": () => holdSlots({ ...base, holdMs: hold }),
    fuzz: () => fuzz({ ...base, seed: values.seed ? Number(values.seed) : undefined }),
  };
  const attack = attacks[positionals[0] ?? ""];
  if (!attack) {
    process.stderr.write(`usage: tftp-flood.ts ${Object.keys(attacks).join("|")} --server IP\n`);
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(await attack()) + "\n");
}
