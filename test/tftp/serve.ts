// Runs a TftpServer as its own process, for tests and benches that need the
// server inside a network namespace:
//   node --import tsx test/tftp/serve.ts [--root DIR (default /usr/lib/ipxe)] [--bind ADDR] [--port N] [--busy-poll-us N] [--echo-resolver]
// Prints one JSON line {"ready":true,"port":N} when listening and the final
// stats as a JSON line on SIGTERM, then exits.
// --echo-resolver serves "whoami.txt" as "<client address>\n".
import { defaultIpxeAllowOutside, defaultIpxeRoot } from "../../reconciler/services/tftp/root.js";
import { bufferContent, TftpServer } from "../../reconciler/services/tftp/server.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const root = arg("--root");
const server = new TftpServer({
  // Without --root: Debian's ipxe folder, as the daemon's default.
  root: root ?? defaultIpxeRoot(),
  allowOutside: root === undefined ? defaultIpxeAllowOutside() : [],
  bindAddress: arg("--bind") ?? "0.0.0.0",
  port: Number(arg("--port") ?? 69),
  busyPollUs: arg("--busy-poll-us") === undefined ? undefined : Number(arg("--busy-poll-us")),
  resolver: process.argv.includes("--echo-resolver")
    ? async (path, client) => (path === "whoami.txt" ? bufferContent(Buffer.from(`${client.address}\n`)) : undefined)
    : undefined,
});
await server.start();
process.stdout.write(JSON.stringify({ ready: true, port: server.address().port }) + "\n");
process.on("SIGTERM", () => {
  void server.stop().then(() => {
    process.stdout.write(JSON.stringify({ stats: server.stats() }) + "\n");
    process.exit(0);
  });
});
