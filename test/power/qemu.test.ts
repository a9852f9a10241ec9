// The qemu power driver against real QEMU in a lab namespace: the VM it
// starts is on a tap enslaved to the bridge with the machine's MAC, a
// restarted daemon (a second driver instance) adopts it, and power-off ends
// it and removes the tap.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPowerDrivers, qemuTapName, type PowerDriver, type PowerLogger, type PowerTarget } from "../../reconciler/power/index.js";
import { Lab, canRunLab } from "../e2e/lib/lab.js";

function recordingLogger(): PowerLogger & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (obj: object, msg?: string) => lines.push(`${level} ${msg ?? ""} ${JSON.stringify(obj)}`);
  return { lines, info: rec("info"), warn: rec("warn"), error: rec("error") };
}

/** PIDs of processes whose command line is a QEMU named `name`. */
function qemuPidsNamed(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      const at = argv.indexOf("-name");
      if (argv[0]?.includes("qemu-system") && at > 0 && argv[at + 1] === name) pids.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

describe.skipIf(!canRunLab())("the qemu power driver", () => {
  let lab: Lab;
  let stateDir: string;
  let driver: PowerDriver;
  const target: PowerTarget = {
    machine: "r1-n01",
    macs: ["52:54:00:63:00:01"],
    spec: { driver: "qemu", bridge: "br0", memoryMB: 128 },
  };
  const tap = qemuTapName(target.machine);

  beforeAll(async () => {
    lab = await Lab.create({ prefix: "power", bridgeAddr: "10.63.0.1/24", routerAdvertisements: false });
    stateDir = mkdtempSync(join(tmpdir(), "gitrack-power-"));
    driver = createPowerDrivers({ stateDir, logger: recordingLogger(), netns: lab.name }).get("qemu")!;
  });

  afterAll(async () => {
    try {
      await driver?.powerOff(target);
    } finally {
      await lab?.destroy();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it("names taps with at most 15 characters, the same for the same machine and different for others", () => {
    expect(tap.length).toBeLessThanOrEqual(15);
    expect(qemuTapName("r1-n01")).toBe(tap);
    expect(qemuTapName("r1-n02")).not.toBe(tap);
    expect(qemuTapName("a-very-long-machine-name-in-rack-7").length).toBeLessThanOrEqual(15);
  });

  it("reports a VM that was never started as off", async () => {
    expect(await driver.status(target)).toBe("off");
  });

  it("powers a VM on with the machine's MAC on a tap enslaved to the bridge", async () => {
    await driver.powerOn(target, { bootDevice: "pxe" });
    expect(await driver.status(target)).toBe("on");

    const pids = qemuPidsNamed(target.machine);
    expect(pids).toHaveLength(1);
    const argv = readFileSync(`/proc/${pids[0]}/cmdline`, "utf8").split("\0");
    expect(argv.some((a) => a.includes("mac=52:54:00:63:00:01"))).toBe(true);
    expect(argv).toContain("-no-reboot");

    const link = lab.run("ip", ["-d", "link", "show", "dev", tap]);
    expect(link).toMatch(/tun type tap/);
    expect(link).toMatch(/master br0/);
    expect(lab.run("bridge", ["link", "show"])).toMatch(new RegExp(`${tap}.*master br0`));
    expect(existsSync(join(stateDir, "vms", target.machine, "serial.log"))).toBe(true);
  });

  it("runs QEMU detached in its own session, network-booting through the NIC's iPXE ROM", async () => {
    const [pid] = qemuPidsNamed(target.machine);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const [, , pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    expect(Number(session)).toBe(pid);
    expect(Number(pgrp)).toBe(pid);

    const serialLog = join(stateDir, "vms", target.machine, "serial.log");
    const deadline = Date.now() + 90_000;
    while (!readFileSync(serialLog, "latin1").includes("iPXE") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(readFileSync(serialLog, "latin1")).toContain("iPXE");
  }, 120_000);

  it("refuses to power on a VM whose bridge does not exist, saying which bridge", async () => {
    const other: PowerTarget = { machine: "r1-n09", macs: ["52:54:00:63:00:09"], spec: { driver: "qemu", bridge: "nobr0" } };
    await expect(driver.powerOn(other)).rejects.toThrow(/machine r1-n09: power driver "qemu": bridge nobr0 does not exist/);
    expect(await driver.status(other)).toBe("off");
  });

  it("lets a restarted daemon adopt the running VM instead of starting a second one", async () => {
    const before = qemuPidsNamed(target.machine);
    const restarted = createPowerDrivers({ stateDir, logger: recordingLogger(), netns: lab.name }).get("qemu")!;
    expect(await restarted.status(target)).toBe("on");
    await restarted.powerOn(target);
    expect(qemuPidsNamed(target.machine)).toEqual(before);
  });

  it("keeps a VM running after the daemon that started it exits, and a new daemon adopts it", async () => {
    const other: PowerTarget = { machine: "r1-n02", macs: ["52:54:00:63:00:02"], spec: { driver: "qemu", bridge: "br0", memoryMB: 128 } };
    const script = join(dirname(fileURLToPath(import.meta.url)), "power-on-and-exit.ts");
    execFileSync(process.execPath, ["--import", "tsx", script, stateDir, lab.name, other.machine, other.macs[0]], {
      cwd: join(dirname(fileURLToPath(import.meta.url)), "../.."),
      stdio: "pipe",
    });
    const before = qemuPidsNamed(other.machine);
    expect(before).toHaveLength(1);
    expect(await driver.status(other)).toBe("on");
    await driver.powerOn(other);
    expect(qemuPidsNamed(other.machine)).toEqual(before);
    await driver.powerOff(other);
    expect(qemuPidsNamed(other.machine)).toEqual([]);
  });

  it("powers the VM off by PID, removes its tap and then reports off", async () => {
    const [pid] = qemuPidsNamed(target.machine);
    await driver.powerOff(target);
    expect(existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("qemu")).toBe(false);
    expect(() => lab.run("ip", ["link", "show", "dev", tap])).toThrow();
    expect(await driver.status(target)).toBe("off");
  });

  it("appends each boot to the serial log after a separator line", async () => {
    await driver.powerCycle(target);
    expect(await driver.status(target)).toBe("on");
    await driver.powerOff(target);
    const log = readFileSync(join(stateDir, "vms", target.machine, "serial.log"), "utf8");
    expect(log.match(/===== gitrack: power on r1-n01/g)).toHaveLength(2);
  });
});

describe("power drivers that gitrack cannot drive yet", () => {
  const drivers = createPowerDrivers({ stateDir: tmpdir(), logger: recordingLogger() });

  it.each(["ipmi", "redfish"])("%s is registered and fails every action with 'not available yet'", async (name) => {
    const t: PowerTarget = { machine: "r2-n07", macs: ["52:54:00:00:00:07"], spec: { driver: name, address: "10.0.0.7" } };
    const d = drivers.get(name)!;
    expect(d).toBeDefined();
    await expect(d.powerOn(t)).rejects.toThrow(/machine r2-n07: power driver "\w+": driver not available yet/);
    await expect(d.status(t)).rejects.toThrow(/not available yet/);
  });

  it("the manual driver asks a person to power the machine, naming it and its MAC", async () => {
    const logger = recordingLogger();
    const manual = createPowerDrivers({ stateDir: tmpdir(), logger }).get("manual")!;
    const t: PowerTarget = { machine: "r3-n02", macs: ["52:54:00:00:03:02"], spec: { driver: "manual" } };
    await manual.powerCycle(t);
    expect(await manual.status(t)).toBe("unknown");
    expect(logger.lines.join("\n")).toMatch(/please power cycle machine r3-n02 \(MAC 52:54:00:00:03:02\)/);
  });
});
