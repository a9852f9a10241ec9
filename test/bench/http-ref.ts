// Reference HTTP server for benchmarks: nginx with the lab's configuration
// (/work/shared/lab/README.md, "Reference servers"), in a temporary folder,
// optionally inside a network namespace, stopped by PID. And a curl download
// that reports curl's own time_total.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

function inNs(netns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return netns ? ["ip", ["netns", "exec", netns, cmd, ...args]] : [cmd, args];
}

function run(netns: string | undefined, cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const [file, argv] = inNs(netns, cmd, args);
  return new Promise((resolve, reject) => {
    execFile(file, argv, { encoding: "utf8", timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

function nginxConf(dir: string, root: string, listen: string): string {
  const t = path.join(dir, "tmp");
  return `daemon off;
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    types { text/plain txt; application/octet-stream bin; }
    default_type application/octet-stream;
    client_body_temp_path ${t}/body;
    proxy_temp_path ${t}/proxy;
    fastcgi_temp_path ${t}/fastcgi;
    uwsgi_temp_path ${t}/uwsgi;
    scgi_temp_path ${t}/scgi;
    server {
        listen ${listen};
        root ${root};
    }
}
`;
}

/**
 * Starts nginx serving `root` (must be readable by nginx's worker user,
 * `nobody`, when run as root) on `listen` ("ADDR:PORT"). Resolves once an
 * HTTP request is answered.
 */
export async function startNginx(opts: {
  root: string;
  listen: string;
  netns?: string;
}): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), "gt-nginx-"));
  mkdirSync(path.join(dir, "tmp"));
  const conf = path.join(dir, "nginx.conf");
  writeFileSync(conf, nginxConf(dir, path.resolve(opts.root), opts.listen));
  const [file, argv] = inNs(opts.netns, "nginx", ["-p", dir, "-c", conf, "-e", path.join(dir, "error.log")]);
  // `ip netns exec` execs nginx, so child.pid is nginx's master.
  const child: ChildProcess = spawn(file, argv, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://${opts.listen}/`;

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, "SIGTERM");
      const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 5000));
      if ((await Promise.race([exited, timeout])) === "timeout") process.kill(child.pid, "SIGKILL");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };

  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    try {
      // Any HTTP answer (even 404/403) means nginx is listening.
      await run(opts.netns, "curl", ["-s", "-o", "/dev/null", "--max-time", "2", url], 5000);
      return { url, stop };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await stop();
  throw new Error(`nginx did not start on ${opts.listen}: ${stderr.trim().slice(0, 500)}`);
}

/** Downloads url to out with curl (in netns ns when given); returns curl's time_total in seconds. */
export async function curlDownload(ns: string | undefined, url: string, out: string): Promise<number> {
  const stdout = await run(ns, "curl", ["-sf", "-o", out, "-w", "%{time_total}", url]);
  const seconds = Number.parseFloat(stdout.trim());
  if (!Number.isFinite(seconds)) throw new Error(`curl printed no time for ${url}`);
  return seconds;
}
