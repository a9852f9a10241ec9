// A site under attack: `gitrack serve` as a real process in a server
// namespace, a client namespace on the same wire from which floods and fuzz
// are sent, and one check, expectStillServing(), that every hardening test
// runs after its attack: the daemon is alive and logged no uncaught error,
// a valid client of each service is answered within a second, memory came
// back near its level before, and the lease journal is consistent.
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createVethPair, type VethPair } from "../lib/netns.js";
import { parseJsonLines } from "../lib/json-log.js";
import { bootEnvDoc, commitFiles, git, startDaemon, tempDir, waitFor, type DaemonProcess } from "../daemon/harness.js";

const run = promisify(execFile);

export const SERVER = "10.79.0.1";
export const CLIENT = "10.79.0.250";
/** A second address in the client namespace, for attackers: per-source bounds must not refuse CLIENT's checks. */
export const ATTACKER = "10.79.0.251";
/** A relay's address in the client namespace; its subnet 10.80.0.0/16 is declared relayed. */
export const RELAY = "10.80.0.2";
export const KNOWN = { name: "node01", mac: "52:54:00:79:00:01", ip: "10.79.0.11" } as const;
export const HTTP_PORT = 8080;

export interface AttackSite {
  pair: VethPair;
  work: { path: string; remove(): void };
  repo: string;
  stateDir: string;
  tftpRoot: string;
  daemon: DaemonProcess;
  /** http://10.79.0.1:8080 */
  base: string;
  /** Commits files (path → content, null deletes) to the tracked branch; returns the commit. */
  commit(files: Record<string, string | null>, message: string): string;
  /** SIGTERM, start again (with these extra serve flags, else the ones it had), wait until serving. */
  restart(extraArgs?: string[]): Promise<void>;
  /** SIGTERM the daemon, destroy the namespaces, remove the temp dir. */
  close(): Promise<void>;
}

export interface AttackSiteOptions {
  /** Extra `gitrack serve` flags. */
  args?: string[];
  env?: Record<string, string>;
  /** Rewrites the Site document before the first commit. */
  siteYaml?: (yaml: string) => string;
  /** More files for the first commit (path → content). */
  files?: Record<string, string>;
  /**
   * The checkout whose daemon runs (the bench's --before). By default
   * $GITRACK_ATTACK_ROOT, else this one: pointing that at a built checkout of
   * an older commit runs these tests against its daemon.
   */
  root?: string;
}

export function siteYaml(): string {
  return `apiVersion: gitrack/v1
kind: Site
metadata:
  name: lab
spec:
  params:
    timezone: UTC
  subnets:
    - name: prov
      cidr: 10.79.0.0/24
      gateway: ${SERVER}
      dns: [${SERVER}]
      dhcp: serve
      range: {start: 10.79.0.200, end: 10.79.0.249}
      leaseSeconds: 3600
    - name: relayed
      cidr: 10.80.0.0/16
      gateway: ${RELAY}
      dhcp: serve
      relayed: true
      range: {start: 10.80.1.1, end: 10.80.1.250}
      leaseSeconds: 3600
  boot:
    advertise: ${SERVER}
    httpPort: ${HTTP_PORT}
    unknownBootEnv: discovery
  rollout:
    maxUnavailable: 2
`;
}

function knownMachine(): string {
  return `apiVersion: gitrack/v1
kind: Machine
metadata:
  name: ${KNOWN.name}
spec:
  site: lab
  interfaces:
    - mac: "${KNOWN.mac}"
      ip: ${KNOWN.ip}
  bootEnv: test-install
  intent: provisioned
  generation: 1
  power:
    driver: manual
`;
}

/** A site repository with one known machine, served by a daemon on the wire of a client namespace. */
export async function startAttackSite(prefix: string, opts: AttackSiteOptions = {}): Promise<AttackSite> {
  const work = tempDir(`hard-${prefix}`);
  const repo = join(work.path, "repo");
  const stateDir = join(work.path, "state");
  const tftpRoot = join(work.path, "tftp");
  mkdirSync(repo);
  mkdirSync(tftpRoot);
  const ipxe = "/usr/lib/ipxe/undionly.kpxe";
  writeFileSync(join(tftpRoot, "undionly.kpxe"), existsSync(ipxe) ? readFileSync(ipxe) : randomBytes(70_000));
  writeFileSync(join(tftpRoot, "big.bin"), randomBytes(16 * 1024 * 1024));
  const artifact = (name: string, size: number) => {
    const bytes = randomBytes(size);
    const path = join(work.path, name);
    writeFileSync(path, bytes);
    return { path, sha256: createHash("sha256").update(bytes).digest("hex") };
  };
  const kernel = artifact("vmlinuz", 200_000);
  const initrd = artifact("initrd.img", 100_000);

  git(repo, ["init", "-q", "-b", "main"]);
  const site = opts.siteYaml ? opts.siteYaml(siteYaml()) : siteYaml();
  commitFiles(
    repo,
    {
      "sites/lab.yaml": site,
      "bootenvs/test.yaml": bootEnvDoc("test-install", kernel, initrd),
      "machines/node01.yaml": knownMachine(),
      ...(opts.files ?? {}),
    },
    "a site under attack",
  );

  let pair: VethPair | undefined;
  let daemon: DaemonProcess | undefined;
  let starts = 0;
  let args = opts.args ?? [];
  const start = async () => {
    daemon = startDaemon(
      pair!.server,
      ["--repo", repo, "--site", "lab", "--state-dir", stateDir, "--listen", SERVER, "--http-port", String(HTTP_PORT), "--tftp-root", tftpRoot, "--status-interval", "1", ...args],
      join(work.path, `daemon-${++starts}.log`),
      opts.env,
      opts.root ?? (process.env.GITRACK_ATTACK_ROOT || undefined),
    );
    await daemon.ready();
  };
  try {
    pair = createVethPair("ha", { serverAddr: `${SERVER}/24`, clientAddr: `${CLIENT}/24` });
    // The relayed network: the client namespace plays its relay.
    pair.server.run("ip", ["addr", "add", "10.80.0.1/16", "dev", pair.serverIf]);
    pair.client.run("ip", ["addr", "add", `${RELAY}/16`, "dev", pair.clientIf]);
    pair.client.run("ip", ["addr", "add", `${ATTACKER}/24`, "dev", pair.clientIf]);
    await start();
  } catch (err) {
    await daemon?.kill("SIGKILL");
    await pair?.destroy();
    work.remove();
    throw err;
  }
  const site_: AttackSite = {
    pair: pair!,
    work,
    repo,
    stateDir,
    tftpRoot,
    get daemon() {
      return daemon!;
    },
    base: `http://${SERVER}:${HTTP_PORT}`,
    commit: (files, message) => commitFiles(repo, files, message),
    async restart(extraArgs?: string[]) {
      await daemon?.kill("SIGTERM");
      if (extraArgs) args = extraArgs;
      await start();
    },
    async close() {
      await daemon?.kill("SIGTERM");
      await pair?.destroy();
      work.remove();
    },
  };
  return site_;
}

/**
 * Runs an attack script of this folder (`tftp-flood.ts ATTACK ...`) with
 * Node in the client namespace and returns the JSON line it printed.
 */
export async function attackFromClient<T = unknown>(site: AttackSite, script: string, args: string[], timeoutMs = 120_000): Promise<T> {
  const here = dirname(fileURLToPath(import.meta.url));
  const { stdout } = await run("ip", ["netns", "exec", site.pair.client.name, process.execPath, "--import", "tsx", join(here, script), ...args], {
    cwd: join(here, "../.."),
    timeout: timeoutMs,
    maxBuffer: 16 * 1024 * 1024,
  });
  const last = stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(last) as T;
}

// --- the check after an attack --------------------------------------------------

export interface Baseline {
  rssKiB: number;
}

export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** Log lines that say the process met an error nobody handled. */
export function fatalLines(site: AttackSite): Array<Record<string, unknown>> {
  return parseJsonLines(site.daemon.log()).filter((l) => {
    const msg = String(l.msg ?? "");
    return Number(l.level) >= 60 || /uncaught|unhandled/i.test(msg);
  });
}

/** The RSS after one exchange with each service (so lazily loaded code is counted). */
export async function takeBaseline(site: AttackSite): Promise<Baseline> {
  await dhcpServed(site);
  await tftpServed(site);
  await httpServed(site);
  return { rssKiB: rssKiB(site.daemon.child.pid!) };
}

/** A known machine's DORA with busybox udhcpc: one DISCOVER, 1 s for each answer. */
function dhcpServed(site: AttackSite): Promise<Record<string, string> | null> {
  return udhcpcLease(site, KNOWN.mac, "gtk0");
}

/**
 * busybox udhcpc's DORA for `mac` on a macvlan `ifname` of the client's
 * veth (created on first use): `tries` DISCOVERs, 1 s for each answer. The
 * variables its script saw on "bound" (ip, subnet, router...), or null.
 */
export async function udhcpcLease(site: AttackSite, mac: string, ifname: string, tries = 1): Promise<Record<string, string> | null> {
  const { pair, work } = site;
  const out = join(work.path, `udhcpc-${process.hrtime.bigint()}.env`);
  const script = join(work.path, "udhcpc-check.sh");
  if (!existsSync(script)) writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && env > "$GT_OUT"\nexit 0\n`, { mode: 0o755 });
  // udhcpc uses the interface's MAC: a macvlan of its own with that MAC,
  // so the client namespace's main interface keeps its address.
  const exists = await run("ip", ["netns", "exec", pair.client.name, "ip", "link", "show", ifname]).then(
    () => true,
    () => false,
  );
  if (!exists) {
    // A macvlan on the client's veth: same wire, its own MAC.
    await run("ip", ["netns", "exec", pair.client.name, "ip", "link", "add", ifname, "link", pair.clientIf, "address", mac, "type", "macvlan", "mode", "bridge"]);
    await run("ip", ["netns", "exec", pair.client.name, "ip", "link", "set", ifname, "up"]);
  }
  try {
    await run("ip", ["netns", "exec", pair.client.name, "env", "-i", `GT_OUT=${out}`, "busybox", "udhcpc", "-i", ifname, "-n", "-q", "-f", "-t", String(tries), "-T", "1", "-A", "1", "-s", script], {
      timeout: 4000 + tries * 2000,
    });
  } catch {
    return null;
  }
  if (!existsSync(out)) return null;
  const vars: Record<string, string> = {};
  for (const line of readFileSync(out, "utf8").split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return vars;
}

/** undionly.kpxe from the TFTP root with tftp-hpa, ended after 1 s. */
export async function tftpServed(site: AttackSite): Promise<boolean> {
  const out = join(site.work.path, `tftp-${process.hrtime.bigint()}.out`);
  try {
    await run("ip", ["netns", "exec", site.pair.client.name, "tftp", SERVER, "69", "-m", "binary", "-c", "get", "undionly.kpxe", out], { timeout: 1000 });
  } catch {
    return false;
  }
  return existsSync(out) && readFileSync(out).equals(readFileSync(join(site.tftpRoot, "undionly.kpxe")));
}

/** /healthz with curl, 1 s at most. */
/** What `/healthz` says about commits (reconciler/daemon/daemon.ts health()). */
export interface Health {
  ok: boolean;
  commit: string | null;
  lastSeenCommit: string | null;
  lastRejected?: { commit: string };
  lastFailed?: { commit: string };
}

/** `/healthz` from the client namespace with curl (1 s), or undefined without an answer. */
export async function httpServed(site: AttackSite): Promise<Health | undefined> {
  try {
    const { stdout } = await run("ip", ["netns", "exec", site.pair.client.name, "curl", "-sS", "--max-time", "1", `${site.base}/healthz`]);
    return JSON.parse(stdout) as Health;
  } catch {
    return undefined;
  }
}

/** The daemon's git note on `commit`, or undefined while there is none. */
export function noteOf(site: AttackSite, commit: string): string | undefined {
  try {
    return git(site.repo, ["notes", "--ref=gitrack/lab", "show", commit]);
  } catch {
    return undefined;
  }
}

async function within2Tries<T>(probe: () => Promise<T>): Promise<T> {
  const first = await probe();
  if (first) return first;
  return probe();
}

/**
 * Throws unless the site is still served after an attack: the daemon runs and
 * logged no uncaught exception or unhandled rejection; the known MAC gets its
 * lease, a small file comes over TFTP and /healthz over HTTP, each within a
 * 1 s client timeout (two tries, since one datagram may be lost on any wire);
 * RSS comes back within `rssSlackMiB` of the baseline (polled for up to
 * 20 s: the heap shrinks after a collection, not at once); and the lease
 * journal holds every address once and every MAC once.
 */
export async function expectStillServing(
  site: AttackSite,
  baseline: Baseline,
  opts: { dhcp?: boolean; tftp?: boolean; http?: boolean; rssSlackMiB?: number } = {},
): Promise<void> {
  const problems: string[] = [];
  if (!site.daemon.running) throw new Error(`the daemon is not running:\n${site.daemon.log().slice(-3000)}`);
  const fatal = fatalLines(site);
  if (fatal.length) problems.push(`the daemon logged ${fatal.length} fatal line(s), first: ${JSON.stringify(fatal[0])}`);
  if (opts.http !== false) {
    const h = await within2Tries(() => httpServed(site));
    if (!h) problems.push("GET /healthz got no answer within 1 s (two tries)");
  }
  if (opts.dhcp !== false) {
    const l = await within2Tries(() => dhcpServed(site));
    if (!l) problems.push(`the known MAC ${KNOWN.mac} got no lease within 1 s per answer (two tries)`);
    else if (l.ip !== KNOWN.ip) problems.push(`the known MAC got ${l.ip}, not its reservation ${KNOWN.ip}`);
  }
  if (opts.tftp !== false) {
    if (!(await within2Tries(() => tftpServed(site)))) problems.push("undionly.kpxe did not come over TFTP within 1 s (two tries)");
  }
  const slack = (opts.rssSlackMiB ?? 64) * 1024;
  let rss = 0;
  try {
    await waitFor(
      "the daemon's memory to come back near its level before",
      () => {
        rss = rssKiB(site.daemon.child.pid!);
        return rss <= baseline.rssKiB + slack;
      },
      20_000,
      500,
    );
  } catch {
    problems.push(`RSS is ${Math.round(rss / 1024)} MiB, baseline ${Math.round(baseline.rssKiB / 1024)} MiB (slack ${slack / 1024} MiB)`);
  }
  problems.push(...leaseJournalProblems(site.stateDir));
  if (problems.length) throw new Error(`the site is not served as before the attack:\n- ${problems.join("\n- ")}\n--- log tail ---\n${site.daemon.log().slice(-3000)}`);
}

export interface LeaseRecordOnDisk {
  mac: string;
  state: string;
  expiresAt: number;
}

/**
 * The DHCP lease store as the daemon left it on disk: the snapshot, then the
 * journal replayed over it (as JournalStore.open does). `problems` names
 * journal lines that are not records (a torn last line is what a crash
 * leaves and is not one).
 */
export function leaseRecords(stateDir: string): { leases: Map<string, LeaseRecordOnDisk>; problems: string[] } {
  const dir = join(stateDir, "dhcp");
  const leases = new Map<string, LeaseRecordOnDisk>();
  const problems: string[] = [];
  const snap = join(dir, "dhcp-leases.snapshot.json");
  if (existsSync(snap)) {
    const s = JSON.parse(readFileSync(snap, "utf8")) as { entries: Array<[string, LeaseRecordOnDisk]> };
    for (const [k, v] of s.entries) leases.set(k, v);
  }
  const journal = join(dir, "dhcp-leases.journal.ndjson");
  if (existsSync(journal)) {
    const lines = readFileSync(journal, "utf8").split("\n");
    lines.forEach((line, i) => {
      if (!line) return;
      let r: { k: string; v?: LeaseRecordOnDisk; d?: 1 };
      try {
        r = JSON.parse(line);
      } catch {
        if (i < lines.length - 1) problems.push(`lease journal line ${i + 1} is not a record`);
        return;
      }
      if (r.d) leases.delete(r.k);
      else if (r.v) leases.set(r.k, r.v);
    });
  }
  return { leases, problems };
}

/** [] when the lease store on disk is whole and no MAC holds two live addresses (each address has one record by construction); otherwise what is wrong. */
export function leaseJournalProblems(stateDir: string): string[] {
  const { leases, problems } = leaseRecords(stateDir);
  const now = Date.now();
  const byMac = new Map<string, string>();
  for (const [ip, rec] of leases) {
    if (rec.state !== "bound" || rec.expiresAt <= now) continue;
    const other = byMac.get(rec.mac);
    if (other) problems.push(`MAC ${rec.mac} holds two live leases: ${other} and ${ip}`);
    byMac.set(rec.mac, ip);
  }
  return problems;
}

/** The names of the files in the state dir's dhcp folder (for tests that look at what the journal became). */
export function dhcpStateFiles(stateDir: string): string[] {
  const dir = join(stateDir, "dhcp");
  return existsSync(dir) ? readdirSync(dir) : [];
}
