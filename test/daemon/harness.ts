// Helpers for the daemon tests: a site repository made with `gitrack init`
// and edited by git commits, `gitrack serve` as a child process inside a
// namespace (so SIGTERM/SIGKILL and restarts are real), and real clients
// (curl, udhcpc, dhclient) run in the client namespace.
import { execFileSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseJsonLines } from "../lib/json-log.js";
import type { Netns } from "../lib/netns.js";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const GITRACK = join(ROOT, "bin", "gitrack.js");

const GIT_ENV = {
  GIT_AUTHOR_NAME: "operator",
  GIT_AUTHOR_EMAIL: "operator@example.invalid",
  GIT_COMMITTER_NAME: "operator",
  GIT_COMMITTER_EMAIL: "operator@example.invalid",
};

export function git(repo: string, args: string[], input?: string): string {
  return execFileSync("git", ["-C", repo, ...args], {
    encoding: "utf8",
    input,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...GIT_ENV },
  }).trim();
}

export function gitrack(args: string[], cwd = ROOT): string {
  return execFileSync(process.execPath, [GITRACK, ...args], { encoding: "utf8", cwd, stdio: ["ignore", "pipe", "pipe"] });
}

/** Writes files (path → content, null deletes) and commits them; returns the new commit. */
export function commitFiles(repo: string, files: Record<string, string | null>, message: string): string {
  for (const [path, content] of Object.entries(files)) {
    if (content === null) {
      git(repo, ["rm", "-q", "--", path]);
      continue;
    }
    const full = join(repo, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
    git(repo, ["add", "--", path]);
  }
  git(repo, ["commit", "-q", "-m", message]);
  return git(repo, ["rev-parse", "HEAD"]);
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `gitrack-${prefix}-`));
  return {
    path,
    // GITRACK_TEST_KEEP=1 keeps the repository, state and daemon logs for a look.
    remove: () => (process.env.GITRACK_TEST_KEEP ? process.stderr.write(`kept ${path}\n`) : rmSync(path, { recursive: true, force: true })),
  };
}

export function hasCommand(cmd: string): boolean {
  return (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin")
    .split(":")
    .some((d) => d !== "" && existsSync(join(d, cmd)));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns something other than undefined/false; the error names what was awaited. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${String(lastErr)})` : ""}`);
    await sleep(intervalMs);
  }
}

// --- the daemon ----------------------------------------------------------------

export class DaemonProcess {
  private exited: Promise<void>;
  constructor(
    readonly child: ChildProcess,
    readonly logPath: string,
  ) {
    this.exited = new Promise((r) => child.once("exit", () => r()));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    try {
      return readFileSync(this.logPath, "utf8");
    } catch {
      return "";
    }
  }

  /** The JSON lines of the log whose msg matches re. */
  lines(re: RegExp): Array<Record<string, unknown>> {
    return parseJsonLines(this.log()).filter((l) => typeof l.msg === "string" && re.test(l.msg));
  }

  async ready(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      "the daemon to serve",
      () => {
        if (!this.running) throw new Error(`daemon exited early:\n${this.log().slice(-3000)}`);
        return this.log().includes('"msg":"gitrack serving"');
      },
      timeoutMs,
      100,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.log().slice(-3000)}`);
    });
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    await this.exited;
  }
}

/**
 * Starts `gitrack serve` in `ns` (ip netns exec execs node, so the child PID
 * is the daemon). `root` is the checkout whose bin/gitrack.js runs: this one
 * unless a bench compares with an earlier commit.
 */
export function startDaemon(ns: Netns, args: string[], logPath: string, env: Record<string, string> = {}, root = ROOT): DaemonProcess {
  const fd = openSync(logPath, "a");
  try {
    const child = ns.spawn(process.execPath, [join(root, "bin", "gitrack.js"), "serve", ...args], {
      cwd: root,
      stdio: ["ignore", fd, fd],
      env: { ...process.env, ...env, GITRACK_LOG_LEVEL: "info" },
    });
    return new DaemonProcess(child, logPath);
  } finally {
    closeSync(fd);
  }
}

// --- clients -------------------------------------------------------------------

export interface HttpResult {
  status: number;
  body: Buffer;
  text: string;
}

/** curl in `ns`; never throws for HTTP errors. */
export function curl(ns: Netns, work: string, url: string, extra: string[] = []): HttpResult {
  const out = join(work, `curl-${process.hrtime.bigint()}.out`);
  const code = ns.run("curl", ["-sS", "-o", out, "-w", "%{http_code}", "--max-time", "10", ...extra, url]);
  const body = existsSync(out) ? readFileSync(out) : Buffer.alloc(0);
  rmSync(out, { force: true });
  return { status: Number(code.trim()), body, text: body.toString("utf8") };
}

/**
 * curl from `from`, an address added to `ifname` for this one request (a /32,
 * so no route changes): how a machine with that address would ask.
 */
export function curlFrom(ns: Netns, ifname: string, from: string, work: string, url: string, extra: string[] = []): HttpResult {
  ns.run("ip", ["addr", "add", `${from}/32`, "dev", ifname]);
  try {
    return curl(ns, work, url, ["--interface", from, ...extra]);
  } finally {
    ns.run("ip", ["addr", "del", `${from}/32`, "dev", ifname]);
  }
}

/**
 * busybox udhcpc once (-n -q -f) on `ifname` in `ns`: the variables its
 * script saw on "bound" (ip, hostname, router, serverid, ...), or null when
 * no lease was obtained.
 */
export function udhcpc(ns: Netns, ifname: string, work: string, extra: string[] = []): Record<string, string> | null {
  const out = join(work, `udhcpc-${process.hrtime.bigint()}.env`);
  const script = join(work, "udhcpc.sh");
  if (!existsSync(script)) writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && env > "$GT_OUT"\nexit 0\n`, { mode: 0o755 });
  try {
    ns.run("env", ["-i", `GT_OUT=${out}`, "busybox", "udhcpc", "-i", ifname, "-n", "-q", "-f", "-t", "3", "-T", "1", "-A", "1", "-s", script, ...extra], { timeoutMs: 20_000 });
  } catch {
    return null;
  }
  if (!existsSync(out)) return null;
  const vars: Record<string, string> = {};
  for (const line of readFileSync(out, "utf8").split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  rmSync(out, { force: true });
  return vars;
}

export function setMac(ns: Netns, ifname: string, mac: string): void {
  ns.run("ip", ["link", "set", "dev", ifname, "address", mac]);
}

// --- the site repository ----------------------------------------------------------

export function machineDoc(m: { name: string; mac: string; ip: string; generation?: number; intent?: string; bootEnv?: string }): string {
  return `apiVersion: gitrack/v1
kind: Machine
metadata:
  name: ${m.name}
  labels: {rack: r1, role: worker}
spec:
  site: lab
  interfaces:
    - mac: "${m.mac}"
      ip: ${m.ip}
  profiles: [worker, base]
${m.bootEnv ? `  bootEnv: ${m.bootEnv}\n` : ""}  intent: ${m.intent ?? "provisioned"}
  generation: ${m.generation ?? 1}
  power:
    driver: manual
`;
}

/** An installer BootEnv whose kernel and initrd are local files pinned by sha256. */
export function bootEnvDoc(name: string, kernel: { path: string; sha256: string }, initrd: { path: string; sha256: string }): string {
  return `apiVersion: gitrack/v1
kind: BootEnv
metadata:
  name: ${name}
spec:
  purpose: install
  kernel:
    url: file://${kernel.path}
    sha256: ${kernel.sha256}
  initrds:
    - url: file://${initrd.path}
      sha256: ${initrd.sha256}
  cmdline: console=ttyS0 gitrack.events={{ urls.events }} gitrack.config={{ urls.files }}install.cfg
  files:
    - name: install.cfg
      template: |
        hostname={{ machine.name }}
        generation={{ machine.generation }}
`;
}
