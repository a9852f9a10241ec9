// Runs the gitrack CLI in this process (main() from reconciler/cli/main.ts)
// with its stdout and stderr captured, or as the installed binary.
import { execFile, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { vi } from "vitest";
import { main } from "../../reconciler/cli/main.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `gitrack ARGS` in-process. Calls must not overlap (they share process.stdout). */
export async function gitrack(...args: string[]): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const capture = (append: (s: string) => void) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      append(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
      const cb = rest.find((r) => typeof r === "function") as (() => void) | undefined;
      cb?.();
      return true;
    }) as typeof process.stdout.write;
  const out = vi.spyOn(process.stdout, "write").mockImplementation(capture((s) => (stdout += s)));
  const err = vi.spyOn(process.stderr, "write").mockImplementation(capture((s) => (stderr += s)));
  try {
    const code = await main(["node", "gitrack", ...args]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BIN = join(PACKAGE_ROOT, "bin", "gitrack.js");

/** The real `bin/gitrack.js` (it runs dist/: `npm test` builds it first). */
export function gitrackBin(args: string[], cwd: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.GITRACK_REPO;
    execFile(process.execPath, [BIN, ...args], { cwd, env, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Each line of a validate report. */
export function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.length > 0);
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds dist/ (as `npm test`'s pretest does) when it is missing or older than the sources. */
export function ensureBuilt(): void {
  const built = join(PACKAGE_ROOT, "dist", "reconciler", "cli", "main.js");
  const sources = Math.max(...["reconciler", "schemas", "renderers"].map((d) => newestMtime(join(PACKAGE_ROOT, d))));
  if (existsSync(built) && statSync(built).mtimeMs >= sources) return;
  // tsc writes its output even when some file has a type error.
  spawnSync(process.execPath, [join(PACKAGE_ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], { cwd: PACKAGE_ROOT, stdio: "ignore" });
}
