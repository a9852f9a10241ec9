// A PXE lab for end-to-end tests: a private network namespace with a bridge
// br0, an IPv6 "not a router" advertiser, QEMU VMs on taps, and any helper
// processes a test needs (DHCP server, HTTP listener, the daemon). Nothing
// leaves the namespace. destroy() removes everything by PID and name; it is
// also run on process exit, SIGINT and SIGTERM.
import { execFileSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QEMU_BINARY, qemuArgs, resolveAccel, type QemuAccel, type QemuNic } from "../../../reconciler/power/qemu-command.js";
import { Netns, uniqueSuffix } from "../../lib/netns.js";

export const BRIDGE = "br0";

export interface LabOptions {
  /** Short name part of the namespace (gt-PREFIX-xxxxxx). */
  prefix: string;
  /** Bridge address with prefix length, e.g. "10.61.0.1/24". */
  bridgeAddr: string;
  /** Answer IPv6 router solicitations (default true); saves iPXE ~13 s per boot. */
  routerAdvertisements?: boolean;
  accel?: "auto" | QemuAccel;
}

export interface VmOptions {
  /** 1-11 of [A-Za-z0-9_-]; the tap is tap-NAME. */
  name: string;
  mac: string;
  mem?: number;
  nic?: QemuNic;
  /** Direct kernel boot; without it the VM network-boots (iPXE ROM). */
  kernel?: string;
  initrd?: string;
  append?: string;
}

export interface VmHandle {
  readonly name: string;
  readonly mac: string;
  readonly tap: string;
  readonly pid: number;
  readonly serialLog: string;
  /** QEMU's own stderr (start-up errors). */
  readonly qemuLog: string;
  /** Resolves with QEMU's exit code when it ends (guest power-off); rejects after timeoutMs. */
  waitExit(timeoutMs: number): Promise<number | null>;
  /** Ends QEMU (SIGTERM, then SIGKILL) and removes its tap. */
  stop(): Promise<void>;
  /** The serial log so far. */
  serial(): string;
}

export interface DnsmasqOptions {
  /** "10.61.0.100,10.61.0.150" (start,end[,lease time]). */
  range: string;
  /** Boot filename (e.g. an HTTP URL of an iPXE script) for iPXE clients. */
  bootFile?: string;
  extraArgs?: string[];
}

const liveLabs = new Set<Lab>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on("exit", () => {
    for (const lab of liveLabs) lab.destroySync();
  });
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    process.once(signal, () => {
      for (const lab of liveLabs) lab.destroySync();
      process.exit(code);
    });
  }
}

export class Lab {
  readonly ns: Netns;
  readonly bridge = BRIDGE;
  /** The bridge's IPv4 address without prefix length. */
  readonly bridgeIp: string;
  /** Logs, serial consoles and configs of this lab. */
  readonly stateDir: string;
  readonly accel: QemuAccel;
  private readonly vms = new Map<string, { handle: VmHandle; child: ChildProcess }>();
  private readonly pids = new Set<number>();
  private readonly hosts: Netns[] = [];
  private destroyed = false;

  private constructor(ns: Netns, bridgeIp: string, stateDir: string, accel: QemuAccel) {
    this.ns = ns;
    this.bridgeIp = bridgeIp;
    this.stateDir = stateDir;
    this.accel = accel;
  }

  get name(): string {
    return this.ns.name;
  }

  static async create(opts: LabOptions): Promise<Lab> {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/\d+$/.exec(opts.bridgeAddr);
    if (!m) throw new Error(`Lab: bridgeAddr must look like 10.61.0.1/24, got "${opts.bridgeAddr}"`);
    installExitHooks();
    const ns = Netns.create(opts.prefix);
    const lab = new Lab(ns, m[1], mkdtempSync(join(tmpdir(), `${ns.name}-`)), resolveAccel(opts.accel));
    liveLabs.add(lab);
    try {
      lab.run("ip", ["link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"]);
      lab.run("ip", ["addr", "add", opts.bridgeAddr, "dev", BRIDGE]);
      lab.run("ip", ["link", "set", BRIDGE, "up"]);
      // No default route in the namespace: without this a UDP send to
      // 255.255.255.255 (DHCP replies) fails with ENETUNREACH.
      lab.run("ip", ["route", "add", "broadcast", "255.255.255.255", "dev", BRIDGE, "table", "main"]);
      if (opts.routerAdvertisements !== false) lab.startRouterAdvertiser();
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  /** Runs a command in the namespace and returns its stdout. */
  run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): string {
    return this.ns.run(cmd, args, opts);
  }

  /** Starts a process in the namespace; destroy() ends it by PID. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = this.ns.spawn(cmd, args, opts);
    this.track(child);
    return child;
  }

  private track(child: ChildProcess): void {
    const pid = child.pid;
    if (pid === undefined) return;
    this.pids.add(pid);
    child.once("exit", () => this.pids.delete(pid));
  }

  /**
   * iPXE runs IPv6 router discovery alongside DHCPv4 and waits ~13 s for a
   * router unless one answers. radvd with no prefix and a default lifetime
   * of 0 says "no router here" at once.
   */
  private startRouterAdvertiser(): void {
    // radvd refuses to advertise unless the namespace forwards IPv6.
    this.run("sysctl", ["-q", "-w", "net.ipv6.conf.all.forwarding=1"]);
    const conf = join(this.stateDir, "radvd.conf");
    writeFileSync(
      conf,
      [
        `interface ${BRIDGE} {`,
        "  AdvSendAdvert on;",
        "  IgnoreIfMissing on;",
        "  AdvDefaultLifetime 0;",
        "  MinRtrAdvInterval 3;",
        "  MaxRtrAdvInterval 4;",
        "};",
        "",
      ].join("\n"),
      { mode: 0o644 },
    );
    const log = openSync(join(this.stateDir, "radvd.log"), "a");
    try {
      this.spawn("radvd", ["--nodaemon", "-C", conf, "-p", join(this.stateDir, "radvd.pid"), "-m", "stderr"], {
        stdio: ["ignore", log, log],
      });
    } finally {
      closeSync(log);
    }
  }

  /**
   * dnsmasq as a DHCP-only server on br0 (no DNS, no ping check, no
   * ProxyDHCP wait for iPXE), with its lease and PID files in the lab's
   * state dir. Its log is STATE/dnsmasq.log.
   */
  startDnsmasq(opts: DnsmasqOptions): ChildProcess {
    const args = [
      "--keep-in-foreground",
      "--port=0",
      "--no-resolv",
      "--no-hosts",
      `--interface=${BRIDGE}`,
      "--bind-interfaces",
      "--user=root",
      "--no-ping",
      `--dhcp-range=${opts.range}`,
      `--dhcp-leasefile=${join(this.stateDir, "dnsmasq.leases")}`,
      `--pid-file=${join(this.stateDir, "dnsmasq.pid")}`,
      "--conf-file=/dev/null",
      "--log-dhcp",
      "--log-facility=-",
      // iPXE option 175.176 = 1: do not wait for ProxyDHCP offers.
      "--dhcp-match=set:ipxe,175",
      "--dhcp-option=tag:ipxe,encap:175,176,1b",
    ];
    if (opts.bootFile) args.push(`--dhcp-boot=tag:ipxe,${opts.bootFile}`);
    args.push(...(opts.extraArgs ?? []));
    const log = openSync(join(this.stateDir, "dnsmasq.log"), "a");
    try {
      return this.spawn("dnsmasq", args, { stdio: ["ignore", log, log] });
    } finally {
      closeSync(log);
    }
  }

  /**
   * Another host on the lab's wire: a namespace of its own whose veth is a
   * port of br0, with `addr` (e.g. "10.77.0.240/24"). Tests send from it what
   * an attacker or a relay on the same network would. destroy() removes it.
   */
  attachHost(prefix: string, addr: string): { ns: Netns; ifname: string } {
    const ns = Netns.create(prefix);
    this.hosts.push(ns);
    const sfx = uniqueSuffix();
    const ifname = `gh${sfx}`;
    const port = `gp${sfx}`;
    execFileSync("ip", ["link", "add", port, "netns", this.ns.name, "type", "veth", "peer", "name", ifname, "netns", ns.name]);
    this.run("ip", ["link", "set", port, "master", BRIDGE, "up"]);
    ns.run("ip", ["addr", "add", addr, "dev", ifname]);
    ns.run("ip", ["link", "set", ifname, "up"]);
    return { ns, ifname };
  }

  async startVm(opts: VmOptions): Promise<VmHandle> {
    if (!/^[A-Za-z0-9_-]{1,11}$/.test(opts.name)) {
      throw new Error(`Lab.startVm: name must be 1-11 of [A-Za-z0-9_-] (tap-NAME is at most 15 characters), got "${opts.name}"`);
    }
    if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(opts.mac)) throw new Error(`Lab.startVm: bad MAC "${opts.mac}"`);
    if (this.vms.has(opts.name)) throw new Error(`Lab.startVm: a VM named ${opts.name} was already started in this lab`);
    const tap = `tap-${opts.name}`;
    const serialLog = join(this.stateDir, `${opts.name}.serial.log`);
    const qemuLog = join(this.stateDir, `${opts.name}.qemu.log`);
    this.run("ip", ["tuntap", "add", "dev", tap, "mode", "tap"]);
    this.run("ip", ["link", "set", tap, "master", BRIDGE, "up"]);
    const args = qemuArgs({
      name: opts.name,
      accel: this.accel,
      memoryMB: opts.mem ?? 256,
      nic: opts.nic ?? "virtio",
      tap,
      mac: opts.mac,
      serialLog,
      kernel: opts.kernel,
      initrd: opts.initrd,
      append: opts.append,
    });
    writeFileSync(join(this.stateDir, `${opts.name}.cmdline`), [QEMU_BINARY, ...args].join(" ") + "\n");
    const log = openSync(qemuLog, "a");
    let child: ChildProcess;
    try {
      // `ip netns exec` execs QEMU, so the child's PID is QEMU's.
      child = this.spawn(QEMU_BINARY, args, { stdio: ["ignore", log, log] });
    } finally {
      closeSync(log);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`Lab.startVm: could not start ${QEMU_BINARY}`);
    const exited = new Promise<number | null>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
      else child.once("exit", (code) => resolve(code));
    });
    const lab = this;
    const handle: VmHandle = {
      name: opts.name,
      mac: opts.mac,
      tap,
      pid,
      serialLog,
      qemuLog,
      serial: () => readText(serialLog),
      async waitExit(timeoutMs: number) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`VM ${opts.name} still running after ${timeoutMs} ms; serial log ${serialLog}`)),
            timeoutMs,
          );
        });
        try {
          return await Promise.race([exited, timeout]);
        } finally {
          clearTimeout(timer);
        }
      },
      async stop() {
        await endProcess(pid, () => child.exitCode !== null || child.signalCode !== null);
        try {
          lab.run("ip", ["link", "del", tap]);
        } catch {
          /* already gone with the namespace */
        }
      },
    };
    this.vms.set(opts.name, { handle, child });
    // QEMU fails fast on bad arguments or a busy tap: report that here.
    const early = await Promise.race([exited.then(() => true), sleep(300).then(() => false)]);
    if (early) {
      throw new Error(`Lab.startVm: QEMU for ${opts.name} exited at once: ${readText(qemuLog).trim().slice(-500)}`);
    }
    return handle;
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    for (const { handle } of this.vms.values()) await handle.stop();
    for (const host of this.hosts) await host.destroy();
    await this.ns.destroy(); // ends spawned processes (SIGTERM, then SIGKILL) and deletes the namespace
    this.finish();
  }

  /** Synchronous cleanup for process exit and signals: SIGKILL by PID, delete the namespace. */
  destroySync(): void {
    if (this.destroyed) return;
    for (const name of [...this.hosts.map((h) => h.name), this.ns.name]) {
      try {
        const pids = execFileSync("ip", ["netns", "pids", name], { encoding: "utf8" }).split(/\s+/).filter(Boolean);
        for (const pid of pids) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {
            /* gone */
          }
        }
        execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
      } catch {
        /* already gone */
      }
    }
    for (const pid of this.pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    this.finish();
  }

  private finish(): void {
    this.destroyed = true;
    liveLabs.delete(this);
    if (process.env.GITRACK_E2E_KEEP !== "1") rmSync(this.stateDir, { recursive: true, force: true });
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return "";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function endProcess(pid: number, gone: () => boolean): Promise<void> {
  if (gone()) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + 5000;
  while (!gone() && Date.now() < deadline) await sleep(50);
  if (!gone()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
    while (!gone() && Date.now() < deadline + 2000) await sleep(50);
  }
}

/** True when this process may create namespaces and QEMU is installed. */
export function canRunLab(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync("which", [QEMU_BINARY], { stdio: "ignore" });
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
