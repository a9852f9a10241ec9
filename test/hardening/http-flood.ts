// HTTP requests of issue 8 sent from inside a namespace, as a command:
//   node --import tsx test/hardening/http-flood.ts --server URL --bind IP --requests FILE [--repeat N] [--concurrency N]
// FILE holds a JSON array of {method, path, body?, contentType?}; each is
// sent --repeat times (default 1). Prints one JSON line: the number sent,
// the count per status, and the status of each request of the first round.
import http from "node:http";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

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
  },
});
const server = new URL(values.server!);
const specs = JSON.parse(readFileSync(values.requests!, "utf8")) as HttpRequestSpec[];
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
