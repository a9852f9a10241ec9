// The actions that moving from one desired state to another would cause, per
// site and machine, in a deterministic order. Pure: two models in, a plan out.
import type { SubnetSpec } from "../../schemas/site.js";
import { machineFingerprint, type Model, type ResolvedMachine } from "./model.js";

export type ActionType =
  | "site.add"
  | "site.remove"
  | "site.subnet"
  | "site.boot"
  | "reservation.add"
  | "reservation.change"
  | "reservation.remove"
  | "boot.target"
  | "boot.render"
  | "reinstall"
  | "power.on"
  | "power.cycle"
  | "power.off"
  | "power.config"
  | "maintenance.enter"
  | "maintenance.leave"
  | "decommission";

export interface Action {
  site: string;
  machine?: string;
  type: ActionType;
  /** One line a reviewer reads. */
  detail: string;
  data?: Record<string, unknown>;
}

export interface Plan {
  actions: Action[];
  summary: Record<string, number>;
  machinesAffected: number;
}

const ORDER: ActionType[] = [
  "site.add",
  "site.subnet",
  "site.boot",
  "decommission",
  "maintenance.enter",
  "maintenance.leave",
  "reservation.remove",
  "reservation.change",
  "reservation.add",
  "boot.target",
  "boot.render",
  "reinstall",
  "power.config",
  "power.off",
  "power.cycle",
  "power.on",
  "site.remove",
];

/**
 * Plan from `from` (undefined: an empty repository) to `to`. With `affected`
 * (from Model.withChanges) only those machines are compared: the others are
 * the same objects in both models.
 */
export function planChange(from: Model | undefined, to: Model, affected?: Set<string>): Plan {
  const actions: Action[] = [];
  const sites = new Set<string>([...(from?.index.sites.keys() ?? []), ...to.index.sites.keys()]);
  for (const site of sites) actions.push(...planSite(site, from, to));
  const keys = affected ?? new Set<string>([...(from?.machines.keys() ?? []), ...to.machines.keys()]);
  const touched = new Set<string>();
  for (const key of keys) {
    const before = from?.machines.get(key);
    const after = to.machines.get(key);
    if (before === after) continue;
    const acts = planMachine(before, after);
    if (acts.length) touched.add(key);
    actions.push(...acts);
  }
  actions.sort(compareActions);
  const summary: Record<string, number> = {};
  for (const a of actions) summary[a.type] = (summary[a.type] ?? 0) + 1;
  return { actions, summary, machinesAffected: touched.size };
}

function compareActions(a: Action, b: Action): number {
  if (a.site !== b.site) return a.site < b.site ? -1 : 1;
  const am = a.machine ?? "";
  const bm = b.machine ?? "";
  if (am !== bm) return am < bm ? -1 : 1;
  const o = ORDER.indexOf(a.type) - ORDER.indexOf(b.type);
  if (o !== 0) return o;
  return a.detail < b.detail ? -1 : a.detail > b.detail ? 1 : 0;
}

function planSite(site: string, from: Model | undefined, to: Model): Action[] {
  const a = from?.site(site);
  const b = to.site(site);
  if (a === b) return [];
  if (!a && b) return [{ site, type: "site.add", detail: `site ${site} added` }];
  if (a && !b) return [{ site, type: "site.remove", detail: `site ${site} removed: its DHCP service stops` }];
  const out: Action[] = [];
  const sa = a!.value.spec.subnets as SubnetSpec[];
  const sb = b!.value.spec.subnets as SubnetSpec[];
  const byName = (l: SubnetSpec[]) => new Map(l.map((s) => [s.name, s]));
  const ma = byName(sa);
  const mb = byName(sb);
  for (const [name, s] of mb) {
    const old = ma.get(name);
    if (!old) out.push({ site, type: "site.subnet", detail: `subnet ${name} ${s.cidr} added (dhcp ${s.dhcp ?? "serve"})` });
    else if (JSON.stringify(old) !== JSON.stringify(s)) out.push({ site, type: "site.subnet", detail: `subnet ${name} changed: ${describeSubnetChange(old, s)}` });
  }
  for (const name of ma.keys()) if (!mb.has(name)) out.push({ site, type: "site.subnet", detail: `subnet ${name} removed` });
  const ba = a!.value.spec.boot;
  const bb = b!.value.spec.boot;
  if (JSON.stringify(ba) !== JSON.stringify(bb)) {
    const parts: string[] = [];
    for (const k of ["advertise", "httpPort", "unknownBootEnv"] as const) {
      if (ba[k] !== bb[k]) parts.push(`${k} ${ba[k] ?? "(default)"} → ${bb[k] ?? "(default)"}`);
    }
    out.push({ site, type: "site.boot", detail: `boot services: ${parts.join(", ")}` });
  }
  return out;
}

function describeSubnetChange(a: SubnetSpec, b: SubnetSpec): string {
  const parts: string[] = [];
  for (const k of Object.keys({ ...a, ...b }) as Array<keyof SubnetSpec>) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) parts.push(`${k} ${fmt(a[k])} → ${fmt(b[k])}`);
  }
  return parts.join(", ");
}

function fmt(v: unknown): string {
  if (v === undefined) return "(unset)";
  if (typeof v === "object" && v && "start" in v) {
    const r = v as unknown as { start: string; end: string };
    return `${r.start}-${r.end}`;
  }
  return Array.isArray(v) ? v.join(",") : String(v);
}

/** What changing one machine from `a` to `b` does (either may be absent). */
export function planMachine(a: ResolvedMachine | undefined, b: ResolvedMachine | undefined): Action[] {
  const m = (b ?? a)!;
  const site = m.site;
  const machine = m.name;
  const out: Action[] = [];
  const act = (type: ActionType, detail: string, data?: Record<string, unknown>) => out.push({ site, machine, type, detail, ...(data ? { data } : {}) });
  const driver = (x: ResolvedMachine) => x.power?.driver;

  if (!a && b) {
    for (const i of b.interfaces) if (i.ip) act("reservation.add", `reserve ${i.ip} for ${i.mac}${b.subnet ? ` (subnet ${b.subnet})` : ""}`, { mac: i.mac, ip: i.ip });
    if (b.intent === "decommissioned") return out;
    act("boot.target", `boot target ${b.bootEnv ?? "(none)"}`, { bootEnv: b.bootEnv });
    if (b.intent !== "maintenance" && b.power) act("power.on", `power on via ${driver(b)} to install ${b.bootEnv} (generation ${b.generation})`);
    return out;
  }
  if (a && !b) {
    for (const i of a.interfaces) if (i.ip) act("reservation.remove", `release ${i.ip} of ${i.mac}`, { mac: i.mac, ip: i.ip });
    act("decommission", `machine ${a.name} removed from the repository: it is forgotten (not powered off)`);
    return out;
  }
  const x = a!;
  const y = b!;
  if (x === y || machineFingerprint(x) === machineFingerprint(y)) return out;

  // Reservations, matched by MAC, then by position.
  const xm = new Map(x.interfaces.map((i) => [i.mac, i]));
  const ym = new Map(y.interfaces.map((i) => [i.mac, i]));
  const decom = y.intent === "decommissioned";
  const wasDecom = x.intent === "decommissioned";
  for (const [mac, i] of xm) {
    if (!i.ip) continue;
    const j = ym.get(mac);
    if (!j?.ip || decom) act("reservation.remove", `release ${i.ip} of ${mac}`, { mac, ip: i.ip });
    else if (j.ip !== i.ip) act("reservation.change", `${mac}: ${i.ip} → ${j.ip}`, { mac, from: i.ip, to: j.ip });
  }
  if (!decom) {
    for (const [mac, j] of ym) {
      if (!j.ip) continue;
      const i = xm.get(mac);
      if (!i?.ip || wasDecom) {
        const replaced = [...xm.values()].find((o) => o.ip === j.ip && !ym.has(o.mac));
        act("reservation.add", replaced ? `reserve ${j.ip} for ${mac} (MAC changed from ${replaced.mac})` : `reserve ${j.ip} for ${mac}`, { mac, ip: j.ip });
      }
    }
  }

  if (decom && !wasDecom) {
    act("decommission", `decommission ${y.name}: reservation removed${y.power ? ", powered off" : ""}`);
    if (y.power) act("power.off", `power off via ${driver(y)}`);
    return out;
  }
  if (y.intent === "maintenance" && x.intent !== "maintenance") {
    act("maintenance.enter", `maintenance: gitrack keeps its hands off ${y.name} (no power or boot actions)`);
    return out;
  }
  if (x.intent === "maintenance" && y.intent !== "maintenance") act("maintenance.leave", `maintenance over: ${y.name} is managed again`);
  if (y.intent === "maintenance") return out;

  let reinstall: string | undefined;
  if (y.generation > x.generation) reinstall = `generation ${x.generation} → ${y.generation}`;
  else if (y.intent === "reprovision" && x.intent !== "reprovision") reinstall = "intent reprovision";
  else if (wasDecom) reinstall = "recommissioned";
  if (x.bootEnv !== y.bootEnv) {
    act("boot.target", `boot target ${x.bootEnv ?? "(none)"} → ${y.bootEnv ?? "(none)"}`, { from: x.bootEnv, to: y.bootEnv });
    reinstall ??= `bootEnv ${x.bootEnv} → ${y.bootEnv}`;
  } else if (x.bootEnvInfo?.fingerprint !== y.bootEnvInfo?.fingerprint || JSON.stringify(x.params) !== JSON.stringify(y.params)) {
    const why = x.bootEnvInfo?.fingerprint !== y.bootEnvInfo?.fingerprint ? `bootEnv ${y.bootEnv} changed` : `params changed: ${changedKeys(x.params, y.params).join(", ")}`;
    act("boot.render", `rendered boot files change (${why}); used at its next install`);
  }
  if (y.generation < x.generation) act("boot.render", `generation lowered ${x.generation} → ${y.generation}: no reinstall`);
  if (JSON.stringify(x.power ?? null) !== JSON.stringify(y.power ?? null)) {
    act("power.config", `power driver ${x.power?.driver ?? "(none)"} → ${y.power?.driver ?? "(none)"}${x.power?.driver === y.power?.driver ? " (settings changed)" : ""}`);
  }
  if (reinstall) {
    act("reinstall", `reinstall ${y.bootEnv}: ${reinstall}`, { generation: y.generation });
    if (y.power) act("power.cycle", `power cycle via ${driver(y)} into PXE`);
    else act("power.cycle", `no power driver: reboot ${y.name} by hand to reinstall`);
  }
  return out;
}

function changedKeys(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}

const SYMBOL: Partial<Record<ActionType, string>> = {
  "reservation.add": "+",
  "reservation.remove": "-",
  "reservation.change": "~",
  "site.add": "+",
  "site.remove": "-",
  reinstall: "!",
  "power.cycle": "!",
  "power.off": "!",
  decommission: "-",
};

/** The plan as a reviewer reads it in a pull request. */
export function formatPlan(plan: Plan): string {
  if (plan.actions.length === 0) return "No changes: nothing to do.\n";
  const lines: string[] = [];
  let group = "";
  for (const a of plan.actions) {
    const g = a.machine ? `machine ${a.site}/${a.machine}` : `site ${a.site}`;
    if (g !== group) {
      lines.push(g);
      group = g;
    }
    lines.push(`  ${SYMBOL[a.type] ?? "~"} ${a.type}: ${a.detail}`);
  }
  const counts = Object.entries(plan.summary)
    .sort(([x], [y]) => (x < y ? -1 : 1))
    .map(([k, v]) => `${v} ${k}`)
    .join(", ");
  lines.push("", `Plan: ${plan.actions.length} action(s) on ${plan.machinesAffected} machine(s): ${counts}`);
  return lines.join("\n") + "\n";
}
