// Issue 8, tried as an attacker on the same wire would: while another host on
// the lab's bridge floods the daemon (spoofed-relay DISCOVERs, DISCOVERs from
// ever new MACs, DECLINEs, TFTP ERROR sprays at transfers in progress and
// netascii reads, HTTP requests for unknown MACs, bad event bodies and
// guessed tokens: test/e2e/lib/attacker.ts), a machine committed during the
// flood PXE boots through gitrack's DHCP and HTTP and reaches Ready, a client
// that got its lease before the flood renews it (the unicast ACK to ciaddr
// that the spoofed relays' unanswered sends used to starve), and the daemon
// that served them is the same process, with no fatal line in its log.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureGuestAssets, type GuestAssets } from "./lib/assets.js";
import { Lab, canRunLab } from "./lib/lab.js";
import { logLines, machineStatus, startDaemon, waitFor, type DaemonProcess } from "./lib/daemon.js";
import { commitFiles, machineDoc, makeLabRepo, ROOT, type LabMachine } from "./lib/site-repo.js";

const BOOT_MS = 300_000;
const ATTACKER = join(dirname(fileURLToPath(import.meta.url)), "lib", "attacker.ts");
const node01: LabMachine = { name: "node01", mac: "52:54:00:77:00:01", ip: "10.77.0.11" };

interface Sent {
  relaySpoof: number;
  newMac: number;
  decline: number;
  tftpRequests: number;
  tftpErrors: number;
  http: number;
  httpStatus: Record<string, number>;
}

describe.skipIf(!canRunLab())("end-to-end: a machine boots while the wire is under attack", () => {
  let lab: Lab;
  let assets: GuestAssets;
  let work: string;
  let repo: string;
  let daemon: DaemonProcess;
  let attacker: ChildProcess | undefined;
  let renewer: ChildProcess | undefined;
  const dhcpEvents: string[] = [];

  beforeAll(async () => {
    assets = await ensureGuestAssets();
    lab = await Lab.create({ prefix: "attack", bridgeAddr: "10.77.0.1/24" });
    work = mkdtempSync(join(tmpdir(), "gitrack-attack-"));
    repo = join(work, "site");
    makeLabRepo(repo, assets, []);
    daemon = startDaemon(lab, { repo, stateDir: join(work, "state") });
    await waitFor("the daemon's /healthz", 60_000, () => {
      try {
        return lab.run("curl", ["-sf", "-m", "2", "http://10.77.0.1:8080/healthz"]);
      } catch {
        return undefined;
      }
    });
  }, 300_000);

  afterAll(async () => {
    for (const c of [attacker, renewer]) if (c && c.exitCode === null) c.kill("SIGKILL");
    await lab?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("a VM committed during DHCP, TFTP and HTTP floods from another host PXE boots to Ready, a leased client renews, and the daemon neither crashed nor logged a fatal error", async () => {
    // A client on the wire with a dynamic lease from before the flood (busybox
    // udhcpc, which applies the address and renews on SIGUSR1 by unicast).
    const client = lab.attachHost("rnw", "169.254.0.2/16");
    const script = join(work, "udhcpc.sh");
    writeFileSync(script, '#!/bin/sh\necho "event=$1 ip=$ip"\n[ "$1" = bound ] && ip addr add "$ip/24" dev "$interface"\nexit 0\n', { mode: 0o755 });
    renewer = client.ns.spawn("busybox", ["udhcpc", "-i", client.ifname, "-f", "-s", script, "-t", "5", "-T", "1", "-A", "1"], { stdio: ["ignore", "pipe", "pipe"] });
    createInterface({ input: renewer.stdout! }).on("line", (l) => dhcpEvents.push(l));
    await waitFor("the client's first lease", 30_000, () => dhcpEvents.some((e) => e.startsWith("event=bound")), 200);
    const renewed = async (what: string) => {
      const before = dhcpEvents.filter((e) => e.startsWith("event=renew")).length;
      renewer!.kill("SIGUSR1");
      await waitFor(what, 10_000, () => dhcpEvents.filter((e) => e.startsWith("event=renew")).length > before, 100);
    };

    const { ns } = lab.attachHost("atk", "10.77.0.199/24");
    attacker = ns.spawn(process.execPath, ["--import", "tsx", ATTACKER, "--server", "10.77.0.1", "--net", "10.77.0", "--dhcp-pps", "1000"], {
      stdio: ["ignore", "pipe", "pipe"],
      cwd: ROOT,
    });
    let stderr = "";
    attacker.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const lines: string[] = [];
    const started = new Promise<void>((resolve, reject) => {
      attacker!.once("exit", (code) => reject(new Error(`attacker exited (${code}): ${stderr}`)));
      createInterface({ input: attacker!.stdout! }).on("line", (l) => {
        lines.push(l);
        if (l.includes('"started"')) resolve();
      });
    });
    await started;
    // Let the flood take hold before the machine exists.
    await new Promise((r) => setTimeout(r, 5000));
    const pid = daemon.child.pid;
    await renewed("the client's renewal during the flood");
    const commit = commitFiles(repo, { "machines/node01.yaml": machineDoc(node01) }, "Add node01 during the flood");

    const s = await waitFor("node01 Ready on the status branch during the flood", BOOT_MS, () => {
      const st = machineStatus(repo, "node01");
      return st?.status.phase === "Ready" ? st : undefined;
    }, 1000);
    // The flood was still on when the machine got there.
    expect(attacker.exitCode).toBeNull();
    await renewed("the client's second renewal during the flood");
    expect(s.status.observedIp).toBe(node01.ip);
    expect(s.metadata.annotations["gitrack.io/desired-commit"]).toBe(commit);

    const exited = new Promise<void>((r) => attacker!.once("exit", () => r()));
    attacker.kill("SIGTERM");
    await exited;
    const sent = JSON.parse(lines.at(-1)!) as Sent;
    // The attack really happened, at the scale of the findings.
    expect(sent.relaySpoof).toBeGreaterThan(5000);
    expect(sent.newMac).toBeGreaterThan(100);
    expect(sent.decline).toBeGreaterThan(500);
    expect(sent.tftpErrors).toBeGreaterThan(1000);
    expect(sent.http).toBeGreaterThan(1000);

    expect(daemon.child.exitCode).toBeNull();
    expect(daemon.child.pid).toBe(pid);
    const fatal = logLines(daemon.log).filter((l) => Number(l.level) >= 60 || /uncaught|unhandled/i.test(String(l.msg ?? "")));
    expect(fatal).toEqual([]);
    // Still answering once the flood is over.
    expect(lab.run("curl", ["-sf", "-m", "2", "http://10.77.0.1:8080/healthz"])).toContain("\"ok\":true");
  }, BOOT_MS + 60_000);
});
