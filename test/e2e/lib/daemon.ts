// `gitrack serve` as a process inside a lab namespace, and reading what it
// wrote to Git (status branch, notes) with the git CLI.
import type { ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import jsyaml from "js-yaml";
import { readJsonLog } from "../../lib/json-log.js";
import type { Lab } from "./lab.js";
import { GITRACK, git } from "./site-repo.js";

export interface DaemonProcess {
  child: ChildProcess;
  log: string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

export function startDaemon(lab: Lab, opts: { repo: string; stateDir: string; logName?: string; logDir?: string; extra?: string[] }): DaemonProcess {
  mkdirSync(opts.stateDir, { recursive: true });
  const log = join(opts.logDir ?? lab.stateDir, opts.logName ?? "daemon.log");
  const fd = openSync(log, "a");
  let child: ChildProcess;
  try {
    child = lab.spawn(
      process.execPath,
      [GITRACK, "serve", "--repo", opts.repo, "--site", "lab", "--state-dir", opts.stateDir, "--status-interval", "1", "--install-timeout", "900", ...(opts.extra ?? [])],
      { stdio: ["ignore", fd, fd], env: { ...process.env, GITRACK_LOG_LEVEL: "info" } },
    );
  } finally {
    closeSync(fd);
  }
  return {
    child,
    log,
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill(signal);
      await done;
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns a value; the error names what was awaited. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${String(lastErr)})` : ""}`);
}

export interface MachineStatus {
  metadata: { name: string; annotations: Record<string, string> };
  spec: { generation: number; intent: string };
  status: {
    phase: string;
    addresses: Array<{ mac: string; ip: string }>;
    observedIp: string | null;
    installedGeneration: number | null;
    bootTarget: string;
    lastBoot: string | null;
    lease: { ip: string } | null;
  };
}

/** A machine's file on gitrack/status/lab, read with `git show`; undefined while absent. */
export function machineStatus(repo: string, name: string): MachineStatus | undefined {
  try {
    return jsyaml.load(git(repo, ["show", `gitrack/status/lab:machines/${name}.yaml`]), { schema: jsyaml.CORE_SCHEMA }) as MachineStatus;
  } catch {
    return undefined;
  }
}

export function note(repo: string, commit: string): string | undefined {
  try {
    return git(repo, ["notes", "--ref=gitrack/lab", "show", commit]);
  } catch {
    return undefined;
  }
}

export function logLines(path: string): Array<Record<string, unknown>> {
  return readJsonLog(path);
}
