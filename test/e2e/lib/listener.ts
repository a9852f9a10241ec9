// Starts test/e2e/lib/event-listener.ts inside a lab and collects the
// requests it reports, so a test can wait for a guest's events.
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Lab } from "./lab.js";

export interface RecordedRequest {
  at: number;
  method: string;
  url: string;
  contentType: string | null;
  body: string;
  status: number;
}

export interface EventListener {
  /** http://HOST:PORT */
  readonly baseUrl: string;
  readonly requests: RecordedRequest[];
  /** Resolves with the first request (already seen or future) matching pred. */
  waitFor(pred: (r: RecordedRequest) => boolean, timeoutMs: number): Promise<RecordedRequest>;
}

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(HERE, "event-listener.ts");
const REPO_ROOT = join(HERE, "../../..");

export async function startEventListener(
  lab: Lab,
  opts: { port: number; serve?: Record<string, string> },
): Promise<EventListener> {
  const args = ["--import", "tsx", SCRIPT, "--host", lab.bridgeIp, "--port", String(opts.port)];
  for (const [path, file] of Object.entries(opts.serve ?? {})) args.push("--serve", `${path}=${file}`);
  const child = lab.spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], cwd: REPO_ROOT });
  const requests: RecordedRequest[] = [];
  const waiters = new Set<() => void>();
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const listening = new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`event listener exited (${code}): ${stderr.trim()}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const msg = JSON.parse(line) as RecordedRequest | { listening: string };
      if ("listening" in msg) return resolve();
      requests.push(msg);
      for (const w of waiters) w();
    });
  });
  await listening;
  return {
    baseUrl: `http://${lab.bridgeIp}:${opts.port}`,
    requests,
    waitFor(pred, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = requests.find(pred);
          if (!hit) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching request within ${timeoutMs} ms; got: ${JSON.stringify(requests)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}
