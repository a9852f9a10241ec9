// Test harness: runs the DHCP server (test/dhcp/run-server.ts) inside a
// namespace as a child process and talks to it over its stdin/stdout.
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildProcess } from "node:child_process";
import type { Netns } from "../lib/netns.js";
import type { DhcpConfig } from "../../reconciler/services/dhcp/server.js";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const RUNNER = join(REPO, "test/dhcp/run-server.ts");

export type SpecConfig = Omit<DhcpConfig, "boot"> & {
  boot: Omit<DhcpConfig["boot"], "ipxeScriptUrl"> & { ipxeScriptUrl: string };
};

export interface ServerSpec {
  options: { stateDir: string; port?: number; proxyPort?: number | false; bindAddress?: string; serverAddressSocket?: boolean; leases?: { sync?: boolean; offerHoldMs?: number } };
  config: SpecConfig;
  logLevel?: string;
  reportSeen?: boolean;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Event = { event: string; id?: number; [k: string]: any };

export class ServerProcess {
  readonly events: Event[] = [];
  stderr = "";
  private nextId = 1;
  private listeners: Array<(e: Event) => void> = [];
  private exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    let buf = "";
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let e: Event;
        try {
          e = JSON.parse(line);
        } catch {
          continue;
        }
        this.events.push(e);
        for (const l of [...this.listeners]) l(e);
      }
    });
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (c: string) => {
      this.stderr += c;
      if (this.stderr.length > 200_000) this.stderr = this.stderr.slice(-100_000);
    });
    this.exited = new Promise((r) => child.once("exit", (code) => r(code)));
  }

  waitFor(pred: (e: Event) => boolean, timeoutMs = 15_000): Promise<Event> {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve_, reject) => {
      const t = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== on);
        reject(new Error(`timed out waiting for a server event; stderr:\n${this.stderr.slice(-3000)}`));
      }, timeoutMs);
      const on = (e: Event): void => {
        if (!pred(e)) return;
        clearTimeout(t);
        this.listeners = this.listeners.filter((l) => l !== on);
        resolve_(e);
      };
      this.listeners.push(on);
      this.exited.then((code) => {
        clearTimeout(t);
        reject(new Error(`server exited (${code}); stderr:\n${this.stderr.slice(-3000)}`));
      });
    });
  }

  /** Waits until the server's log (stderr) matches re. */
  async waitForLog(re: RegExp, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!re.test(this.stderr)) {
      if (Date.now() > deadline) throw new Error(`log never matched ${re}; stderr:\n${this.stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private ask(cmd: object): Promise<Event> {
    const id = this.nextId++;
    this.child.stdin!.write(JSON.stringify({ ...cmd, id }) + "\n");
    return this.waitFor((e) => e.id === id);
  }

  async stats(): Promise<Record<string, number>> {
    return (await this.ask({ cmd: "stats" })).stats;
  }

  async leases(): Promise<Array<{ ip: string; mac: string; state: string; subnet: string; hostname?: string }>> {
    return (await this.ask({ cmd: "leases" })).leases;
  }

  async setConfig(config: SpecConfig): Promise<void> {
    const e = await this.ask({ cmd: "config", config });
    if (e.event === "error") throw new Error(e.error);
  }

  /** Clean stop (SIGTERM) and wait for the exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    await this.exited;
  }

  /** kill -9, no chance to flush anything. */
  async kill9(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGKILL");
    await this.exited;
  }
}

/** Writes the spec to a file and starts the runner in `ns`; resolves when it listens. */
export async function startServer(ns: Netns, spec: ServerSpec, workDir: string): Promise<ServerProcess> {
  const specPath = join(workDir, `spec-${Date.now()}-${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(specPath, JSON.stringify(spec));
  const child = ns.spawn(process.execPath, ["--import", "tsx", RUNNER, specPath], {
    cwd: REPO,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const proc = new ServerProcess(child);
  await proc.waitFor((e) => e.event === "ready", 30_000);
  return proc;
}

/** Is `cmd` on PATH? */
export function hasCommand(cmd: string): boolean {
  return (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin")
    .split(":")
    .some((d) => d !== "" && existsSync(join(d, cmd)));
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `gitrack-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export function bootInfo(serverIp: string): SpecConfig["boot"] {
  return {
    nextServer: serverIp,
    biosFile: "undionly.kpxe",
    uefiX64File: "ipxe.efi",
    uefiArm64File: "ipxe-arm64.efi",
    ipxeScriptUrl: `http://${serverIp}:8080/boot/{mac}.ipxe`,
  };
}

/**
 * Runs busybox udhcpc once (-n -q -f) in `ns` on `ifname` and returns the
 * variables its script saw on "bound" (ip, subnet, router, dns, siaddr,
 * boot_file, lease, serverid, ...), or null when no lease was obtained.
 */
export function udhcpc(ns: Netns, ifname: string, workDir: string, extra: string[] = []): Record<string, string> | null {
  const out = join(workDir, `udhcpc-${Math.random().toString(16).slice(2)}.env`);
  const script = join(workDir, "udhcpc.sh");
  writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && env > "${out}"\nexit 0\n`, { mode: 0o755 });
  try {
    ns.run("env", ["-i", "busybox", "udhcpc", "-i", ifname, "-n", "-q", "-f", "-t", "4", "-T", "1", "-A", "1", "-s", script, ...extra], { timeoutMs: 20_000 });
  } catch {
    return null;
  }
  let text: string;
  try {
    text = readFileSync(out, "utf8");
  } catch {
    return null;
  }
  const vars: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return vars;
}
