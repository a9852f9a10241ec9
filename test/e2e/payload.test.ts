// The test guest (test/e2e/guest) booted directly from kernel + initrd in a
// lab VM: it must fetch its config and report its phases, or its inventory,
// as JSON to the URL on its kernel command line.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureGuestAssets, type GuestAssets } from "./lib/assets.js";
import { Lab, canRunLab } from "./lib/lab.js";
import { startEventListener, type EventListener } from "./lib/listener.js";

const BOOT_TIMEOUT_MS = 150_000;

describe.skipIf(!canRunLab())("the end-to-end test guest", () => {
  let lab: Lab;
  let assets: GuestAssets;
  let listener: EventListener;

  beforeAll(async () => {
    assets = await ensureGuestAssets();
    lab = await Lab.create({ prefix: "payload", bridgeAddr: "10.61.0.1/24" });
    const cfg = join(lab.stateDir, "cfg.txt");
    writeFileSync(cfg, "# rendered for vm-install\nhostname=vm-install\n");
    const base = `http://${lab.bridgeIp}:8080`;
    const script = join(lab.stateDir, "boot.ipxe");
    writeFileSync(
      script,
      `#!ipxe\nkernel ${base}/vmlinuz console=ttyS0 quiet panic=-1 gitrack.events=${base}/events/vm-pxe\ninitrd ${base}/initrd.gz\nboot\n`,
    );
    listener = await startEventListener(lab, {
      port: 8080,
      serve: { "/cfg": cfg, "/boot.ipxe": script, "/vmlinuz": assets.kernel, "/initrd.gz": assets.initrd },
    });
    // Only iPXE gets a boot file; the guest's udhcpc just gets an address.
    lab.startDnsmasq({ range: "10.61.0.100,10.61.0.150,1h", bootFile: `${base}/boot.ipxe` });
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  function appendLine(mode: string, id: string): string {
    const events = `${listener.baseUrl}/events/${id}`;
    const config = mode === "install" ? ` gitrack.config=${listener.baseUrl}/cfg` : "";
    return `console=ttyS0 quiet panic=-1 gitrack.mode=${mode} gitrack.events=${events}${config}`;
  }

  function eventsOf(id: string) {
    return listener.requests.filter((r) => r.method === "POST" && r.url === `/events/${id}`);
  }

  it("in install mode fetches its config, then posts Installing, Installed and Ready with its lease address as JSON", async () => {
    const vm = await lab.startVm({
      name: "vm-install",
      mac: "52:54:00:61:00:01",
      kernel: assets.kernel,
      initrd: assets.initrd,
      append: appendLine("install", "vm-install"),
    });
    await listener.waitFor((r) => r.url === "/events/vm-install" && r.body.includes('"Ready"'), BOOT_TIMEOUT_MS);
    await vm.waitExit(30_000);

    const posts = eventsOf("vm-install");
    expect(posts.every((p) => p.contentType === "application/json")).toBe(true);
    const bodies = posts.map((p) => JSON.parse(p.body) as { phase: string; ip?: string });
    expect(bodies.map((b) => b.phase)).toEqual(["Installing", "Installed", "Ready"]);
    expect(bodies[2].ip).toMatch(/^10\.61\.0\.(1[0-4]\d|150)$/);

    const cfgIndex = listener.requests.findIndex((r) => r.method === "GET" && r.url === "/cfg");
    const installingIndex = listener.requests.indexOf(posts[0]);
    expect(cfgIndex).toBeGreaterThanOrEqual(0);
    expect(cfgIndex).toBeLessThan(installingIndex);
    expect(vm.serial()).toContain("gitrack-guest: config: hostname=vm-install");
  }, BOOT_TIMEOUT_MS + 60_000);

  it("in discovery mode posts a Discovered event whose inventory holds its MAC, CPU count and memory", async () => {
    const vm = await lab.startVm({
      name: "vm-disc",
      mac: "52:54:00:61:00:02",
      mem: 320,
      kernel: assets.kernel,
      initrd: assets.initrd,
      append: appendLine("discovery", "vm-disc"),
    });
    const event = await listener.waitFor((r) => r.url === "/events/vm-disc", BOOT_TIMEOUT_MS);
    await vm.waitExit(30_000);

    expect(event.contentType).toBe("application/json");
    const body = JSON.parse(event.body) as {
      phase: string;
      inventory: { macs: string[]; cpus: number; memoryMB: number; uuid?: string; vendor: string };
    };
    expect(body.phase).toBe("Discovered");
    expect(body.inventory.macs).toEqual(["52:54:00:61:00:02"]);
    expect(body.inventory.cpus).toBe(1);
    expect(body.inventory.memoryMB).toBeGreaterThan(200);
    expect(body.inventory.memoryMB).toBeLessThanOrEqual(320);
    expect(body.inventory.vendor).toBe("QEMU");
  }, BOOT_TIMEOUT_MS + 60_000);

  it("without a kernel, boots through the NIC's iPXE ROM from the boot file DHCP names and reports Ready", async () => {
    const vm = await lab.startVm({ name: "vm-pxe", mac: "52:54:00:61:00:03" });
    await listener.waitFor((r) => r.url === "/events/vm-pxe" && r.body.includes('"Ready"'), BOOT_TIMEOUT_MS);
    await vm.waitExit(30_000);

    const gets = listener.requests.filter((r) => r.method === "GET").map((r) => r.url);
    expect(gets).toEqual(expect.arrayContaining(["/boot.ipxe", "/vmlinuz", "/initrd.gz"]));
    expect(vm.serial()).toContain("iPXE");
    expect(vm.serial()).toContain("gitrack-guest: done status=ok");
  }, BOOT_TIMEOUT_MS + 60_000);
});
