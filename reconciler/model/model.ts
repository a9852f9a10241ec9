// The desired state of one commit: every document, indexed by kind and name,
// every machine resolved (its site, subnet, profiles, cluster role, bootEnv
// and merged params, each param with the document that set it), and every
// problem found. A new commit is applied with withChanges(), which re-parses
// the changed files and re-resolves only the machines that depend on them.
import type { Kind } from "../../schemas/index.js";
import type { SubnetSpec } from "../../schemas/site.js";
import type { PowerSpecT } from "../../schemas/machine.js";
import { compareDiagnostics, type Diagnostic } from "./diagnostics.js";
import { contains, ipToInt, parseCidr, type Network } from "./net.js";
import { parseFile, type ParsedFile, type SourceDoc, type SourceFile } from "./parse.js";
import { positionOf, type PathSegment } from "./yaml-source.js";
import { bootEnvTemplates, type BootEnvInfo } from "./bootenv.js";
import { renderDiagnostics } from "./render.js";

export type Intent = "provisioned" | "reprovision" | "maintenance" | "decommissioned";

/** Which document set a param, and where (for explain). */
export interface ParamSource {
  kind: Kind | "builtin";
  name: string;
  doc: SourceDoc;
  path: PathSegment[];
}

export interface ResolvedInterface {
  mac: string; // lower case
  ip?: string;
  name?: string;
}

export interface ResolvedMachine {
  key: string; // site/name
  name: string;
  site: string;
  doc: SourceDoc;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  interfaces: ResolvedInterface[];
  mac: string; // first interface
  ip?: string; // first interface's address
  subnet?: string; // name of the subnet holding ip
  profiles: string[];
  cluster?: ClusterMembership;
  bootEnv?: string;
  bootEnvInfo?: BootEnvInfo;
  intent: Intent;
  generation: number;
  power?: PowerSpecT;
  params: Record<string, unknown>;
  paramSources: Record<string, ParamSource>;
  /** Documents this machine was resolved from, as "Kind:name". */
  deps: string[];
  diagnostics: Diagnostic[];
}

const fingerprints = new WeakMap<ResolvedMachine, string>();

/**
 * Stable text of everything that decides what the machine is served; equal
 * texts mean a plan has nothing to do for it. Computed on first use (a
 * validate never needs it; a plan only for the machines a change touches).
 */
export function machineFingerprint(m: ResolvedMachine): string {
  let f = fingerprints.get(m);
  if (f === undefined) {
    f = JSON.stringify([m.interfaces, m.subnet, m.profiles, m.cluster, m.bootEnv, m.bootEnvInfo?.fingerprint, m.intent, m.generation, m.power ?? null, m.params, m.labels]);
    fingerprints.set(m, f);
  }
  return f;
}

export interface ClusterMembership {
  cluster: string;
  role: string;
}

interface Indexes {
  sites: Map<string, SourceDoc>;
  profiles: Map<string, SourceDoc>;
  bootEnvs: Map<string, SourceDoc>;
  clusters: Map<string, SourceDoc>;
  machines: Map<string, SourceDoc>; // site/name
  duplicates: Diagnostic[];
}

export interface ModelOptions {
  /** Files of the built-in BootEnvs; a repository document of the same name wins. */
  builtinFiles?: SourceFile[];
}

export class Model {
  /** templateParamDiagnostics() of this model, once computed (or known empty from the previous model). */
  private templateDiagnostics?: Diagnostic[];
  private renderProblems?: Diagnostic[];

  private constructor(
    readonly files: Map<string, ParsedFile>,
    private readonly builtins: Map<string, SourceDoc>,
    readonly index: Indexes,
    readonly membership: Map<string, ClusterMembership>,
    readonly machines: Map<string, ResolvedMachine>,
    private readonly dependents: Map<string, Set<string>>,
    readonly globalDiagnostics: Diagnostic[],
    private readonly bootEnvCache: Map<SourceDoc, BootEnvInfo>,
    private readonly membershipDiagnostics: Diagnostic[],
    /** Every MAC and site/IP to the machine using it; undefined when some are used twice. */
    private readonly addressIndex: AddressIndex | undefined,
  ) {}

  static build(files: SourceFile[], opts: ModelOptions = {}): Model {
    const parsed = new Map<string, ParsedFile>();
    for (const f of files) parsed.set(f.path, parseFile(f));
    return Model.fromParsed(parsed, opts);
  }

  /** A model of files already parsed with parseFile() (e.g. while they were being read). */
  static fromParsed(parsed: Map<string, ParsedFile>, opts: ModelOptions = {}): Model {
    const builtins = new Map<string, SourceDoc>();
    for (const f of opts.builtinFiles ?? []) {
      for (const d of parseFile(f).docs) if (d.kind === "BootEnv") builtins.set(d.name, d);
    }
    return Model.assemble(parsed, builtins, undefined, undefined);
  }

  /**
   * The model of a commit that differs from this one by `changes` (a path
   * with a file is added or modified, without one it is deleted). Unchanged
   * files are not parsed again and unaffected machines are not resolved again.
   */
  withChanges(changes: Array<{ path: string; file?: SourceFile }>): { model: Model; affected: Set<string> } {
    const parsed = new Map(this.files);
    const changedDocs: SourceDoc[] = [];
    for (const c of changes) {
      const old = parsed.get(c.path);
      if (old) changedDocs.push(...old.docs);
      if (c.file) {
        const p = parseFile(c.file);
        parsed.set(c.path, p);
        changedDocs.push(...p.docs);
      } else parsed.delete(c.path);
    }
    const affected = new Set<string>();
    const changedFiles = changes.map((c) => ({ before: this.files.get(c.path)?.docs ?? [], after: parsed.get(c.path)?.docs ?? [] }));
    const membershipStable = sameMachineLabels(changedFiles);
    const index = updateIndexes(this.index, changedFiles);
    for (const d of changedDocs) {
      if (d.kind === "Machine") affected.add(machineKey(d.value.spec.site, d.name));
      else for (const k of this.dependents.get(`${d.kind}:${d.name}`) ?? []) affected.add(k);
      if (d.kind === "Site") for (const k of this.machines.keys()) if (k.startsWith(`${d.name}/`)) affected.add(k);
    }
    const model = Model.assemble(parsed, this.builtins, this, affected, membershipStable, index);
    return { model, affected };
  }

  private static assemble(
    parsed: Map<string, ParsedFile>,
    builtins: Map<string, SourceDoc>,
    prev: Model | undefined,
    affected: Set<string> | undefined,
    membershipStable = false,
    updatedIndex?: Indexes,
  ): Model {
    const index = updatedIndex ?? buildIndexes(parsed, builtins);
    // Cluster membership depends on clusters, sites and the machines' names
    // and labels only: when none of those changed, the previous answer holds.
    const membershipResult =
      prev && membershipStable ? { membership: prev.membership, diagnostics: prev.membershipDiagnostics } : resolveMembership(index);
    const membership = membershipResult.membership;
    const bootEnvCache = new Map<SourceDoc, BootEnvInfo>();
    if (prev) for (const [doc, info] of prev.bootEnvCache) bootEnvCache.set(doc, info);

    let machines: Map<string, ResolvedMachine>;
    const resolveOne = (key: string, doc: SourceDoc) => {
      const r = resolveMachine(doc, index, membership.get(key), bootEnvCache);
      machines.set(key, r);
    };
    if (prev && affected && updatedIndex && membershipStable) {
      // Same machines, same memberships: only the affected ones change.
      machines = new Map(prev.machines);
      for (const key of affected) {
        const doc = index.machines.get(key);
        if (doc) resolveOne(key, doc);
      }
    } else machines = new Map();
    if (!(prev && affected && updatedIndex && membershipStable)) for (const [key, doc] of index.machines) {
      const old = prev?.machines.get(key);
      const membershipChanged = prev && !sameMembership(prev.membership.get(key), membership.get(key));
      if (old && old.doc === doc && affected && !affected.has(key) && !membershipChanged) machines.set(key, old);
      else {
        affected?.add(key);
        resolveOne(key, doc);
      }
    }
    if (prev && affected) for (const key of prev.machines.keys()) if (!index.machines.has(key)) affected.add(key);
    const dependents = prev && affected ? updateDependents(prev.dependents, prev.machines, machines, affected) : buildDependents(machines);
    const uniqueness = (prev?.addressIndex && affected && updateAddressIndex(prev.addressIndex, prev.machines, machines, affected)) || uniquenessDiagnostics(machines);
    const globalDiagnostics = [
      ...index.duplicates,
      ...membershipResult.diagnostics,
      ...siteDiagnostics(index),
      ...uniqueness.diagnostics,
      ...bootEnvDiagnostics(index, bootEnvCache),
    ];
    // forget cached BootEnv analyses of documents that are gone
    const live = new Set(index.bootEnvs.values());
    for (const d of bootEnvCache.keys()) if (!live.has(d)) bootEnvCache.delete(d);
    const model = new Model(parsed, builtins, index, membership, machines, dependents, globalDiagnostics, bootEnvCache, membershipResult.diagnostics, uniqueness.index);
    // No template lacked a param before, and no re-resolved machine lacks one now.
    if (prev?.templateDiagnostics?.length === 0 && affected) {
      let clean = true;
      for (const key of affected) {
        const m = machines.get(key);
        if (m && m !== prev.machines.get(key) && missingParams(m)) {
          clean = false;
          break;
        }
      }
      if (clean) model.templateDiagnostics = [];
    }
    return model;
  }

  /** Every problem, sorted by file, line and column. */
  diagnostics(): Diagnostic[] {
    const out: Diagnostic[] = [];
    for (const f of this.files.values()) out.push(...f.diagnostics);
    out.push(...this.globalDiagnostics);
    out.push(...(this.templateDiagnostics ??= templateParamDiagnostics(this.machines)));
    for (const m of this.machines.values()) out.push(...m.diagnostics);
    const rejected: NonNullable<ParsedFile["rejected"]> = [];
    for (const f of this.files.values()) if (f.rejected) rejected.push(...f.rejected);
    const found = dedupe(out.filter((d) => !isFollowOn(d, rejected))).sort(compareDiagnostics);
    if (found.length) return found;
    // Otherwise valid: render what will be served, once per BootEnv and site.
    return (this.renderProblems ??= renderDiagnostics(this, this.index.sites.keys()).sort(compareDiagnostics));
  }

  isValid(): boolean {
    return this.diagnostics().length === 0;
  }

  bootEnv(name: string): BootEnvInfo | undefined {
    const doc = this.index.bootEnvs.get(name);
    if (!doc) return undefined;
    let info = this.bootEnvCache.get(doc);
    if (!info) this.bootEnvCache.set(doc, (info = bootEnvTemplates(doc)));
    return info;
  }

  site(name: string): SourceDoc | undefined {
    return this.index.sites.get(name);
  }

  subnetOf(siteName: string, subnetName: string): SubnetSpec | undefined {
    return (this.site(siteName)?.value.spec.subnets as SubnetSpec[] | undefined)?.find((s) => s.name === subnetName);
  }

  /** Machines by name, across sites, for commands that take a bare name. */
  findMachines(name: string, site?: string): ResolvedMachine[] {
    if (site) {
      const m = this.machines.get(machineKey(site, name));
      return m ? [m] : [];
    }
    return [...this.machines.values()].filter((m) => m.name === name);
  }

  machinesOfSite(site: string): ResolvedMachine[] {
    return [...this.machines.values()].filter((m) => m.site === site);
  }
}

export function machineKey(site: string, name: string): string {
  return `${site}/${name}`;
}

/** Whether the changed files hold the same machines (site/name) with the same labels before and after. */
function sameMachineLabels(files: Array<{ before: SourceDoc[]; after: SourceDoc[] }>): boolean {
  for (const f of files) {
    if (f.before.some((d) => d.kind === "Cluster" || d.kind === "Site") || f.after.some((d) => d.kind === "Cluster" || d.kind === "Site")) return false;
    const sig = (ds: SourceDoc[]) =>
      ds
        .filter((d) => d.kind === "Machine")
        .map((d) => JSON.stringify([d.value.spec.site, d.name, Object.entries(d.value.metadata.labels ?? {}).sort()]))
        .sort()
        .join("\n");
    if (sig(f.before) !== sig(f.after)) return false;
  }
  return true;
}

function buildDependents(machines: Map<string, ResolvedMachine>): Map<string, Set<string>> {
  const dependents = new Map<string, Set<string>>();
  for (const [key, m] of machines) {
    for (const dep of m.deps) {
      let set = dependents.get(dep);
      if (!set) dependents.set(dep, (set = new Set()));
      set.add(key);
    }
  }
  return dependents;
}

/**
 * The previous model's dependents with the affected machines' edges moved.
 * Sets are shared with the previous model and copied only when they change
 * (the previous model is never modified).
 */
function updateDependents(
  prevDeps: Map<string, Set<string>>,
  prevMachines: Map<string, ResolvedMachine>,
  machines: Map<string, ResolvedMachine>,
  affected: Set<string>,
): Map<string, Set<string>> {
  const out = new Map(prevDeps);
  const copied = new Set<string>();
  const edit = (dep: string) => {
    let set = out.get(dep);
    if (!copied.has(dep)) {
      set = new Set(set);
      out.set(dep, set);
      copied.add(dep);
    }
    return set!;
  };
  for (const key of affected) {
    const before = prevMachines.get(key)?.deps ?? [];
    const after = machines.get(key)?.deps ?? [];
    if (before.length === after.length && before.every((d, i) => d === after[i])) continue;
    for (const d of before) if (!after.includes(d)) edit(d).delete(key);
    for (const d of after) if (!before.includes(d)) edit(d).add(key);
  }
  for (const dep of copied) if (out.get(dep)!.size === 0) out.delete(dep);
  return out;
}

function sameMembership(a: ClusterMembership | undefined, b: ClusterMembership | undefined): boolean {
  return a?.cluster === b?.cluster && a?.role === b?.role;
}

function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const k = `${d.file}:${d.line}:${d.col}:${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * Why a cross-check failed, when the cause may be a document rejected for its
 * own errors: a reference to it, or a selector it would have matched. Such a
 * follow-on problem is not reported (the document's own errors are).
 */
type Cause =
  | { missing: { kind: string; name: string; site?: string } }
  | { anyMissing: Array<{ kind: string; name: string }> }
  | { selector: { site: string; labels: Record<string, string>; found: number; count: number } };
const causes = new WeakMap<Diagnostic, Cause>();

function because(d: Diagnostic, cause: Cause): Diagnostic {
  causes.set(d, cause);
  return d;
}

function isFollowOn(d: Diagnostic, rejected: Array<{ kind: string; name: string; site?: string; labels?: Record<string, string> }>): boolean {
  const c = causes.get(d);
  if (!c || rejected.length === 0) return false;
  if ("missing" in c) return rejected.some((r) => r.kind === c.missing.kind && r.name === c.missing.name && (!c.missing.site || r.site === c.missing.site));
  if ("anyMissing" in c) return c.anyMissing.some((m) => rejected.some((r) => r.kind === m.kind && r.name === m.name));
  const want = Object.entries(c.selector.labels);
  const more = rejected.filter((r) => r.kind === "Machine" && r.site === c.selector.site && want.every(([k, v]) => r.labels?.[k] === v)).length;
  return more > 0 && c.selector.found + more >= c.selector.count;
}

export function at(doc: SourceDoc, path: PathSegment[], message: string, opts: { key?: boolean; machine?: string } = {}): Diagnostic {
  const pos = positionOf(doc.file, doc.index, path, { key: opts.key });
  return { file: doc.file.path, line: pos.line, col: pos.col, message, ...(opts.machine ? { machine: opts.machine } : {}) };
}

function where(doc: SourceDoc, path: PathSegment[] = ["metadata", "name"]): string {
  const pos = positionOf(doc.file, doc.index, path);
  return `${doc.file.path}:${pos.line}`;
}

// --- indexes ----------------------------------------------------------------

/**
 * The previous indexes with the changed files' documents swapped in, when
 * that is all that changed: the files define the same kinds and names as
 * before, none is a BootEnv (which may replace a built-in), and nothing is
 * defined twice. Undefined otherwise (the caller rebuilds them).
 */
function updateIndexes(prev: Indexes, files: Array<{ before: SourceDoc[]; after: SourceDoc[] }>): Indexes | undefined {
  if (prev.duplicates.length) return undefined;
  const keyOf = (d: SourceDoc) => (d.kind === "Machine" ? machineKey(d.value.spec.site, d.name) : d.name);
  const sig = (ds: SourceDoc[]) => ds.map((d) => `${d.kind}:${keyOf(d)}`).sort();
  for (const f of files) {
    if (f.before.some((d) => d.kind === "BootEnv") || f.after.some((d) => d.kind === "BootEnv")) return undefined;
    const a = sig(f.before);
    const b = sig(f.after);
    if (a.length !== b.length || a.some((x, i) => x !== b[i]) || new Set(b).size !== b.length) return undefined;
  }
  const idx: Indexes = { ...prev, duplicates: [] };
  const copied = new Set<Kind>();
  for (const f of files) {
    for (const d of f.after) {
      const field = ({ Site: "sites", Profile: "profiles", Cluster: "clusters", Machine: "machines" } as const)[d.kind as "Site" | "Profile" | "Cluster" | "Machine"];
      if (!copied.has(d.kind)) {
        idx[field] = new Map(prev[field]);
        copied.add(d.kind);
      }
      idx[field].set(keyOf(d), d);
    }
  }
  return idx;
}

function buildIndexes(parsed: Map<string, ParsedFile>, builtins: Map<string, SourceDoc>): Indexes {
  const idx: Indexes = {
    sites: new Map(),
    profiles: new Map(),
    bootEnvs: new Map(builtins),
    clusters: new Map(),
    machines: new Map(),
    duplicates: [],
  };
  const repoBootEnvs = new Set<string>();
  // Files in path order, so "first defined" is the same on every run.
  const paths = [...parsed.keys()].sort();
  for (const path of paths) {
    for (const doc of parsed.get(path)!.docs) {
      let map: Map<string, SourceDoc>;
      let key = doc.name;
      switch (doc.kind) {
        case "Site":
          map = idx.sites;
          break;
        case "Profile":
          map = idx.profiles;
          break;
        case "Cluster":
          map = idx.clusters;
          break;
        case "BootEnv":
          map = idx.bootEnvs;
          if (!repoBootEnvs.has(doc.name)) {
            repoBootEnvs.add(doc.name);
            map.set(key, doc); // a repository's own BootEnv replaces a built-in one
            continue;
          }
          break;
        case "Machine":
          map = idx.machines;
          key = machineKey(doc.value.spec.site, doc.name);
          break;
      }
      const first = map.get(key);
      if (first) {
        const scope = doc.kind === "Machine" ? ` in site "${doc.value.spec.site}"` : "";
        idx.duplicates.push(at(doc, ["metadata", "name"], `duplicate ${doc.kind} name "${doc.name}"${scope}: already defined at ${where(first)}`));
        continue;
      }
      map.set(key, doc);
    }
  }
  return idx;
}

// --- clusters ---------------------------------------------------------------

function resolveMembership(idx: Indexes): { membership: Map<string, ClusterMembership>; diagnostics: Diagnostic[] } {
  const membership = new Map<string, ClusterMembership>();
  const diagnostics: Diagnostic[] = [];
  const names = [...idx.clusters.keys()].sort();
  for (const cname of names) {
    const doc = idx.clusters.get(cname)!;
    const spec = doc.value.spec as { site: string; roles: Record<string, { machines?: string[]; selector?: { matchLabels: Record<string, string> }; count: number }> };
    if (!idx.sites.has(spec.site)) diagnostics.push(because(at(doc, ["spec", "site"], `site "${spec.site}" is not defined`), { missing: { kind: "Site", name: spec.site } }));
    for (const [role, r] of Object.entries(spec.roles)) {
      const chosen: string[] = [];
      if (r.machines) {
        r.machines.forEach((m, i) => {
          if (!idx.machines.has(machineKey(spec.site, m))) {
            diagnostics.push(
              because(at(doc, ["spec", "roles", role, "machines", i], `cluster ${cname} role ${role}: machine "${m}" is not defined in site "${spec.site}"`), {
                missing: { kind: "Machine", name: m, site: spec.site },
              }),
            );
          } else chosen.push(m);
        });
      }
      if (r.selector) {
        const want = Object.entries(r.selector.matchLabels);
        const matches: string[] = [];
        for (const [key, m] of idx.machines) {
          if (!key.startsWith(`${spec.site}/`)) continue;
          const labels = (m.value.metadata.labels ?? {}) as Record<string, string>;
          if (want.every(([k, v]) => labels[k] === v)) matches.push(m.name);
        }
        matches.sort();
        if (matches.length < r.count) {
          diagnostics.push(
            because(
              at(doc, ["spec", "roles", role, "selector"], `cluster ${cname} role ${role}: selector ${want.map(([k, v]) => `${k}=${v}`).join(",")} matches ${matches.length} machine(s), fewer than count ${r.count}`),
              { selector: { site: spec.site, labels: r.selector.matchLabels, found: matches.length, count: r.count } },
            ),
          );
        }
        // A Set, not chosen.includes(): a role of thousands of machines was quadratic.
        const have = new Set(chosen);
        const limit = Math.max(r.count, r.machines?.length ?? 0);
        for (const m of matches) {
          if (chosen.length >= limit) break;
          if (!have.has(m)) {
            have.add(m);
            chosen.push(m);
          }
        }
      } else if (!r.machines) {
        diagnostics.push(at(doc, ["spec", "roles", role], `cluster ${cname} role ${role}: needs machines or a selector`));
      } else if (chosen.length < r.count) {
        diagnostics.push(at(doc, ["spec", "roles", role, "count"], `cluster ${cname} role ${role}: lists ${chosen.length} machine(s), fewer than count ${r.count}`));
      }
      for (const m of chosen) {
        const key = machineKey(spec.site, m);
        const prior = membership.get(key);
        if (prior) {
          diagnostics.push(at(doc, ["spec", "roles", role], `machine "${m}" is in cluster ${prior.cluster} role ${prior.role} already; a machine can have one cluster role`));
          continue;
        }
        membership.set(key, { cluster: cname, role });
      }
    }
  }
  return { membership, diagnostics };
}

// --- machines ---------------------------------------------------------------

interface SubnetIndexEntry {
  spec: SubnetSpec;
  net: Network;
}

const subnetCache = new WeakMap<SourceDoc, SubnetIndexEntry[]>();
function subnetsOf(site: SourceDoc): SubnetIndexEntry[] {
  let s = subnetCache.get(site);
  if (!s) {
    s = (site.value.spec.subnets as SubnetSpec[]).map((spec) => ({ spec, net: parseCidr(spec.cidr) }));
    subnetCache.set(site, s);
  }
  return s;
}

/**
 * One ParamSource per document and param, shared by every machine the
 * document applies to (read-only): a profile used by 1,000 machines made
 * 1,000 equal objects and path arrays per param.
 */
const paramSourceCache = new WeakMap<SourceDoc, Map<string, ParamSource>>();
function paramSource(doc: SourceDoc, kind: ParamSource["kind"], key: string): ParamSource {
  let byKey = paramSourceCache.get(doc);
  if (!byKey) paramSourceCache.set(doc, (byKey = new Map()));
  let src = byKey.get(key);
  if (!src || src.kind !== kind) byKey.set(key, (src = { kind, name: doc.name, doc, path: ["spec", "params", key] }));
  return src;
}

function resolveMachine(doc: SourceDoc, idx: Indexes, member: ClusterMembership | undefined, bootEnvCache: Map<SourceDoc, BootEnvInfo>): ResolvedMachine {
  const spec = doc.value.spec as {
    site: string;
    interfaces: Array<{ mac: string; ip?: string; name?: string }>;
    profiles?: string[];
    params?: Record<string, unknown>;
    bootEnv?: string;
    intent?: Intent;
    generation?: number;
    power?: PowerSpecT;
  };
  const name = doc.name;
  const diagnostics: Diagnostic[] = [];
  const deps: string[] = [`Site:${spec.site}`];
  const site = idx.sites.get(spec.site);
  if (!site) diagnostics.push(because(at(doc, ["spec", "site"], `site "${spec.site}" is not defined`, { machine: name }), { missing: { kind: "Site", name: spec.site } }));

  const interfaces = spec.interfaces.map((i) => ({ ...i, mac: i.mac.toLowerCase() }));
  const primary = interfaces[0]!;
  let subnet: string | undefined;
  if (!primary.ip) diagnostics.push(at(doc, ["spec", "interfaces", 0], `machine ${name}: the first interface needs an ip`, { machine: name }));
  if (site) {
    interfaces.forEach((iface, i) => {
      if (!iface.ip) return;
      const n = ipToInt(iface.ip);
      const sn = subnetsOf(site).find((s) => contains(s.net, n));
      if (!sn) {
        diagnostics.push(at(doc, ["spec", "interfaces", i, "ip"], `ip ${iface.ip} is outside every subnet of site ${spec.site} (${subnetsOf(site).map((s) => s.spec.cidr).join(", ")})`, { machine: name }));
        return;
      }
      if (i === 0) subnet = sn.spec.name;
      if (n === sn.net.network || n === sn.net.broadcast) {
        diagnostics.push(at(doc, ["spec", "interfaces", i, "ip"], `ip ${iface.ip} is the network or broadcast address of subnet ${sn.spec.name}`, { machine: name }));
      }
      const r = sn.spec.range;
      if (r && n >= ipToInt(r.start) && n <= ipToInt(r.end)) {
        diagnostics.push(at(doc, ["spec", "interfaces", i, "ip"], `ip ${iface.ip} is inside the dynamic range ${r.start}-${r.end} of subnet ${sn.spec.name}`, { machine: name }));
      }
    });
  }

  // Profiles: the machine's own, then its cluster role's.
  const profiles: Array<{ name: string; path: PathSegment[]; from: SourceDoc }> = (spec.profiles ?? []).map((p, i) => ({ name: p, path: ["spec", "profiles", i], from: doc }));
  let clusterDoc: SourceDoc | undefined;
  if (member) {
    clusterDoc = idx.clusters.get(member.cluster);
    deps.push(`Cluster:${member.cluster}`);
    const roleProfiles = (clusterDoc?.value.spec.roles?.[member.role]?.profiles ?? []) as string[];
    roleProfiles.forEach((p, i) => profiles.push({ name: p, path: ["spec", "roles", member.role, "profiles", i], from: clusterDoc! }));
  }
  const profileDocs: SourceDoc[] = [];
  for (const p of profiles) {
    deps.push(`Profile:${p.name}`);
    const pd = idx.profiles.get(p.name);
    if (!pd) {
      const d = because(at(p.from, p.path, `profile "${p.name}" is not defined`, { machine: name }), { missing: { kind: "Profile", name: p.name } });
      if (p.from === doc) diagnostics.push(d);
      else diagnostics.push(d); // reported once per cluster position by dedupe
      continue;
    }
    profileDocs.push(pd);
  }

  // BootEnv: the machine's, else the first profile that names one.
  let bootEnv: string | undefined = spec.bootEnv;
  let bootEnvFrom: { doc: SourceDoc; path: PathSegment[] } | undefined = bootEnv ? { doc, path: ["spec", "bootEnv"] } : undefined;
  if (!bootEnv) {
    for (const pd of profileDocs) {
      if (pd.value.spec.bootEnv) {
        bootEnv = pd.value.spec.bootEnv;
        bootEnvFrom = { doc: pd, path: ["spec", "bootEnv"] };
        break;
      }
    }
  }
  let bootEnvDoc: SourceDoc | undefined;
  if (bootEnv) {
    deps.push(`BootEnv:${bootEnv}`);
    bootEnvDoc = idx.bootEnvs.get(bootEnv);
    if (!bootEnvDoc) {
      diagnostics.push(because(at(bootEnvFrom!.doc, bootEnvFrom!.path, `bootEnv "${bootEnv}" is not defined`, { machine: name }), { missing: { kind: "BootEnv", name: bootEnv } }));
    }
  } else {
    // With a profile missing, that profile may be the one meant to name it.
    const missingProfiles = profiles.filter((p) => !idx.profiles.has(p.name)).map((p) => ({ kind: "Profile", name: p.name }));
    diagnostics.push(because(at(doc, ["spec"], `machine ${name} has no bootEnv: set spec.bootEnv or use a profile that sets one`, { machine: name }), { anyMissing: missingProfiles }));
  }

  // Params, lowest precedence first: bootEnv defaults, site, cluster, profiles
  // (last listed lowest), machine.
  const params: Record<string, unknown> = {};
  const paramSources: Record<string, ParamSource> = {};
  const layer = (src: SourceDoc | undefined, kind: ParamSource["kind"], values: Record<string, unknown> | undefined) => {
    if (!src || !values) return;
    for (const [k, v] of Object.entries(values)) {
      params[k] = v;
      paramSources[k] = paramSource(src, kind, k);
    }
  };
  if (bootEnvDoc) layer(bootEnvDoc, "BootEnv", bootEnvDoc.value.spec.params);
  if (site) layer(site, "Site", site.value.spec.params);
  if (clusterDoc) layer(clusterDoc, "Cluster", clusterDoc.value.spec.params);
  for (let i = profileDocs.length - 1; i >= 0; i--) layer(profileDocs[i], "Profile", profileDocs[i]!.value.spec.params);
  layer(doc, "Machine", spec.params);

  let bootEnvInfo: BootEnvInfo | undefined;
  if (bootEnvDoc) {
    bootEnvInfo = bootEnvCache.get(bootEnvDoc);
    if (!bootEnvInfo) bootEnvCache.set(bootEnvDoc, (bootEnvInfo = bootEnvTemplates(bootEnvDoc)));
  }
  const labels = (doc.value.metadata.labels ?? {}) as Record<string, string>;
  const annotations = (doc.value.metadata.annotations ?? {}) as Record<string, string>;
  const intent = spec.intent ?? "provisioned";
  const generation = spec.generation ?? 0;
  const resolved: ResolvedMachine = {
    key: machineKey(spec.site, name),
    name,
    site: spec.site,
    doc,
    labels,
    annotations,
    interfaces,
    mac: primary.mac,
    ip: primary.ip,
    subnet,
    profiles: profiles.map((p) => p.name),
    cluster: member ? { ...member } : undefined,
    bootEnv,
    bootEnvInfo,
    intent,
    generation,
    power: spec.power,
    params,
    paramSources,
    deps,
    diagnostics,
  };
  return resolved;
}

// --- cross checks -----------------------------------------------------------

function siteDiagnostics(idx: Indexes): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const site of idx.sites.values()) {
    const subnets = subnetsOf(site);
    const names = new Map<string, number>();
    subnets.forEach((s, i) => {
      const base = ["spec", "subnets", i];
      if (names.has(s.spec.name)) out.push(at(site, [...base, "name"], `duplicate subnet name "${s.spec.name}" in site ${site.name}`));
      names.set(s.spec.name, i);
      if (ipToInt(s.spec.cidr.split("/")[0]!) !== s.net.network) {
        out.push(at(site, [...base, "cidr"], `${s.spec.cidr} has host bits set; the network is ${intToIpSafe(s.net.network)}/${s.net.prefixLength}`));
      }
      // A served subnet outside /8../30 is a typo or worse: /0 would offer the mask 0.0.0.0.
      const served = (s.spec.dhcp ?? "serve") !== "off";
      if (served && (s.net.prefixLength < MIN_SERVED_PREFIX || s.net.prefixLength > MAX_SERVED_PREFIX)) {
        out.push(at(site, [...base, "cidr"], `${s.spec.cidr}: a subnet gitrack serves DHCP on must be /${MIN_SERVED_PREFIX} to /${MAX_SERVED_PREFIX} (set dhcp: off for others)`));
      }
      if (s.spec.gateway && !contains(s.net, s.spec.gateway)) out.push(at(site, [...base, "gateway"], `gateway ${s.spec.gateway} is outside ${s.spec.cidr}`));
      const r = s.spec.range;
      if (r) {
        if (!contains(s.net, r.start)) out.push(at(site, [...base, "range", "start"], `range start ${r.start} is outside ${s.spec.cidr}`));
        if (!contains(s.net, r.end)) out.push(at(site, [...base, "range", "end"], `range end ${r.end} is outside ${s.spec.cidr}`));
        if (ipToInt(r.start) > ipToInt(r.end)) out.push(at(site, [...base, "range"], `range start ${r.start} is after its end ${r.end}`));
        else if (ipToInt(r.end) - ipToInt(r.start) + 1 > MAX_RANGE_SIZE) out.push(at(site, [...base, "range"], `range ${r.start}-${r.end} holds more than ${MAX_RANGE_SIZE} addresses`));
      }
      const relays = s.spec.relays ?? [];
      if (relays.length > 0 && !s.spec.relayed) out.push(at(site, [...base, "relays"], `relays are listed but subnet ${s.spec.name} is not relayed (set relayed: true)`));
      relays.forEach((addr, k) => {
        if (!contains(s.net, addr)) out.push(at(site, [...base, "relays", k], `relay ${addr} is outside ${s.spec.cidr} (a relay's giaddr is its address on the relayed subnet)`));
      });
      for (let j = 0; j < i; j++) {
        const o = subnets[j]!;
        if (contains(o.net, s.net.network) || contains(s.net, o.net.network)) {
          out.push(at(site, [...base, "cidr"], `subnet ${s.spec.name} (${s.spec.cidr}) overlaps subnet ${o.spec.name} (${o.spec.cidr})`));
        }
      }
    });
    const unknown = site.value.spec.boot.unknownBootEnv as string | undefined;
    if (unknown && !idx.bootEnvs.has(unknown)) out.push(because(at(site, ["spec", "boot", "unknownBootEnv"], `bootEnv "${unknown}" is not defined`), { missing: { kind: "BootEnv", name: unknown } }));
  }
  for (const p of idx.profiles.values()) {
    const be = p.value.spec.bootEnv as string | undefined;
    if (be && !idx.bootEnvs.has(be)) out.push(because(at(p, ["spec", "bootEnv"], `bootEnv "${be}" is not defined`), { missing: { kind: "BootEnv", name: be } }));
  }
  return out;
}

/** Subnets gitrack serves DHCP on: /8 to /30. */
const MIN_SERVED_PREFIX = 8;
const MAX_SERVED_PREFIX = 30;
/** The largest dynamic range. */
const MAX_RANGE_SIZE = 65_536;

function intToIpSafe(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/**
 * Every MAC ("m:<mac>") and site address ("i:<site>/<ip>") to the machine
 * using it. A model derived from another adds a small layer over the
 * previous index instead of copying it (a copy of 10,000 machines' entries
 * cost more than the rest of a one-file change); every 16 layers the chain
 * is flattened into one map again. Layers are never modified once built.
 */
class AddressIndex {
  private constructor(
    private readonly own: Map<string, string | null>, // null: removed in this layer
    private readonly parent: AddressIndex | undefined,
    readonly depth: number,
  ) {}

  static of(entries: Map<string, string>): AddressIndex {
    return new AddressIndex(entries, undefined, 0);
  }

  get(k: string): string | undefined {
    for (let x: AddressIndex | undefined = this; x; x = x.parent) {
      const v = x.own.get(k);
      if (v !== undefined) return v ?? undefined;
    }
    return undefined;
  }

  /** A new layer over this one, with `edit` applied. */
  derive(edit: Map<string, string | null>): AddressIndex {
    const next = new AddressIndex(edit, this, this.depth + 1);
    return next.depth < 16 ? next : AddressIndex.of(next.entries());
  }

  entries(): Map<string, string> {
    const layers: AddressIndex[] = [];
    for (let x: AddressIndex | undefined = this; x; x = x.parent) layers.unshift(x);
    const out = new Map<string, string>();
    for (const l of layers) for (const [k, v] of l.own) v === null ? out.delete(k) : out.set(k, v);
    return out;
  }
}

const macEntry = (mac: string) => `m:${mac}`;
const ipEntry = (site: string, ip: string) => `i:${site}/${ip}`;

/**
 * The previous model's address index with the affected machines' addresses
 * moved, when that leaves every MAC and IP used once (then there is nothing
 * to report). Undefined when some address would be used twice: the caller
 * then runs the full check, which names both places.
 */
function updateAddressIndex(
  prev: AddressIndex,
  prevMachines: Map<string, ResolvedMachine>,
  machines: Map<string, ResolvedMachine>,
  affected: Set<string>,
): { diagnostics: Diagnostic[]; index: AddressIndex } | undefined {
  const edit = new Map<string, string | null>();
  const get = (k: string) => (edit.has(k) ? (edit.get(k) ?? undefined) : prev.get(k));
  for (const key of affected) {
    const old = prevMachines.get(key);
    if (!old || old === machines.get(key)) continue;
    for (const i of old.interfaces) {
      if (get(macEntry(i.mac)) === key) edit.set(macEntry(i.mac), null);
      if (i.ip && get(ipEntry(old.site, i.ip)) === key) edit.set(ipEntry(old.site, i.ip), null);
    }
  }
  for (const key of affected) {
    const m = machines.get(key);
    if (!m || m === prevMachines.get(key)) continue;
    for (const i of m.interfaces) {
      if (get(macEntry(i.mac)) !== undefined) return undefined;
      edit.set(macEntry(i.mac), key);
      if (!i.ip) continue;
      if (get(ipEntry(m.site, i.ip)) !== undefined) return undefined;
      edit.set(ipEntry(m.site, i.ip), key);
    }
  }
  return { diagnostics: [], index: prev.derive(edit) };
}

/** A MAC or an IP used twice: both places named. */
function uniquenessDiagnostics(machines: Map<string, ResolvedMachine>): { diagnostics: Diagnostic[]; index: AddressIndex | undefined } {
  const out: Diagnostic[] = [];
  const macs = new Map<string, { m: ResolvedMachine; i: number }>();
  const ips = new Map<string, { m: ResolvedMachine; i: number }>();
  const keys = [...machines.keys()].sort();
  for (const key of keys) {
    const m = machines.get(key)!;
    m.interfaces.forEach((iface, i) => {
      const prior = macs.get(iface.mac);
      if (prior) {
        const p = prior.m.doc;
        out.push(at(m.doc, ["spec", "interfaces", i, "mac"], `MAC ${iface.mac} of machine ${m.name} is also used by machine ${prior.m.name} at ${where(p, ["spec", "interfaces", prior.i, "mac"])}`, { machine: m.name }));
      } else macs.set(iface.mac, { m, i });
      if (!iface.ip) return;
      const ipKey = `${m.site}/${iface.ip}`;
      const priorIp = ips.get(ipKey);
      if (priorIp) {
        out.push(at(m.doc, ["spec", "interfaces", i, "ip"], `ip ${iface.ip} of machine ${m.name} is also used by machine ${priorIp.m.name} at ${where(priorIp.m.doc, ["spec", "interfaces", priorIp.i, "ip"])}`, { machine: m.name }));
      } else ips.set(ipKey, { m, i });
    });
  }
  if (out.length) return { diagnostics: out, index: undefined };
  const entries = new Map<string, string>();
  for (const [mac, e] of macs) entries.set(macEntry(mac), e.m.key);
  for (const [ip, e] of ips) entries.set(`i:${ip}`, e.m.key);
  return { diagnostics: out, index: AddressIndex.of(entries) };
}

function bootEnvDiagnostics(idx: Indexes, cache: Map<SourceDoc, BootEnvInfo>): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const doc of idx.bootEnvs.values()) {
    let info = cache.get(doc);
    if (!info) cache.set(doc, (info = bootEnvTemplates(doc)));
    out.push(...info.diagnostics);
  }
  return out;
}

/**
 * A template that reads a param nobody sets for a machine: one line per
 * template position and param, naming the machines (the first few).
 */
function missingParams(m: ResolvedMachine): boolean {
  return !!m.bootEnvInfo?.paramRefs.some((ref) => !ref.optional && !Object.prototype.hasOwnProperty.call(m.params, ref.param));
}

function templateParamDiagnostics(machines: Map<string, ResolvedMachine>): Diagnostic[] {
  const missing = new Map<string, { file: string; line: number; col: number; param: string; template: string; machines: string[] }>();
  const keys = [...machines.keys()].sort();
  for (const key of keys) {
    const m = machines.get(key)!;
    const info = m.bootEnvInfo;
    if (!info) continue;
    for (const ref of info.paramRefs) {
      if (ref.optional || Object.prototype.hasOwnProperty.call(m.params, ref.param)) continue;
      const k = `${ref.file}:${ref.line}:${ref.col}:${ref.param}`;
      let e = missing.get(k);
      if (!e) missing.set(k, (e = { file: ref.file, line: ref.line, col: ref.col, param: ref.param, template: ref.template, machines: [] }));
      e.machines.push(m.name);
    }
  }
  const out: Diagnostic[] = [];
  for (const e of missing.values()) {
    const shown = e.machines.slice(0, 3).join(", ");
    const more = e.machines.length > 3 ? ` and ${e.machines.length - 3} more` : "";
    out.push({
      file: e.file,
      line: e.line,
      col: e.col,
      message: `${e.template} uses params.${e.param}, which no one sets for machine ${shown}${more} (set it on the machine, a profile, its cluster, its site or the bootEnv's params)`,
      machine: e.machines[0],
    });
  }
  return out;
}
