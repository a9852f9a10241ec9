// Runs one DhcpServer in this process, for tests and benchmarks that need it
// inside a network namespace (`ip netns exec NS node --import tsx
// test/dhcp/run-server.ts SPEC.json`). SPEC.json: { options: {stateDir,
// port?, proxyPort?, bindAddress?, leases?}, config: DhcpConfig with
// boot.ipxeScriptUrl given as a template string where "{mac}" is replaced,
// logLevel?, reportSeen? }.
//
// stdout carries one JSON object per line: {"event":"ready"} once listening,
// {"event":"seen",...} per onClientSeen, and answers to commands read from
// stdin, one JSON object per line: {"cmd":"stats"|"leases"|"stop"} or
// {"cmd":"config","config":{...}}. SIGTERM stops the server cleanly.
import { readFileSync } from "node:fs";
import pino from "pino";
import { DhcpServer, type DhcpConfig } from "../../reconciler/services/dhcp/server.js";

type SpecConfig = Omit<DhcpConfig, "boot"> & { boot: Omit<DhcpConfig["boot"], "ipxeScriptUrl"> & { ipxeScriptUrl: string } };
interface Spec {
  options: { stateDir: string; port?: number; proxyPort?: number | false; bindAddress?: string; serverAddressSocket?: boolean; leases?: { sync?: boolean; offerHoldMs?: number } };
  config: SpecConfig;
  logLevel?: string;
  /** Print an event per onClientSeen (default true; benchmarks turn it off). */
  reportSeen?: boolean;
}

function toConfig(c: SpecConfig): DhcpConfig {
  const template = c.boot.ipxeScriptUrl;
  return { ...c, boot: { ...c.boot, ipxeScriptUrl: (mac: string) => template.replaceAll("{mac}", mac) } };
}

const out = (o: object): void => {
  process.stdout.write(JSON.stringify(o) + "\n");
};

const spec = JSON.parse(readFileSync(process.argv[2], "utf8")) as Spec;
const logger = pino({ level: spec.logLevel ?? "info" }, pino.destination(2));
const server = new DhcpServer({
  ...spec.options,
  logger,
  ...(spec.reportSeen === false ? {} : { onClientSeen: (e: object) => out({ event: "seen", ...e }) }),
});
server.setConfig(toConfig(spec.config));

let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await server.stop();
  out({ event: "stopped" });
  process.exit(code);
}
process.on("SIGTERM", () => void stop(0));
process.on("SIGINT", () => void stop(0));

let buf = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk: string) => {
  buf += chunk;
  let nl: number;
  while ((nl = buf.indexOf("\n")) !== -1) {
    const line = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    if (!line) continue;
    let cmd: { cmd: string; config?: SpecConfig; id?: number };
    try {
      cmd = JSON.parse(line);
    } catch {
      out({ event: "error", error: "bad command" });
      continue;
    }
    const id = cmd.id;
    try {
      if (cmd.cmd === "stats") out({ event: "stats", id, stats: server.stats() });
      else if (cmd.cmd === "leases") out({ event: "leases", id, leases: server.leases() });
      else if (cmd.cmd === "config") {
        server.setConfig(toConfig(cmd.config!));
        out({ event: "config", id });
      } else if (cmd.cmd === "stop") void stop(0);
      else out({ event: "error", id, error: `unknown command ${cmd.cmd}` });
    } catch (err) {
      out({ event: "error", id, error: (err as Error).message });
    }
  }
});
// The parent going away (stdin closed) stops us too.
process.stdin.on("end", () => void stop(0));

server.start().then(
  () => out({ event: "ready", pid: process.pid }),
  (err: Error) => {
    logger.error({ err: err.message }, "DHCP server failed to start");
    process.exit(1);
  },
);
