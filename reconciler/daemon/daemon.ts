// The site daemon: follows the tracked branch, keeps the last good commit
// serving, drives DHCP/TFTP/HTTP and power from it, follows machines through
// their boot, and writes what it saw back into Git (status branch, notes,
// discovered branch).
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import type { FastifyInstance } from "fastify";
import { GitRepo } from "../source/git.js";
import { RemoteSource, verifyWebhookSignature, watchLocalBranch, type LocalBranchWatch } from "../source/watch.js";
import { DiscoveredBranchWriter, NotesWriter, StatusBranchWriter } from "../status/index.js";
import { pushStatus } from "../status/push.js";
import { discoveredRef, notesRef, statusRef } from "../status/refs.js";
import { JournalStore } from "../store/journal.js";
import { DhcpServer, type ClientSeenEvent, type DhcpConfig } from "../services/dhcp/server.js";
import { TftpServer } from "../services/tftp/server.js";
import { defaultIpxeRoot } from "../services/tftp/root.js";
import { ArtifactCache, type ArtifactRef } from "../services/http/artifacts.js";
import { buildHttpServer, type Answer, type HttpBackend } from "../services/http/server.js";
import { createPowerDrivers, powerDriverFor, type PowerDriver, type PowerTarget } from "../power/index.js";
import { advanceModel, loadModel } from "../model/load.js";
import type { Model, ResolvedMachine } from "../model/model.js";
import { formatDiagnostic } from "../model/diagnostics.js";
import { planChange } from "../model/plan.js";
import { renderContext, siteBaseUrl, unknownMachineOf } from "../model/render.js";
import { baseUrl, bootScriptUrl } from "../model/urls.js";
import type { BootEnvInfo } from "../model/bootenv.js";
import { renderBootScript, renderFile } from "../../renderers/bootscript.js";
import { TemplateError } from "../../renderers/engine.js";
import type { SubnetSpec } from "../../schemas/site.js";
import { isRemoteUrl, type ServeConfig } from "./config.js";
import { TokenIssuer, apiToken } from "./tokens.js";
import { mayReadBootScript, plainAddress } from "./script-access.js";
import {
  bootTarget,
  initialObserved,
  needsInstall,
  now,
  onDesired,
  onDhcpSeen,
  onEvent,
  onFileServed,
  onScriptServed,
  powerActionFor,
  timedOut,
  type MachineEventPhase,
  type MachineObserved,
} from "./lifecycle.js";
import { machineStatusFile, siteStatusFile, noteText, type SiteRecord } from "./status-files.js";
import { IntervalLog } from "../services/interval-log.js";
import { DISCOVERY_LIMITS, discoveredMachineFile, discoveryInventory, type DiscoveredRecord } from "./discovery.js";
import { metricsText } from "./metrics.js";

const EVENT_PHASES = new Set<MachineEventPhase>(["Installing", "Installed", "Ready", "Failed"]);

export class Daemon implements HttpBackend {
  readonly cacheDir: string;
  private repo!: GitRepo;
  private remote?: RemoteSource;
  private watch?: LocalBranchWatch;
  private observed!: JournalStore<MachineObserved>;
  private discoveredStore!: JournalStore<DiscoveredRecord>;
  private siteStore!: JournalStore<SiteRecord>;
  private dhcp?: DhcpServer;
  private tftp?: TftpServer;
  private http?: FastifyInstance;
  private statusWriter!: StatusBranchWriter;
  private notes!: NotesWriter;
  private discoveredWriter!: DiscoveredBranchWriter;
  private readonly tokens: TokenIssuer;
  private readonly apiToken: string;
  private readonly cache: ArtifactCache;
  private readonly power: Map<string, PowerDriver>;

  /** The last commit that was valid: what is being served. */
  private good?: { commit: string; model: Model; machines: Map<string, ResolvedMachine>; byMac: Map<string, ResolvedMachine> };
  /** The last commit loaded, valid or not (the base of incremental loads). */
  private last?: { commit: string; model: Model };
  /** The branch head last taken up, read or not (`last` is only what loaded). */
  private seenCommit?: string;
  private queue: Promise<void> = Promise.resolve();
  private pendingCommit?: string;
  private timers: NodeJS.Timeout[] = [];
  private powerInflight = new Set<string>();
  private pushTimer?: NodeJS.Timeout;
  private pushing: Promise<void> = Promise.resolve();
  private stopped = false;
  readonly counters = { commitsApplied: 0, commitsRejected: 0, commitsFailed: 0, powerActions: 0, powerErrors: 0, events: 0, scripts: 0, scriptsRefused: 0, files: 0, authFailures: 0 };

  private constructor(
    readonly cfg: ServeConfig,
    readonly log: Logger,
  ) {
    mkdirSync(cfg.stateDir, { recursive: true });
    this.cacheDir = join(cfg.stateDir, "cache");
    this.cache = new ArtifactCache(this.cacheDir);
    this.tokens = TokenIssuer.fromStateDir(cfg.stateDir);
    const api = apiToken(cfg.stateDir, cfg.apiToken);
    this.apiToken = api.token;
    if (api.path) log.info({ path: api.path }, "API bearer token is in this file");
    this.power = createPowerDrivers({ stateDir: cfg.stateDir, logger: log.child({ component: "power" }) });
    this.refusals = new IntervalLog(log);
  }

  /** Refusals a flood would repeat (discovery past its bounds), logged once per interval. */
  private readonly refusals: IntervalLog;

  static async start(cfg: ServeConfig, log: Logger): Promise<Daemon> {
    const d = new Daemon({ ...cfg, stateDir: resolve(cfg.stateDir) }, log);
    try {
      await d.open();
    } catch (err) {
      await d.stop().catch(() => undefined);
      throw err;
    }
    return d;
  }

  private async open(): Promise<void> {
    const cfg = this.cfg;
    const dir = join(cfg.stateDir, "state");
    const warn = (message: string) => this.log.warn({ message }, "state store repaired on open");
    this.observed = await JournalStore.open<MachineObserved>(dir, `machines-${cfg.site}`, { onWarning: warn });
    this.discoveredStore = await JournalStore.open<DiscoveredRecord>(dir, `discovered-${cfg.site}`, { onWarning: warn });
    this.siteStore = await JournalStore.open<SiteRecord>(dir, `site-${cfg.site}`, { onWarning: warn });

    if (isRemoteUrl(cfg.repo)) {
      this.remote = new RemoteSource({
        url: cfg.repo,
        branch: cfg.branch,
        stateDir: cfg.stateDir,
        intervalMs: cfg.fetchIntervalSec * 1000,
        onCommit: (c) => this.enqueue(c),
        onError: (err) => this.log.warn({ err: String(err) }, "fetch failed; serving the last good commit"),
      });
      this.repo = this.remote.repo;
    } else {
      this.repo = new GitRepo(resolve(cfg.repo));
      await this.repo.gitDir().catch(() => {
        throw new Error(`${cfg.repo} is not a Git repository`);
      });
    }
    this.statusWriter = new StatusBranchWriter(this.repo, cfg.site, {
      minIntervalMs: cfg.statusIntervalSec * 1000,
      onError: (err) => this.log.warn({ err: String(err) }, "status write failed; retrying"),
    });
    this.notes = new NotesWriter(this.repo, cfg.site);
    this.discoveredWriter = new DiscoveredBranchWriter(this.repo, cfg.site);

    await this.recoverPowerActions();

    if (cfg.dhcp) {
      this.dhcp = new DhcpServer({
        stateDir: join(cfg.stateDir, "dhcp"),
        port: cfg.dhcpPort,
        proxyPort: cfg.proxyDhcpPort,
        logger: this.log.child({ component: "dhcp" }),
        onClientSeen: (e) => this.onClientSeen(e),
      });
    }
    if (cfg.tftp) {
      const root = cfg.tftpRoot ?? defaultIpxeRoot();
      if (!root) throw new Error("no TFTP root: install Debian's ipxe package or pass --tftp-root (or --no-tftp)");
      this.tftp = new TftpServer({
        root: cfg.tftpRoot,
        port: cfg.tftpPort,
        bindAddress: cfg.listen,
        busyPollUs: cfg.tftpBusyPollUs,
        logger: this.log.child({ component: "tftp" }),
      });
    }
    this.http = await buildHttpServer(this, { apiToken: this.apiToken, logger: this.log.child({ component: "http" }, { level: "warn" }) });

    // Load the first commit before answering anything, so that a restart
    // serves the same state it served before.
    if (this.remote) {
      const c = await this.remote.start();
      if (c) this.enqueue(c);
    } else {
      this.watch = await watchLocalBranch(this.repo.path, cfg.branch, (c) => this.enqueue(c), {
        onError: (err) => this.log.warn({ err: String(err) }, "watching the repository failed"),
      });
    }
    await this.queue;
    if (!this.good) await this.restoreLastGood();
    if (!this.good) this.log.warn({ branch: cfg.branch }, "no valid commit yet: serving nothing until one lands");
    await this.dhcp?.start();
    await this.tftp?.start();
    await this.http.listen({ host: cfg.listen, port: cfg.httpPort });
    this.timers.push(setInterval(() => this.checkTimeouts(), 5000));
    this.timers.push(setInterval(() => this.resync(), 60_000));
    // Status commits add objects to the repository; let git pack them as it
    // does after its own commits (a no-op until there are enough).
    this.timers.push(setInterval(() => void this.repo.run(["gc", "--auto", "--quiet"]).catch((err) => this.log.warn({ err: String(err) }, "git gc --auto failed")), 600_000));
    this.log.info({ site: cfg.site, http: cfg.httpPort, dhcp: cfg.dhcp ? cfg.dhcpPort : "off", tftp: cfg.tftp ? cfg.tftpPort : "off", commit: this.good?.commit }, "gitrack serving");
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.pushTimer);
    await this.watch?.close();
    await this.remote?.close();
    await this.queue.catch(() => undefined);
    await this.http?.close();
    await this.dhcp?.stop();
    await this.tftp?.stop();
    await this.statusWriter?.flush().catch(() => undefined);
    await this.statusWriter?.close().catch(() => undefined);
    if (this.remote) await this.pushRefs().catch(() => undefined);
    await this.observed?.close();
    await this.discoveredStore?.close();
    await this.siteStore?.close();
    await this.repo?.close();
  }

  /** The HTTP port actually bound (tests pass 0). */
  httpAddress(): { port: number } {
    const a = this.http?.server.address();
    return { port: typeof a === "object" && a ? a.port : this.cfg.httpPort };
  }

  // --- commits ---------------------------------------------------------------

  private enqueue(commit: string): void {
    this.pendingCommit = commit;
    this.queue = this.queue.then(async () => {
      const c = this.pendingCommit;
      if (!c || c === this.last?.commit) return;
      this.pendingCommit = undefined;
      this.seenCommit = c;
      try {
        await this.reconcileCommit(c);
      } catch (err) {
        this.log.error({ commit: c, err: err instanceof Error ? err.message : String(err) }, "reconciling a commit failed");
      }
    });
  }

  /**
   * Loads, checks and applies one commit. Whatever throws on the way (a bug,
   * memory, the disk) is recorded like a rejection: a note saying it failed
   * and why, `lastFailed` on the site, and the commit served before keeps
   * serving (health names it, and the failed one).
   */
  private async reconcileCommit(commit: string): Promise<void> {
    const started = Date.now();
    const before = this.good;
    let applying = false;
    try {
      await this.reconcileCommitOnce(commit, started, () => (applying = true));
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      this.counters.commitsFailed++;
      // Actions not yet begun: the commit before is served again, as it was.
      if (!applying && this.good !== before) {
        this.good = before;
        if (before) {
          this.dhcp?.setConfig(this.dhcpConfig(before.model));
          this.cache.setSources(this.artifactRefs(before.model));
        }
      }
      this.log.error({ commit, err: error, serving: this.good?.commit ?? null }, "reconciling a commit failed; the last good commit keeps serving");
      await this.recordFailure(commit, started, error).catch((e: unknown) =>
        this.log.error({ commit, err: e instanceof Error ? e.message : String(e) }, "recording a failed commit failed"),
      );
    }
  }

  private async recordFailure(commit: string, started: number, error: string): Promise<void> {
    await this.siteStore.put("site", { ...(this.siteStore.get("site") ?? {}), lastFailed: { commit, at: now(), error } });
    await this.notes.setNote(commit, noteText({ outcome: "failed", site: this.cfg.site, commit, errors: [`reconciling the commit failed: ${error}`], startedAt: started, actions: {} }));
    this.scheduleStatus();
    await this.pushRefs();
  }

  private async reconcileCommitOnce(commit: string, started: number, onApplying: () => void): Promise<void> {
    let model: Model;
    let affected: Set<string> | undefined;
    if (this.last) ({ model, affected } = await advanceModel(this.repo, this.last.model, this.last.commit, commit));
    else model = await loadModel(this.repo, commit);
    this.last = { commit, model };
    const site = this.cfg.site;
    const problems = model.diagnostics().map(formatDiagnostic);
    if (!model.site(site)) problems.push(`(repository): site "${site}" is not defined at this commit`);
    if (problems.length) {
      this.counters.commitsRejected++;
      this.log.warn({ commit, errors: problems.length, first: problems[0] }, "commit rejected; the last good commit keeps serving");
      await this.siteStore.put("site", { ...(this.siteStore.get("site") ?? {}), lastRejected: { commit, at: now(), errors: problems } });
      await this.notes.setNote(commit, noteText({ outcome: "rejected", site, commit, errors: problems, startedAt: started, actions: {} }));
      this.scheduleStatus();
      await this.pushRefs();
      return;
    }
    const prev = this.good;
    const machines = new Map<string, ResolvedMachine>();
    const byMac = new Map<string, ResolvedMachine>();
    for (const m of model.machinesOfSite(site)) {
      machines.set(m.name, m);
      // Decommissioned machines stay known by MAC (boot target local, no
      // discovery proposal); dhcpConfig leaves out their reservations.
      for (const i of m.interfaces) byMac.set(i.mac, m);
    }
    this.good = { commit, model, machines, byMac };
    this.dhcp?.setConfig(this.dhcpConfig(model));
    this.cache.setSources(this.artifactRefs(model));
    void this.prefetchArtifacts();

    const plan = planChange(prev?.model, model, prev ? affectedOnSite(affected, site) : undefined);
    const siteActions = plan.actions.filter((a) => a.site === site);
    const counts: Record<string, number> = {};
    for (const a of siteActions) counts[a.type] = (counts[a.type] ?? 0) + 1;
    // Level-triggered, but in proportion to the change: the machines this
    // commit touched, plus any with a power action still in doubt; the first
    // commit after a start, and the periodic resync, look at every machine.
    const changed = prev && affected ? [...machines.values()].filter((m) => affected!.has(m.key) || this.observed.get(m.name)?.power?.done === false) : [...machines.values()];
    onApplying();
    const powerErrors = await this.converge(changed);
    this.counters.commitsApplied++;
    await this.siteStore.put("site", { ...(this.siteStore.get("site") ?? {}), lastApplied: { commit, at: now() } });
    await this.notes.setNote(commit, noteText({ outcome: powerErrors.length ? "partial" : "applied", site, commit, errors: powerErrors, startedAt: started, actions: counts }));
    this.log.info({ commit, machines: machines.size, actions: siteActions.length, ms: Date.now() - started }, "commit applied");
    await this.refreshDiscovered();
    this.scheduleStatus();
    await this.pushRefs();
  }

  /**
   * The branch head at start was rejected: serve the commit applied before
   * the restart (recorded in the site store), as the daemon did before it.
   * The rejected head stays the base of incremental loads.
   */
  private async restoreLastGood(): Promise<void> {
    const prev = this.siteStore.get("site")?.lastApplied?.commit;
    const seen = this.last;
    if (!prev || prev === seen?.commit) return;
    this.last = undefined;
    try {
      // reconcileCommit records its own failure.
      await this.reconcileCommit(prev);
      if (this.good?.commit === prev) this.log.warn({ commit: prev, head: seen?.commit }, "the branch head is rejected: serving the last good commit from before the restart");
    } finally {
      if (seen) this.last = seen;
    }
  }

  private dhcpConfig(model: Model): DhcpConfig {
    const siteDoc = model.site(this.cfg.site)!;
    const spec = siteDoc.value.spec as { subnets: SubnetSpec[]; boot: { advertise: string } };
    const base = this.baseUrl(model);
    const nets = spec.subnets.map((s) => ({ s, net: s.cidr }));
    const reservations: DhcpConfig["reservations"] = [];
    for (const m of this.good!.machines.values()) {
      if (m.intent === "decommissioned") continue;
      for (const i of m.interfaces) {
        if (!i.ip) continue;
        const subnet = i.ip === m.ip ? m.subnet : nets.find(({ s }) => model.subnetOf(this.cfg.site, s.name) && inCidr(i.ip!, s.cidr))?.s.name;
        if (subnet) reservations.push({ mac: i.mac, ip: i.ip, hostname: m.name, subnet });
      }
    }
    return {
      serverId: spec.boot.advertise,
      subnets: spec.subnets.map((s) => ({
        name: s.name,
        cidr: s.cidr,
        gateway: s.gateway,
        dns: s.dns ?? [],
        mode: s.dhcp ?? "serve",
        range: s.range,
        leaseSeconds: s.leaseSeconds ?? 3600,
        domain: s.domain,
        relayed: s.relayed ?? false,
        ...(s.relays ? { relays: s.relays } : {}),
      })),
      reservations,
      boot: {
        nextServer: spec.boot.advertise,
        biosFile: "undionly.kpxe",
        uefiX64File: "ipxe.efi",
        uefiArm64File: "ipxe-arm64.efi",
        ipxeScriptUrl: (mac) => bootScriptUrl(base, mac),
      },
    };
  }

  private baseUrl(model: Model): string {
    // The site may pin the port machines use (e.g. behind a proxy); else it is the port this daemon listens on.
    if (this.cfg.advertiseUrl) return this.cfg.advertiseUrl;
    const boot = model.site(this.cfg.site)?.value.spec.boot as { advertise: string; httpPort?: number } | undefined;
    return boot ? baseUrl(boot.advertise, boot.httpPort ?? this.cfg.httpPort) : siteBaseUrl(model, this.cfg.site);
  }

  private usedBootEnvs(model: Model): BootEnvInfo[] {
    const names = new Set<string>();
    for (const m of model.machinesOfSite(this.cfg.site)) if (m.bootEnv) names.add(m.bootEnv);
    const unknown = model.site(this.cfg.site)?.value.spec.boot.unknownBootEnv as string | undefined;
    names.add(unknown ?? "discovery");
    return [...names].map((n) => model.bootEnv(n)).filter((e): e is BootEnvInfo => !!e);
  }

  private artifactRefs(model: Model): ArtifactRef[] {
    const refs: ArtifactRef[] = [];
    for (const env of this.usedBootEnvs(model)) {
      if (env.templates.kernel) refs.push(env.templates.kernel);
      refs.push(...env.templates.initrds);
    }
    return refs;
  }

  private async prefetchArtifacts(): Promise<void> {
    if (!this.good) return;
    for (const ref of this.artifactRefs(this.good.model)) {
      // Only local files are copied ahead; remote ones are fetched on first use.
      if (!ref.url.startsWith("file://") || this.cache.has(ref.sha256)) continue;
      try {
        await this.cache.ensure(ref);
      } catch (err) {
        this.log.error({ url: ref.url, err: err instanceof Error ? err.message : String(err) }, "artifact not usable");
      }
    }
  }

  // --- observed state ------------------------------------------------------

  /**
   * Brings `machines` toward their desired state: intent into phase, then
   * power. Observed-state writes of one pass share one fsync, and the event
   * loop is given back between chunks so DHCP and HTTP keep answering.
   */
  private async converge(machines: ResolvedMachine[]): Promise<string[]> {
    const CHUNK = 500;
    for (let i = 0; i < machines.length; i += CHUNK) {
      await Promise.all(machines.slice(i, i + CHUNK).map((m) => this.updateObserved(m.name, (o) => onDesired(m, o))));
      await new Promise((r) => setImmediate(r));
    }
    await this.settleInterruptedPower();
    return this.runPowerActions(machines);
  }

  /** Every machine, now and then: catches whatever a missed event or a failed action left behind. */
  private resync(): void {
    const g = this.good;
    if (!g || this.stopped) return;
    this.queue = this.queue.then(async () => {
      if (this.good !== g) return;
      try {
        await this.converge([...g.machines.values()]);
      } catch (err) {
        this.log.error({ err: err instanceof Error ? err.message : String(err) }, "resync failed");
      }
    });
  }

  private async updateObserved(name: string, f: (o: MachineObserved) => MachineObserved): Promise<MachineObserved> {
    const before = this.observed.get(name) ?? initialObserved();
    const after = f(before);
    if (after !== before || !this.observed.has(name)) {
      await this.observed.put(name, after);
      if (after.phase !== before.phase) this.log.info({ machine: name, from: before.phase, to: after.phase }, "machine phase");
      this.scheduleStatus();
    }
    return after;
  }

  private checkTimeouts(): void {
    if (!this.good) return;
    for (const [name, o] of this.observed.entries()) {
      if (!this.good.machines.has(name) || !timedOut(o, this.cfg.installTimeoutSec)) continue;
      void this.updateObserved(name, (x) => ({ ...x, phase: "Failed", phaseSince: now(), message: `no progress for ${this.cfg.installTimeoutSec} s while ${x.phase}` }));
    }
  }

  private powerTarget(m: ResolvedMachine): PowerTarget {
    return { machine: m.name, macs: m.interfaces.map((i) => i.mac), spec: m.power as unknown as Record<string, unknown> };
  }

  /**
   * Power actions with bounded concurrency (the site's rollout.maxUnavailable).
   * Each is recorded before the driver is called and marked done after, so a
   * crash never repeats one (recoverPowerActions settles those in doubt).
   */
  private async runPowerActions(machines: ResolvedMachine[]): Promise<string[]> {
    const errors: string[] = [];
    const wanted = machines
      .map((m) => ({ m, act: powerActionFor(m, this.observed.get(m.name) ?? initialObserved()) }))
      .filter((x): x is { m: ResolvedMachine; act: NonNullable<typeof x.act> } => !!x.act && !this.powerInflight.has(x.m.name));
    // Drivers this version cannot drive: recorded on each machine (in one
    // batch) and logged once per driver, not tried machine by machine.
    const unavailable = new Map<string, number>();
    const todo: typeof wanted = [];
    const recorded: Array<Promise<unknown>> = [];
    for (const x of wanted) {
      const driver = this.power.get(String(x.m.power?.driver));
      if (driver && driver.available === false) {
        unavailable.set(driver.name, (unavailable.get(driver.name) ?? 0) + 1);
        const msg = `power driver ${driver.name} is not available in this gitrack version`;
        recorded.push(this.updateObserved(x.m.name, (o) => ({ ...o, power: { action: x.act.action, generation: x.m.generation, key: x.act.key, at: now(), done: true, error: msg } })));
        if (errors.length < 20) errors.push(`machine ${x.m.name}: ${msg}`);
      } else todo.push(x);
    }
    await Promise.all(recorded);
    for (const [driver, n] of unavailable) {
      this.counters.powerErrors += n;
      this.log.warn({ driver, machines: n }, "power driver not available: actions recorded on the machines' status, not carried out");
    }
    const limit = this.maxUnavailable(machines.length);
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const { m, act } = todo[next++]!;
        this.powerInflight.add(m.name);
        try {
          await this.updateObserved(m.name, (o) => ({ ...o, power: { action: act.action, generation: m.generation, key: act.key, at: now(), done: false } }));
          const driver = powerDriverFor(this.power, this.powerTarget(m));
          const t = this.powerTarget(m);
          this.counters.powerActions++;
          this.log.info({ machine: m.name, action: act.action, driver: driver.name, generation: m.generation }, "power action");
          if (act.action === "on") await driver.powerOn(t, { bootDevice: "pxe" });
          else if (act.action === "cycle") await driver.powerCycle(t);
          else await driver.powerOff(t);
          await this.updateObserved(m.name, (o) => ({ ...o, power: o.power ? { ...o.power, done: true } : o.power, ...(act.action !== "off" ? { phase: "Pending" as const, phaseSince: now() } : {}) }));
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          this.counters.powerErrors++;
          errors.push(`machine ${m.name}: power ${act.action} failed: ${msg}`);
          this.log.error({ machine: m.name, action: act.action, err: msg }, "power action failed");
          await this.updateObserved(m.name, (o) => ({ ...o, power: o.power ? { ...o.power, error: msg } : o.power }));
        } finally {
          this.powerInflight.delete(m.name);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, todo.length) }, worker));
    return errors;
  }

  private maxUnavailable(total: number): number {
    const r = this.good?.model.site(this.cfg.site)?.value.spec.rollout?.maxUnavailable as number | string | undefined;
    if (typeof r === "number") return Math.max(1, r);
    if (typeof r === "string") return Math.max(1, Math.floor((total * Number(r.replace("%", ""))) / 100));
    return 4;
  }

  /**
   * After a crash, a power action recorded but not marked done may or may not
   * have happened. Where the driver can tell, look; never do it a second time
   * blindly.
   */
  private async recoverPowerActions(): Promise<void> {
    for (const [name, o] of this.observed.entries()) {
      if (!o.power || o.power.done) continue;
      this.log.warn({ machine: name, action: o.power.action }, "power action interrupted by a restart: settling it");
      // Without the model we cannot call a driver yet; mark it for a check
      // once the first commit is loaded.
      await this.observed.put(name, { ...o, power: { ...o.power, key: `${o.power.key}?` } });
    }
  }

  // --- DHCP and HTTP: what machines do -----------------------------------------

  private onClientSeen(e: ClientSeenEvent): void {
    const m = this.good?.byMac.get(e.mac);
    if (!m) return;
    void this.updateObserved(m.name, (o) => onDhcpSeen(m, o, e.ip));
  }

  bootScript(mac: string, remote: string): Answer {
    const g = this.good;
    if (!g) return { status: 503, message: "no valid commit is loaded yet" };
    this.counters.scripts++;
    const m = g.byMac.get(mac);
    if (m) {
      if (this.cfg.bootScriptAddressCheck !== false && !mayReadBootScript(m.interfaces.map((i) => i.ip), remote)) {
        this.counters.scriptsRefused++;
        this.log.warn(
          { machine: m.name, mac, remote: plainAddress(remote), expected: m.interfaces.map((i) => i.ip).filter(Boolean) },
          "boot script refused: the request did not come from the machine's address (behind NAT? see --no-boot-script-address-check)",
        );
        return { status: 403, message: `the boot script of ${mac} is served only to that machine's own address` };
      }
      const o = this.observed.get(m.name);
      const target = bootTarget(m, o);
      const env = g.model.bootEnv(target);
      if (!env) return { status: 500, message: `bootEnv ${target} is not defined` };
      try {
        const body = renderBootScript(env.templates, renderContext(g.model, m, env, { token: this.tokenOf(m), base: this.baseUrl(g.model) }));
        void this.updateObserved(m.name, (x) => onScriptServed(m, x, target));
        this.log.info({ machine: m.name, mac, target, remote }, "boot script served");
        return { status: 200, body };
      } catch (err) {
        return this.templateFailure(err, m.name);
      }
    }
    const unknown = this.unknownMachine(mac);
    if (!unknown) return { status: 404, message: "no boot target for this MAC" };
    // Its token only posts this MAC's discovery report, but that still should
    // come from the machine: when our DHCP holds a bound lease for the MAC,
    // only that address (and loopback, this host) gets the script.
    const lease = this.dhcp?.leaseOf(mac);
    if (this.cfg.bootScriptAddressCheck !== false && lease?.state === "bound" && !mayReadBootScript([lease.ip], remote)) {
      this.counters.scriptsRefused++;
      this.log.warn({ mac, remote: plainAddress(remote), expected: [lease.ip] }, "boot script refused: the request did not come from the address leased to this MAC");
      return { status: 403, message: `the boot script of ${mac} is served only to the address leased to it` };
    }
    try {
      const body = renderBootScript(unknown.env.templates, renderContext(g.model, unknown.m, unknown.env, { token: this.tokens.forUnknown(mac), base: this.baseUrl(g.model) }));
      void this.recordUnknown(mac, { lastBoot: now() });
      this.log.info({ mac, target: unknown.env.name, remote }, "boot script served to an unknown machine");
      return { status: 200, body };
    } catch (err) {
      return this.templateFailure(err, `unknown ${mac}`);
    }
  }

  private templateFailure(err: unknown, who: string): Answer {
    const msg = err instanceof TemplateError ? err.message : err instanceof Error ? err.message : String(err);
    this.log.error({ machine: who, err: msg }, "rendering failed");
    return { status: 500, message: "rendering failed; see the daemon log" };
  }

  private tokenOf(m: ResolvedMachine): string {
    return this.tokens.forMachine(m.name, m.mac, m.generation);
  }

  /**
   * Who may use /m/<machine>/...: 401 without a token (or one this daemon
   * never issued), 403 with a token of another machine or of an earlier
   * generation of this one.
   */
  private authMachine(machine: string, token: string | undefined): { m?: ResolvedMachine; mac?: string; status?: 401 | 403 } {
    const g = this.good;
    if (!g || !token) return { status: 401 };
    const subject = TokenIssuer.subject(token);
    if (!subject) return { status: 401 };
    const ownerOk = (): boolean => {
      if (subject.startsWith("mac-")) {
        const hex = subject.slice(4);
        return /^[0-9a-f]{12}$/.test(hex) && TokenIssuer.equal(token, this.tokens.forUnknown(hex.match(/../g)!.join(":")));
      }
      const owner = g.machines.get(subject);
      return !!owner && TokenIssuer.equal(token, this.tokenOf(owner));
    };
    if (subject !== machine) return { status: ownerOk() ? 403 : 401 };
    if (subject.startsWith("mac-")) return ownerOk() ? { mac: subject.slice(4).match(/../g)!.join(":") } : { status: 401 };
    const m = g.machines.get(subject);
    if (!m) return { status: 401 };
    // Decommissioning revokes the machine's token.
    return ownerOk() && m.intent !== "decommissioned" ? { m } : { status: 403 };
  }

  machineFile(machine: string, token: string | undefined, name: string, _remote: string): Answer {
    const auth = this.authMachine(machine, token);
    if (auth.status) {
      this.counters.authFailures++;
      return { status: auth.status, message: auth.status === 401 ? "a valid machine token is required" : "this token is for another machine" };
    }
    const g = this.good!;
    const m = auth.m ?? this.unknownMachine(auth.mac!)?.m;
    if (!m) return { status: 404, message: "not found" };
    const o = auth.m ? this.observed.get(m.name) : undefined;
    const target = auth.m ? bootTarget(m, o) : this.unknownMachine(auth.mac!)!.env.name;
    const envName = target === "local" && auth.m ? (m.bootEnv ?? "local") : target;
    const env = g.model.bootEnv(envName);
    if (!env) return { status: 404, message: "not found" };
    try {
      const f = renderFile(env.templates, name, renderContext(g.model, m, env, { token: token!, base: this.baseUrl(g.model) }));
      if (!f) return { status: 404, message: `no file ${name}` };
      this.counters.files++;
      if (auth.m) void this.updateObserved(m.name, (x) => onFileServed(m, x));
      return { status: 200, body: f.body, contentType: f.contentType };
    } catch (err) {
      return this.templateFailure(err, m.name);
    }
  }

  async machineEvent(machine: string, token: string | undefined, body: Record<string, unknown>, remote: string): Promise<Answer> {
    const auth = this.authMachine(machine, token);
    if (auth.status) {
      this.counters.authFailures++;
      return { status: auth.status, message: auth.status === 401 ? "a valid machine token is required" : "this token is for another machine" };
    }
    if (body.phase !== undefined && typeof body.phase !== "string") return { status: 400, message: "phase must be a string" };
    if (body.message !== undefined && typeof body.message !== "string") return { status: 400, message: "message must be a string" };
    const phase = body.phase ?? "";
    const message = typeof body.message === "string" ? body.message.slice(0, 500) : undefined;
    const ip = typeof body.ip === "string" && /^\d+\.\d+\.\d+\.\d+$/.test(body.ip) ? body.ip : undefined;
    this.counters.events++;
    if (auth.mac) {
      if (phase !== "Discovered") return { status: 400, message: "an unknown machine can only report phase Discovered" };
      return this.onDiscovered(auth.mac, body, remote);
    }
    const m = auth.m!;
    if (!EVENT_PHASES.has(phase as MachineEventPhase)) {
      return { status: 400, message: `phase must be one of ${[...EVENT_PHASES].join(", ")}` };
    }
    this.log.info({ machine: m.name, phase, message, remote }, "machine event");
    await this.updateObserved(m.name, (o) => onEvent(m, o, phase as MachineEventPhase, message, ip ?? remote));
    return { status: 200, body: "ok\n" };
  }

  // --- unknown machines and discovery ----------------------------------------

  private unknownMachine(mac: string): { m: ResolvedMachine; env: BootEnvInfo } | undefined {
    const g = this.good;
    return g ? unknownMachineOf(g.model, this.cfg.site, mac, this.dhcp?.leaseOf(mac)?.ip) : undefined;
  }

  private async recordUnknown(mac: string, patch: Partial<DiscoveredRecord>): Promise<DiscoveredRecord> {
    const prev = this.discoveredStore.get(mac) ?? { mac, firstSeen: now() };
    const next = { ...prev, ...patch, lastSeen: now() };
    await this.discoveredStore.put(mac, next);
    return next;
  }

  /**
   * A discovery report: bounded (DISCOVERY_LIMITS) because it needs only the
   * token an unknown MAC's boot script carries, which any host on the wire
   * can get for a MAC of its choosing.
   */
  private async onDiscovered(mac: string, body: Record<string, unknown>, remote: string): Promise<Answer> {
    const inventory = discoveryInventory(body);
    if (typeof inventory === "string") return { status: 400, message: inventory };
    if (!this.discoveredStore.get(mac)) {
      const pending = [...this.discoveredStore.keys()].filter((m) => !this.good?.byMac.has(m)).length;
      if (pending >= DISCOVERY_LIMITS.pendingMachines) {
        this.refusals.write("discovery-pending", "warn", { mac, remote, pending }, "a discovered machine refused: too many are waiting for review");
        return { status: 429, message: `${pending} discovered machines are waiting for review; merge or close their proposals first` };
      }
    }
    const rec = await this.recordUnknown(mac, { inventory, ip: typeof body.ip === "string" && /^\d+\.\d+\.\d+\.\d+$/.test(body.ip) ? body.ip : remote });
    this.log.info({ mac, remote }, "machine discovered");
    await this.proposeDiscovered(rec);
    return { status: 200, body: "ok\n" };
  }

  private async proposeDiscovered(rec: DiscoveredRecord): Promise<void> {
    const g = this.good;
    if (!g || g.byMac.has(rec.mac)) return;
    // One proposal commit per machine and interval: repeated reports update the record only.
    const last = rec.lastProposedAt ? Date.parse(rec.lastProposedAt) : 0;
    if (rec.proposedName && Date.now() - last < DISCOVERY_LIMITS.reproposeMs) return;
    const file = discoveredMachineFile(g.model, this.cfg.site, rec, new Set([...this.discoveredStore.entries()].filter(([m]) => m !== rec.mac).map(([, r]) => r.proposedIp).filter((x): x is string => !!x)));
    if (!file) {
      this.log.warn({ mac: rec.mac }, "no free address to propose for a discovered machine");
      return;
    }
    await this.discoveredStore.put(rec.mac, { ...rec, proposedName: file.name, proposedIp: file.ip, proposedAt: rec.proposedAt ?? now(), lastProposedAt: now() });
    const head = await this.discoveredWriter.propose(g.commit, new Map([[file.path, file.content]]), `discovered: ${file.name} (${rec.mac})`);
    if (head) this.log.info({ mac: rec.mac, machine: file.name, branch: `gitrack/discovered/${this.cfg.site}` }, "proposed a Machine file for review");
    await this.pushRefs();
  }

  /** Keeps the discovered branch on top of the tracked branch; forgets MACs that became known. */
  private async refreshDiscovered(): Promise<void> {
    const g = this.good!;
    const open: DiscoveredRecord[] = [];
    for (const [mac, rec] of this.discoveredStore.entries()) {
      if (g.byMac.has(mac)) await this.discoveredStore.delete(mac);
      else if (rec.proposedName) open.push(rec);
    }
    if (!open.length) return;
    const pending = await this.discoveredWriter.pending(g.commit).catch(() => new Map<string, string>());
    if (pending.size) await this.discoveredWriter.propose(g.commit, pending, "discovered: rebased on the tracked branch");
  }

  // --- status ----------------------------------------------------------------

  private scheduleStatus(): void {
    const g = this.good ?? undefined;
    const desired = g?.commit ?? this.last?.commit;
    if (!desired || this.stopped) return;
    // Called on every observed change: it must stay O(1). The summary (a pass
    // over every machine) is computed when the write happens, not here.
    const summary = () => this.statusSummary();
    this.statusWriter.scheduleWrite(() => this.statusFiles(), {
      desiredCommit: desired,
      get message() {
        return summary();
      },
    });
    this.schedulePush(Math.max(1000, this.cfg.statusIntervalSec * 1000));
  }

  /**
   * A remote repository also gets the status that no commit carries (a
   * machine's events, its DHCP and boot requests): one push per status
   * interval at most, and again later when a push failed.
   */
  private schedulePush(delayMs: number): void {
    if (!this.remote || this.pushTimer || this.stopped) return;
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      void this.pushRefs();
    }, delayMs);
  }

  private statusSummary(): string {
    const counts: Record<string, number> = {};
    for (const name of this.good?.machines.keys() ?? []) {
      const p = this.observed.get(name)?.phase ?? "Pending";
      counts[p] = (counts[p] ?? 0) + 1;
    }
    const parts = Object.entries(counts)
      .sort()
      .map(([p, n]) => `${n} ${p}`);
    return `${this.cfg.site}: ${parts.join(", ") || "no machines"}`;
  }

  /**
   * A machine's status text is rebuilt only when something it shows changed
   * (its resolved document, what was observed, its lease, the commit), so a
   * status write for a large site renders the few machines that moved.
   */
  private readonly statusCache = new Map<string, { m: ResolvedMachine; o: MachineObserved | undefined; commit: string; lease: string; text: string }>();

  private statusFiles(): Map<string, string> {
    const files = new Map<string, string>();
    const g = this.good;
    if (g) {
      for (const m of g.machines.values()) {
        const stored = this.observed.get(m.name);
        const lease = this.dhcp?.leaseOf(m.mac);
        const leaseKey = lease ? `${lease.ip}|${lease.state}|${lease.expiresAt}` : "";
        const hit = this.statusCache.get(m.name);
        // The desired commit a machine's status reflects is the commit its
        // desired state last changed at: a commit that leaves a machine as it
        // was does not rewrite that machine's file (10,000 files per commit
        // otherwise).
        const desired = hit && hit.m === m ? hit.commit : g.commit;
        if (hit && hit.m === m && hit.o === stored && hit.lease === leaseKey) {
          files.set(`machines/${m.name}.yaml`, hit.text);
          continue;
        }
        const o = stored ?? initialObserved();
        const text = machineStatusFile(m, o, desired, lease, bootTarget(m, o), needsInstall(m, o));
        this.statusCache.set(m.name, { m, o: stored, commit: desired, lease: leaseKey, text });
        files.set(`machines/${m.name}.yaml`, text);
      }
      for (const name of this.statusCache.keys()) if (!g.machines.has(name)) this.statusCache.delete(name);
    }
    files.set("site.yaml", siteStatusFile(this.cfg.site, g?.commit, this.siteStore.get("site") ?? {}, this.statusSummary()));
    return files;
  }

  /** Pushes status, notes and discovered refs; one push at a time. */
  private pushRefs(): Promise<void> {
    const remote = this.remote;
    if (!remote) return Promise.resolve();
    const refs = [statusRef(this.cfg.site), notesRef(this.cfg.site), discoveredRef(this.cfg.site)];
    this.pushing = this.pushing.then(async () => {
      try {
        await this.statusWriter.flush();
        await pushStatus(remote, refs);
      } catch (err) {
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, "pushing status refs failed; will retry");
        this.schedulePush(30_000);
      }
    });
    return this.pushing;
  }

  // --- API, health, metrics ----------------------------------------------------

  health(): { ok: boolean; [k: string]: unknown } {
    const rec = this.siteStore?.get("site");
    return {
      ok: !!this.good,
      site: this.cfg.site,
      commit: this.good?.commit ?? null,
      lastSeenCommit: this.seenCommit ?? this.last?.commit ?? null,
      ...(rec?.lastRejected ? { lastRejected: { commit: rec.lastRejected.commit, at: rec.lastRejected.at } } : {}),
      ...(rec?.lastFailed ? { lastFailed: { commit: rec.lastFailed.commit, at: rec.lastFailed.at } } : {}),
    };
  }

  metrics(): string {
    return metricsText({
      site: this.cfg.site,
      counters: this.counters,
      phases: [...(this.good?.machines.keys() ?? [])].map((n) => this.observed.get(n)?.phase ?? "Pending"),
      dhcp: this.dhcp?.stats() as unknown as Record<string, number> | undefined,
      tftp: this.tftp?.stats() as unknown as Record<string, number> | undefined,
    });
  }

  apiSites(): unknown {
    const g = this.good;
    return [{ name: this.cfg.site, commit: g?.commit ?? null, machines: g?.machines.size ?? 0, ...this.siteStore.get("site") }];
  }

  private machineView(m: ResolvedMachine): unknown {
    const o = this.observed.get(m.name) ?? initialObserved();
    return {
      name: m.name,
      site: m.site,
      macs: m.interfaces.map((i) => i.mac),
      ip: m.ip,
      intent: m.intent,
      generation: m.generation,
      bootEnv: m.bootEnv,
      bootTarget: bootTarget(m, o),
      phase: o.phase,
      phaseSince: o.phaseSince,
      installedGeneration: o.installedGeneration ?? null,
      lastBoot: o.lastBoot ?? null,
      message: o.message ?? null,
    };
  }

  apiMachines(): unknown {
    return [...(this.good?.machines.values() ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1)).map((m) => this.machineView(m));
  }

  apiMachine(name: string): unknown | undefined {
    const m = this.good?.machines.get(name);
    return m ? this.machineView(m) : undefined;
  }

  async webhook(rawBody: Buffer, signature: string | undefined): Promise<Answer> {
    if (!this.cfg.webhookSecret) return { status: 404, message: "webhooks are not configured (set GITRACK_WEBHOOK_SECRET)" };
    if (!verifyWebhookSignature(this.cfg.webhookSecret, rawBody, signature)) return { status: 401, message: "bad signature" };
    if (this.remote) void this.remote.trigger().catch((err) => this.log.warn({ err: String(err) }, "fetch after webhook failed"));
    else {
      const c = await this.repo.resolve(`refs/heads/${this.cfg.branch}`);
      if (c) this.enqueue(c);
    }
    return { status: 200, body: "ok\n" };
  }

  artifact(sha256: string): Promise<string | undefined> {
    const ref = this.cache.sourceOf(sha256);
    if (!ref) return Promise.resolve(this.cache.has(sha256) ? join(this.cacheDir, sha256) : undefined);
    return this.cache.ensure(ref).catch((err) => {
      this.log.error({ sha256, err: err instanceof Error ? err.message : String(err) }, "artifact not usable");
      return undefined;
    });
  }

  /** Settles power actions interrupted by a crash, once drivers can be asked. */
  private async settleInterruptedPower(): Promise<void> {
    const g = this.good;
    if (!g) return;
    for (const [name, o] of this.observed.entries()) {
      if (!o.power || o.power.done || !o.power.key.endsWith("?")) continue;
      const m = g.machines.get(name);
      const key = o.power.key.slice(0, -1);
      if (!m?.power) {
        await this.observed.put(name, { ...o, power: { ...o.power, key, done: true } });
        continue;
      }
      const driver = powerDriverFor(this.power, this.powerTarget(m));
      const state = await driver.status(this.powerTarget(m)).catch(() => "unknown" as const);
      const happened = o.power.action === "off" ? state !== "on" : state !== "off";
      this.log.info({ machine: name, action: o.power.action, state, completed: happened }, "interrupted power action settled");
      if (!happened) {
        // A cycle cut between its off and its on, or an on/off never sent:
        // finish that same action rather than starting a new one.
        try {
          if (o.power.action === "off") await driver.powerOff(this.powerTarget(m));
          else await driver.powerOn(this.powerTarget(m), { bootDevice: "pxe" });
          this.log.info({ machine: name, action: o.power.action }, "interrupted power action completed");
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          this.log.error({ machine: name, action: o.power.action, err: msg }, "completing an interrupted power action failed");
          await this.observed.put(name, { ...o, power: { ...o.power, key, error: msg } });
          continue;
        }
      }
      await this.observed.put(name, { ...o, power: { ...o.power, key, done: true } });
    }
  }
}

function affectedOnSite(affected: Set<string> | undefined, site: string): Set<string> | undefined {
  if (!affected) return undefined;
  return new Set([...affected].filter((k) => k.startsWith(`${site}/`)));
}

function inCidr(ip: string, cidr: string): boolean {
  const [net, len] = cidr.split("/");
  const toInt = (s: string) => s.split(".").reduce((a, b) => (a << 8) + Number(b), 0) >>> 0;
  const mask = Number(len) === 0 ? 0 : (0xffffffff << (32 - Number(len))) >>> 0;
  return ((toInt(ip) & mask) >>> 0) === ((toInt(net!) & mask) >>> 0);
}
