// A tiny HTTP server for end-to-end tests, run inside a lab namespace:
//   node --import tsx test/e2e/lib/event-listener.ts --host H --port P [--serve /path=FILE]...
// It answers GET of each --serve path with the file's bytes, every POST with
// 200 "{}", anything else with 404, and prints one JSON line per request on
// stdout ({"method","url","contentType","body","status","at"}), after a first
// {"listening":"H:P"} line.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

const argv = process.argv.slice(2);
let host = "0.0.0.0";
let port = 8080;
const files = new Map<string, string>();
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = argv[++i];
  if (v === undefined) throw new Error(`event-listener: ${a} needs a value`);
  if (a === "--host") host = v;
  else if (a === "--port") port = Number(v);
  else if (a === "--serve") {
    const eq = v.indexOf("=");
    if (eq < 1) throw new Error(`event-listener: --serve wants /path=FILE, got ${v}`);
    files.set(v.slice(0, eq), v.slice(eq + 1));
  } else throw new Error(`event-listener: unknown option ${a}`);
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const path = (req.url ?? "/").split("?")[0];
    let status = 404;
    let body: Buffer | string = "not found\n";
    if (req.method === "GET" && files.has(path)) {
      status = 200;
      body = readFileSync(files.get(path)!);
    } else if (req.method === "POST") {
      status = 200;
      body = "{}\n";
    }
    process.stdout.write(
      JSON.stringify({
        at: Date.now(),
        method: req.method,
        url: req.url,
        contentType: req.headers["content-type"] ?? null,
        body: Buffer.concat(chunks).toString("utf8"),
        status,
      }) + "\n",
    );
    res.writeHead(status, { "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(port, host, () => process.stdout.write(JSON.stringify({ listening: `${host}:${port}` }) + "\n"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
