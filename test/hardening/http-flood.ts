// HTTP requests of issue 8 sent from inside a namespace, as a command:
//   node --import tsx test/hardening/http-flood.ts --server URL --bind IP --requests FILE [--repeat N] [--concurrency N]
//   node --import tsx test/hardening/http-flood.ts --server URL --bind IP --fuzz N [--seed S] [--paths P1,P2]
//   node --import tsx test/hardening/http-flood.ts --server URL --bind IP --hangup N [--paths P1,P2]
// FILE holds a JSON array of {method, path, body?, contentType?}; each is
// sent --repeat times (default 1). --fuzz sends N mutated requests over raw
// TCP (bad request lines, traversal and overlong paths, garbage Range and
// Content-Length, truncated and oversized bodies), one per connection, to
// the boot routes and the paths given. --hangup opens N connections, each
// writing one GET (of the paths given, in turn) and resetting the connection
// at once, so that the server finds the client gone. Prints one JSON line: the number
// sent, the count per status (0: no answer), and for FILE the status of each
// request of the first round.
import http from "node:http";
import net from "node:net";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { rng } from "./tftp-flood.js";

export interface HttpRequestSpec {
  method: string;
  path: string;
  body?: string;
  contentType?: string;
}

export interface HttpFloodResult {
  sent: number;
  statuses: Record<string, number>;
  first: number[];
}

const { values } = parseArgs({
  options: {
    server: { type: "string" },
    bind: { type: "string" },
    requests: { type: "string" },
    repeat: { type: "string", default: "1" },
    concurrency: { type: "string", default: "16" },
    fuzz: { type: "string" },
    hangup: { type: "string" },
    seed: { type: "string", default: "1" },
    paths: { type: "string", default: "" },
  },
});
const server = new URL(values.server!);
const specs = values.requests ? (JSON.parse(readFileSync(values.requests, "utf8")) as HttpRequestSpec[]) : [];
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(values.concurrency) });
const result: HttpFloodResult = { sent: 0, statuses: {}, first: [] };

function send(spec: HttpRequestSpec): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: server.hostname,
        port: Number(server.port),
        method: spec.method,
        path: spec.path,
        agent,
        localAddress: values.bind,
        timeout: 10_000,
        headers: spec.body !== undefined ? { "content-type": spec.contentType ?? "application/json" } : {},
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
    if (spec.body !== undefined) req.write(spec.body);
    req.end();
  });
}

/** One mutated request, as bytes. */
function mutated(next: () => number, paths: string[]): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(next() * 16).toString(16)).join("");
  const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)));
  const mac = () => Array.from({ length: 6 }, () => hex(2)).join(pick([":", "-", "", "%3a"]));
  const path = pick([
    () => `/boot/${mac()}.ipxe`,
    () => `/boot/${pick(["..%2f..%2fetc%2fpasswd", "%00", "x".repeat(Math.floor(next() * 9000)), mac() + ".ipxe?" + hex(50)])}`,
    () => `/cache/${hex(64)}/${pick(["vmlinuz", "..", "%2e%2e%2f", "a".repeat(300)])}`,
    () => `/cache/${hex(Math.floor(next() * 70))}/x`,
    () => `/m/${pick(["node01", "mac-" + hex(12), "..", "%00"])}/${hex(Math.floor(next() * 80))}/${pick(["files/install.cfg", "events", "files/../../x", "files/" + "y".repeat(500)])}`,
    () => pick(["/healthz", "/metrics", "/api/v1/machines", "//", "/%", "*", "/" + hex(3000)]),
    () => (paths.length ? pick(paths) : "/healthz"),
  ])();
  const method = pick(["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "G\x00T", "GETT", ""]);
  const headers: string[] = [`Host: ${server.host}`];
  if (next() < 0.3) headers.push(`Range: ${pick(["bytes=0-", "bytes=-1", "bytes=5-2", "bytes=999999999999-", "bytes=0-1,3-4", "bytes=--", "chars=0-1", "bytes=" + hex(40)])}`);
  if (next() < 0.1) headers.push(`If-Range: "${hex(64)}"`);
  if (next() < 0.1) headers.push(`If-None-Match: "${hex(64)}"`);
  if (next() < 0.1) headers.push(`Authorization: Bearer ${hex(Math.floor(next() * 100))}`);
  let body: Buffer | undefined;
  if (method === "POST" || next() < 0.05) {
    body = pick([() => Buffer.from(JSON.stringify({ phase: pick(["Ready", "Discovered", { a: 1 }, ["Ready"], null, 7]) })), () => Buffer.from("{" + hex(20)), () => junk(Math.floor(next() * 2000)), () => Buffer.from("phase=Ready&" + hex(100))])();
    headers.push(`Content-Type: ${pick(["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "x/y"])}`);
    const len = pick([body.length, body.length, body.length + 100, Math.max(0, body.length - 5), 99999999]);
    headers.push(next() < 0.1 ? "Transfer-Encoding: chunked" : `Content-Length: ${len}`);
  }
  if (next() < 0.05) headers.push(`X-${hex(4)}: ${"z".repeat(Math.floor(next() * 20000))}`);
  const version = pick(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", ""]);
  let head = Buffer.from(`${method} ${path} ${version}\r\n${headers.join("\r\n")}\r\n\r\n`);
  if (next() < 0.1) {
    head = Buffer.from(head);
    for (let i = 0; i < 3; i++) head[Math.floor(next() * head.length)] ^= 1 << Math.floor(next() * 8);
  }
  const out = body ? Buffer.concat([head, body]) : head;
  return next() < 0.05 ? out.subarray(0, Math.floor(next() * out.length)) : out;
}

function sendRaw(bytes: Buffer): Promise<number> {
  return new Promise((resolve) => {
    let answer = "";
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(answer);
      resolve(m ? Number(m[1]) : 0);
    };
    const sock = net.connect({ host: server.hostname, port: Number(server.port), localAddress: values.bind }, () => sock.write(bytes, () => sock.end()));
    const timer = setTimeout(finish, 2000);
    sock.on("data", (d) => {
      answer += d.toString("latin1");
      if (answer.includes("\r\n")) finish();
    });
    sock.on("error", finish);
    sock.on("close", finish);
  });
}

if (values.fuzz) {
  const count = Number(values.fuzz);
  const next = rng(Number(values.seed));
  const paths = values.paths ? values.paths.split(",") : [];
  let made = 0;
  const fuzzWorker = async () => {
    while (made < count) {
      made++;
      const status = await sendRaw(mutated(next, paths));
      result.sent++;
      result.statuses[status] = (result.statuses[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: Number(values.concurrency) }, fuzzWorker));
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(0);
}

if (values.hangup) {
  const count = Number(values.hangup);
  const paths = values.paths ? values.paths.split(",") : ["/healthz"];
  let made = 0;
  const hangupWorker = async () => {
    while (made < count) {
      const path = paths[made++ % paths.length]!;
      await new Promise<void>((resolve) => {
        const sock = net.connect({ host: server.hostname, port: Number(server.port), localAddress: values.bind }, () =>
          sock.write(`GET ${path} HTTP/1.1\r\nHost: ${server.host}\r\n\r\n`, () => sock.resetAndDestroy()),
        );
        sock.on("error", () => undefined);
        sock.on("close", () => resolve());
      });
      result.sent++;
      result.statuses["0"] = (result.statuses["0"] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: Number(values.concurrency) }, hangupWorker));
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(0);
}

const queue: Array<{ spec: HttpRequestSpec; round: number; index: number }> = [];
for (let round = 0; round < Number(values.repeat); round++) specs.forEach((spec, index) => queue.push({ spec, round, index }));
let next = 0;
const worker = async () => {
  while (next < queue.length) {
    const { spec, round, index } = queue[next++]!;
    const status = await send(spec);
    result.sent++;
    result.statuses[status] = (result.statuses[status] ?? 0) + 1;
    if (round === 0) result.first[index] = status;
  }
};
await Promise.all(Array.from({ length: Number(values.concurrency) }, worker));
agent.destroy();
process.stdout.write(JSON.stringify(result) + "\n");
