// Network namespaces for integration tests: a "server" namespace and a
// "client" namespace joined by a veth pair (or a bridge with taps for VMs).
// Everything made here is recorded and removed by destroy(), which tests call
// from afterAll / finally so that a failing test leaves nothing behind.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";

export function canUseNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function ip(args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** A short unique suffix: interface names are limited to 15 characters. */
export function uniqueSuffix(): string {
  return randomBytes(3).toString("hex");
}

/**
 * Namespaces made by this process and not yet destroyed. A process that ends
 * without destroy() (an uncaught exception, EPIPE when the bench is piped to
 * `head`, process.exit) removes them on its way out.
 */
const live = new Set<Netns>();
let exitHook = false;

export class Netns {
  readonly name: string;
  private readonly children = new Set<ChildProcess>();

  private constructor(name: string) {
    this.name = name;
  }

  static create(prefix: string): Netns {
    const name = `gt-${prefix}-${uniqueSuffix()}`;
    ip(["netns", "add", name]);
    const ns = new Netns(name);
    live.add(ns);
    if (!exitHook) {
      exitHook = true;
      process.once("exit", () => {
        for (const n of live) n.removeNow();
      });
    }
    ns.run("ip", ["link", "set", "lo", "up"]);
    return ns;
  }

  /** Runs a command inside the namespace and returns its stdout. */
  run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): string {
    return execFileSync("ip", ["netns", "exec", this.name, cmd, ...args], {
      encoding: "utf8",
      timeout: opts.timeoutMs ?? 30_000,
      input: opts.input,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
  }

  /** Starts a long-running process inside the namespace; destroy() ends it by PID. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn("ip", ["netns", "exec", this.name, cmd, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      ...opts,
    });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }

  async destroy(): Promise<void> {
    for (const child of this.children) {
      if (child.exitCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGTERM");
        } catch {
          /* already gone */
        }
      }
    }
    const deadline = Date.now() + 3000;
    while ([...this.children].some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    this.removeNow();
  }

  /**
   * At once and synchronously (it also runs from the exit hook): SIGKILL to
   * what was started here and to whatever else runs in the namespace, then
   * the namespace is deleted.
   */
  removeNow(): void {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
    }
    // Processes started with `ip netns exec` and forked away (daemonized
    // clients) still hold the namespace; list them by namespace and end them.
    try {
      const pids = ip(["netns", "pids", this.name]).split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          /* gone */
        }
      }
    } catch {
      /* namespace already gone */
    }
    try {
      ip(["netns", "del", this.name]);
    } catch {
      /* already gone */
    }
    live.delete(this);
  }
}

/**
 * Two namespaces joined by a veth pair: `server` gets serverAddr, `client`
 * gets clientAddr (or none, for DHCP clients). Both ends are up. The server
 * side also gets a limited-broadcast route, because a namespace has no
 * default route and Node's dgram cannot bind to a device (DEPENDENCIES.md).
 * With `serverBridge`, the server's end is a port of a bridge of that name
 * that holds serverAddr (as in the lab), and `serverIf` is the bridge.
 */
export interface VethPair {
  server: Netns;
  client: Netns;
  serverIf: string;
  clientIf: string;
  destroy(): Promise<void>;
}

export function createVethPair(
  prefix: string,
  opts: { serverAddr: string; clientAddr?: string; serverBridge?: string },
): VethPair {
  const server = Netns.create(`${prefix}s`);
  let client: Netns | undefined;
  try {
    client = Netns.create(`${prefix}c`);
    const sfx = uniqueSuffix();
    const serverEnd = `gs${sfx}`;
    const clientIf = `gc${sfx}`;
    ip(["link", "add", serverEnd, "netns", server.name, "type", "veth", "peer", "name", clientIf, "netns", client.name]);
    const serverIf = opts.serverBridge ?? serverEnd;
    if (opts.serverBridge) {
      server.run("ip", ["link", "add", opts.serverBridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"]);
      server.run("ip", ["link", "set", serverEnd, "master", opts.serverBridge, "up"]);
    }
    server.run("ip", ["addr", "add", opts.serverAddr, "dev", serverIf]);
    server.run("ip", ["link", "set", serverIf, "up"]);
    server.run("ip", ["route", "add", "broadcast", "255.255.255.255", "dev", serverIf, "table", "main"]);
    if (opts.clientAddr) client.run("ip", ["addr", "add", opts.clientAddr, "dev", clientIf]);
    client.run("ip", ["link", "set", clientIf, "up"]);
    const c = client;
    return {
      server,
      client: c,
      serverIf,
      clientIf,
      async destroy() {
        await c.destroy();
        await server.destroy();
      },
    };
  } catch (err) {
    void client?.destroy();
    void server.destroy();
    throw err;
  }
}
