// Kernels and initrds in a content-addressed cache: filled from each BootEnv's
// URL (file:// or http(s)://), checked against its sha256 before it is ever
// served, and kept under the digest as its name.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, mkdirSync } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";

export interface ArtifactRef {
  url: string;
  sha256: string;
}

export class ArtifactError extends Error {}

export class ArtifactCache {
  private readonly inflight = new Map<string, Promise<string>>();
  /** sha256 → where to get it, from the BootEnvs of the current model. */
  private readonly sources = new Map<string, ArtifactRef>();

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** Tells the cache which artifacts the current model uses. */
  setSources(refs: Iterable<ArtifactRef>): void {
    this.sources.clear();
    for (const r of refs) this.sources.set(r.sha256, r);
  }

  sourceOf(sha256: string): ArtifactRef | undefined {
    return this.sources.get(sha256);
  }

  has(sha256: string): boolean {
    return existsSync(join(this.dir, sha256));
  }

  /** The cached file's path, fetching and verifying it first when missing. */
  ensure(ref: ArtifactRef): Promise<string> {
    const path = join(this.dir, ref.sha256);
    if (existsSync(path)) return Promise.resolve(path);
    let p = this.inflight.get(ref.sha256);
    if (!p) {
      p = this.fetch(ref, path).finally(() => this.inflight.delete(ref.sha256));
      this.inflight.set(ref.sha256, p);
    }
    return p;
  }

  private async fetch(ref: ArtifactRef, path: string): Promise<string> {
    const tmp = `${path}.${process.pid}.tmp`;
    const hash = createHash("sha256");
    let source: Readable;
    if (ref.url.startsWith("file://")) {
      const file = fileURLToPath(ref.url);
      if (!existsSync(file)) throw new ArtifactError(`${ref.url}: no such file`);
      source = createReadStream(file);
    } else {
      const res = await fetch(ref.url);
      if (!res.ok || !res.body) throw new ArtifactError(`${redact(ref.url)}: HTTP ${res.status}`);
      source = Readable.fromWeb(res.body as never);
    }
    source.on("data", (chunk: Buffer) => hash.update(chunk));
    try {
      await pipeline(source, createWriteStream(tmp, { mode: 0o644 }));
      const got = hash.digest("hex");
      if (got !== ref.sha256) throw new ArtifactError(`${redact(ref.url)}: sha256 is ${got}, the BootEnv pins ${ref.sha256}`);
      await rename(tmp, path);
      return path;
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^/@]*@/, "//***@");
}
