// "qemu": the machine is a local VM the daemon starts and stops itself. It
// has no disk and boots from the network through its NIC's iPXE ROM, on a tap
// device attached to spec.bridge. QEMU runs detached (own process group) and
// outlives a daemon crash; a restarted daemon finds it again through its PID
// file, checked against /proc so a recycled PID is never taken for it.
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { QEMU_BINARY, qemuArgs, resolveAccel, type QemuAccel, type QemuNic } from "./qemu-command.js";
import { PowerError, type PowerDriver, type PowerLogger, type PowerTarget } from "./types.js";

const run = promisify(execFile);
const DRIVER = "qemu";
const STOP_GRACE_MS = 5000;

export interface QemuPowerSpec {
  driver: "qemu";
  bridge: string;
  memoryMB: number;
  nic: QemuNic;
  accel: "auto" | QemuAccel;
}

interface PidRecord {
  pid: number;
  /** Field 22 of /proc/PID/stat when QEMU started: tells a recycled PID apart. */
  startTime: string;
  tap: string;
  mac: string;
  startedAt: string;
}

/** Reads and checks spec.power for the qemu driver; throws PowerError("invalid-spec"). */
export function parseQemuSpec(t: PowerTarget): QemuPowerSpec {
  const bad = (msg: string) => new PowerError("invalid-spec", t.machine, DRIVER, msg);
  const s = t.spec;
  if (typeof s.bridge !== "string" || !/^[A-Za-z0-9_.-]{1,15}$/.test(s.bridge)) {
    throw bad(`spec.power.bridge must be an interface name of 1-15 characters, got ${JSON.stringify(s.bridge)}`);
  }
  const memoryMB = s.memoryMB ?? 256;
  if (typeof memoryMB !== "number" || !Number.isInteger(memoryMB) || memoryMB < 64) {
    throw bad(`spec.power.memoryMB must be an integer >= 64, got ${JSON.stringify(s.memoryMB)}`);
  }
  const nic = s.nic ?? "virtio";
  if (nic !== "virtio" && nic !== "e1000") throw bad(`spec.power.nic must be virtio or e1000, got ${JSON.stringify(s.nic)}`);
  const accel = s.accel ?? "auto";
  if (accel !== "auto" && accel !== "kvm" && accel !== "tcg") {
    throw bad(`spec.power.accel must be auto, kvm or tcg, got ${JSON.stringify(s.accel)}`);
  }
  if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(t.machine)) throw bad(`machine name "${t.machine}" cannot name a VM folder`);
  const mac = t.macs[0];
  if (!mac || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw bad(`the machine needs a MAC address for its NIC, got ${JSON.stringify(mac)}`);
  return { driver: "qemu", bridge: s.bridge, memoryMB, nic, accel };
}

/**
 * The tap device of a machine's VM: "g" + 8 hex digits of sha256(name) + "-"
 * + the first 5 characters of the name: at most 15 characters (IFNAMSIZ),
 * the same on every run, and different for different machines.
 */
export function qemuTapName(machine: string): string {
  const hash = createHash("sha256").update(machine).digest("hex").slice(0, 8);
  return `g${hash}-${machine.replace(/[^A-Za-z0-9_-]/g, "").slice(0, 5)}`;
}

export function createQemuDriver(opts: { stateDir: string; logger: PowerLogger; netns?: string }): PowerDriver {
  const { logger, netns } = opts;
  const vmDir = (machine: string) => join(opts.stateDir, "vms", machine);
  const pidFile = (machine: string) => join(vmDir(machine), "qemu.pid");
  // One action at a time per machine, in the order asked.
  const queues = new Map<string, Promise<unknown>>();
  const serialize = <T>(machine: string, action: () => Promise<T>): Promise<T> => {
    const prev = queues.get(machine) ?? Promise.resolve();
    const next = prev.then(action, action);
    queues.set(
      machine,
      next.catch(() => undefined),
    );
    return next;
  };

  const ip = async (args: string[]) => {
    const full = netns ? ["-n", netns, ...args] : args;
    try {
      return (await run("ip", full, { encoding: "utf8" })).stdout;
    } catch (err) {
      const e = err as { stderr?: string };
      throw new Error(`ip ${full.join(" ")}: ${(e.stderr ?? String(err)).trim()}`);
    }
  };

  /** The running QEMU of this machine, if its PID file names one. */
  const running = (machine: string): PidRecord | undefined => {
    let rec: PidRecord;
    try {
      rec = JSON.parse(readFileSync(pidFile(machine), "utf8")) as PidRecord;
    } catch {
      return undefined;
    }
    return isOurQemu(rec, machine) ? rec : undefined;
  };

  const removeTap = async (tap: string) => {
    try {
      await ip(["link", "del", tap]);
    } catch {
      /* not there */
    }
  };

  const powerOn = async (t: PowerTarget): Promise<void> => {
    const spec = parseQemuSpec(t);
    const existing = running(t.machine);
    if (existing) {
      logger.info({ machine: t.machine, driver: DRIVER, pid: existing.pid }, "qemu: VM already running; nothing to do");
      return;
    }
    const dir = vmDir(t.machine);
    mkdirSync(dir, { recursive: true });
    const tap = qemuTapName(t.machine);
    const mac = t.macs[0].toLowerCase();
    const fail = (msg: string) => new PowerError("failed", t.machine, DRIVER, msg);
    try {
      await ip(["link", "show", "dev", spec.bridge]);
    } catch {
      throw fail(`bridge ${spec.bridge} does not exist${netns ? ` in namespace ${netns}` : ""}; create it or fix spec.power.bridge`);
    }
    await removeTap(tap); // left over from a VM that powered itself off
    try {
      await ip(["tuntap", "add", "dev", tap, "mode", "tap"]);
      await ip(["link", "set", tap, "master", spec.bridge, "up"]);
    } catch (err) {
      await removeTap(tap);
      throw fail(`cannot create tap ${tap} on ${spec.bridge}: ${(err as Error).message}`);
    }

    const serialLog = join(dir, "serial.log");
    const accel = resolveAccel(spec.accel);
    appendFileSync(serialLog, `\n===== gitrack: power on ${t.machine} mac=${mac} accel=${accel} at ${new Date().toISOString()} =====\n`);
    const args = qemuArgs({
      name: t.machine,
      accel,
      memoryMB: spec.memoryMB,
      nic: spec.nic,
      tap,
      mac,
      serialLog,
      appendSerial: true,
    });
    const cmd = netns ? "ip" : QEMU_BINARY;
    const argv = netns ? ["netns", "exec", netns, QEMU_BINARY, ...args] : args;
    writeFileSync(join(dir, "cmdline"), [cmd, ...argv].join(" ") + "\n");
    const log = openSync(join(dir, "qemu.log"), "a");
    let child;
    try {
      // `ip netns exec` execs QEMU, so the PID is QEMU's either way.
      child = spawn(cmd, argv, { detached: true, stdio: ["ignore", log, log] });
    } finally {
      closeSync(log);
    }
    child.unref();
    const pid = child.pid;
    if (pid === undefined) {
      await removeTap(tap);
      throw fail(`cannot start ${QEMU_BINARY}; is qemu-system-x86 installed?`);
    }
    let exited = false;
    child.once("exit", () => (exited = true));
    child.once("error", () => (exited = true));
    // The PID file goes down at once: a daemon killed in the next moments
    // must find this VM on restart, not start a second one.
    const early = procStartTime(pid);
    if (early !== undefined) {
      writeFileSync(pidFile(t.machine), JSON.stringify({ pid, startTime: early, tap, mac, startedAt: new Date().toISOString() } satisfies PidRecord) + "\n");
    }
    // QEMU rejects bad arguments and busy taps at once; see that here rather
    // than report a VM that is not there.
    await sleep(300);
    const startTime = procStartTime(pid);
    if (exited || startTime === undefined) {
      rmSync(pidFile(t.machine), { force: true });
      await removeTap(tap);
      throw fail(`QEMU exited at start: ${tail(join(dir, "qemu.log"))}`);
    }
    const rec: PidRecord = { pid, startTime, tap, mac, startedAt: new Date().toISOString() };
    writeFileSync(pidFile(t.machine), JSON.stringify(rec) + "\n");
    logger.info({ machine: t.machine, driver: DRIVER, pid, tap, mac, accel, serialLog }, "qemu: VM powered on");
  };

  const powerOff = async (t: PowerTarget): Promise<void> => {
    const rec = running(t.machine);
    if (rec) {
      await endProcess(rec, t.machine);
      logger.info({ machine: t.machine, driver: DRIVER, pid: rec.pid }, "qemu: VM powered off");
    }
    await removeTap(rec?.tap ?? qemuTapName(t.machine));
    rmSync(pidFile(t.machine), { force: true });
  };

  return {
    name: DRIVER,
    async status(t) {
      return running(t.machine) ? "on" : "off";
    },
    powerOn(t) {
      return serialize(t.machine, () => powerOn(t));
    },
    powerOff(t) {
      return serialize(t.machine, () => powerOff(t));
    },
    powerCycle(t) {
      return serialize(t.machine, async () => {
        await powerOff(t);
        await powerOn(t);
      });
    },
  } satisfies PowerDriver;
}

function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return undefined; // exited, not yet reaped
    return fields[19]; // field 22 overall
  } catch {
    return undefined;
  }
}

/** True when rec.pid is still the QEMU this driver started for machine. */
function isOurQemu(rec: PidRecord, machine: string): boolean {
  if (!Number.isInteger(rec.pid) || rec.pid <= 0) return false;
  if (procStartTime(rec.pid) !== rec.startTime) return false;
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${rec.pid}/cmdline`, "utf8").split("\0");
  } catch {
    return false;
  }
  const nameAt = argv.indexOf("-name");
  return (
    basename(argv[0] ?? "").startsWith("qemu-system") &&
    nameAt > 0 &&
    argv[nameAt + 1] === machine &&
    argv.some((a) => a.includes(`ifname=${rec.tap},`))
  );
}

async function endProcess(rec: PidRecord, machine: string): Promise<void> {
  const alive = () => isOurQemu(rec, machine);
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(rec.pid, s);
    } catch {
      /* gone */
    }
  };
  signal("SIGTERM");
  const deadline = Date.now() + STOP_GRACE_MS;
  while (alive() && Date.now() < deadline) await sleep(50);
  if (alive()) {
    signal("SIGKILL");
    while (alive() && Date.now() < deadline + 2000) await sleep(50);
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, "utf8").trim().slice(-400) || "(no output)";
  } catch {
    return "(no log)";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
