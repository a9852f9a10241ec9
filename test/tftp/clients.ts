// Real TFTP clients (tftp-hpa, atftp, busybox) run as child processes,
// optionally inside a network namespace, plus helpers shared by the tests.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, readFileSync } from "node:fs";

export interface ClientResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs CMD (in namespace ns when given); never rejects. */
export function runClient(ns: string | undefined, cmd: string, args: string[], timeoutMs = 60_000): Promise<ClientResult> {
  const [file, argv] = ns ? ["ip", ["netns", "exec", ns, cmd, ...args]] : [cmd, args];
  return new Promise((resolve) => {
    execFile(file, argv, { timeout: timeoutMs, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ ok: !err, stdout, stderr });
    });
  });
}

/** tftp-hpa: 512-byte blocks, no options. */
export function tftpHpaGet(ns: string | undefined, host: string, port: number, file: string, out: string, mode = "binary") {
  return runClient(ns, "tftp", ["-v", host, String(port), "-m", mode, "-c", "get", file, out]);
}

export function tftpHpaPut(ns: string | undefined, host: string, port: number, local: string, remote: string) {
  return runClient(ns, "tftp", [host, String(port), "-m", "binary", "-c", "put", local, remote]);
}

/** atftp with RFC 2347 options, e.g. {blksize: 1468, windowsize: 8, tsize: 0}; --trace shows the OACK. */
export function atftpGet(
  ns: string | undefined,
  host: string,
  port: number,
  file: string,
  out: string,
  options: Record<string, number>,
  trace = false,
) {
  const opts = Object.entries(options).flatMap(([k, v]) => ["--option", `${k} ${v}`]);
  return runClient(ns, "atftp", [...(trace ? ["--trace"] : []), ...opts, "-g", "-r", file, "-l", out, host, String(port)]);
}

export function busyboxGet(ns: string | undefined, host: string, port: number, file: string, out: string, blksize = 512) {
  return runClient(ns, "busybox", ["tftp", "-b", String(blksize), "-g", "-r", file, "-l", out, host, String(port)]);
}

export function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

export function hasCommand(cmd: string): boolean {
  return (process.env.PATH ?? "/usr/bin:/bin").split(":").some((dir) => {
    try {
      accessSync(`${dir}/${cmd}`, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
