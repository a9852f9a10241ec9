// The server in its own network namespace (as its own process), the clients
// in another, joined by a veth pair: what a PXE client on a wire sees.
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canUseNetns, createVethPair, type VethPair } from "../lib/netns.js";
import { atftpGet, busyboxGet, hasCommand, sha256, tftpHpaGet, tftpHpaPut } from "./clients.js";

const SERVER = "10.77.0.1";
const CLIENT = "10.77.0.2";
const ok = canUseNetns() && hasCommand("tftp") && hasCommand("atftp") && hasCommand("busybox");
const undionly = "/usr/lib/ipxe/undionly.kpxe";

describe.skipIf(!ok)("TFTP server in a network namespace with clients across a veth pair", () => {
  let pair: VethPair | undefined;
  let dir: string;
  let root: string;
  let out: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "gt-tftpns-"));
    root = path.join(dir, "root");
    out = path.join(dir, "out");
    mkdirSync(root);
    mkdirSync(out);
    writeFileSync(path.join(root, "random.bin"), randomBytes(5 * 1024 * 1024 + 123));
    copyFileSync(undionly, path.join(root, "undionly.kpxe"));
    pair = createVethPair("tf", { serverAddr: `${SERVER}/24`, clientAddr: `${CLIENT}/24` });
    const child = pair.server.spawn(
      process.execPath,
      ["--import", "tsx", "test/tftp/serve.ts", "--root", root, "--bind", SERVER, "--port", "69", "--echo-resolver"],
      { cwd: process.cwd() },
    );
    const lines = createInterface({ input: child.stdout! });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("server did not start")), 30_000);
      lines.on("line", (l) => {
        if (l.includes('"ready":true')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
    });
  });

  afterAll(async () => {
    await pair?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const ns = () => pair!.client.name;
  const o = (n: string) => path.join(out, n);

  it("serves undionly.kpxe from the ipxe package to busybox tftp byte-identical", async () => {
    const r = await busyboxGet(ns(), SERVER, 69, "undionly.kpxe", o("undionly.kpxe"), 1468);
    expect(r.ok, r.stderr).toBe(true);
    expect(sha256(o("undionly.kpxe"))).toBe(sha256(undionly));
  });

  it("serves tftp-hpa (512-byte blocks, no options) byte-identical", async () => {
    const r = await tftpHpaGet(ns(), SERVER, 69, "undionly.kpxe", o("hpa.kpxe"));
    expect(r.ok, r.stderr).toBe(true);
    expect(sha256(o("hpa.kpxe"))).toBe(sha256(undionly));
  });

  it("negotiates windowsize 8 with atftp (seen in the OACK) and sends 5 MB intact", async () => {
    const r = await atftpGet(ns(), SERVER, 69, "random.bin", o("random.bin"), { blksize: 1468, windowsize: 8, tsize: 0 }, true);
    expect(r.ok, r.stderr).toBe(true);
    const oack = (r.stdout + r.stderr).split("\n").find((l) => l.includes("received OACK")) ?? "";
    expect(oack).toMatch(/windowsize: 8/);
    expect(oack).toMatch(new RegExp(`tsize: ${5 * 1024 * 1024 + 123}`));
    // Windowed: the client acknowledges about one block in eight.
    const acks = (r.stdout + r.stderr).split("\n").filter((l) => l.includes("sent ACK")).length;
    const blocks = Math.floor((5 * 1024 * 1024 + 123) / 1468) + 1;
    expect(acks).toBeLessThan(blocks / 4);
    expect(sha256(o("random.bin"))).toBe(sha256(path.join(root, "random.bin")));
  }, 60_000);

  it("serves a resolver-built file that names the asking client's address", async () => {
    const r = await busyboxGet(ns(), SERVER, 69, "whoami.txt", o("whoami.txt"));
    expect(r.ok, r.stderr).toBe(true);
    expect(readFileSync(o("whoami.txt"), "utf8")).toBe(`${CLIENT}\n`);
  });

  it("refuses escapes and uploads across the namespace boundary", async () => {
    for (const file of ["../etc/passwd", "a/../../etc/passwd", "%2e%2e/etc/passwd"]) {
      const r = await busyboxGet(ns(), SERVER, 69, file, o("escape"));
      expect(r.ok).toBe(false);
      expect(r.stderr).toMatch(/access violation/);
    }
    writeFileSync(o("up.bin"), "x");
    const put = await tftpHpaPut(ns(), SERVER, 69, o("up.bin"), "up.bin");
    expect(put.stdout + put.stderr).toContain("Error code 2");
  });
});
