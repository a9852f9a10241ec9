// The files of the status branch (gitrack/status/<site>) and the text of the
// git notes: deterministic YAML (sorted keys), one file per object.
import { stableYaml } from "../status/yaml.js";
import type { LeaseInfo } from "../services/dhcp/leases.js";
import type { ResolvedMachine } from "../model/model.js";
import type { MachineObserved } from "./lifecycle.js";

export interface SiteRecord {
  lastApplied?: { commit: string; at: string };
  lastRejected?: { commit: string; at: string; errors: string[] };
  /** A commit whose reconcile threw (a bug or an exhausted resource, not an invalid repository). */
  lastFailed?: { commit: string; at: string; error: string };
}

export function machineStatusFile(
  m: ResolvedMachine,
  o: MachineObserved,
  desiredCommit: string,
  lease: LeaseInfo | undefined,
  target: string,
  installPending: boolean,
): string {
  const conditions = [
    {
      type: "Installed",
      status: o.installedGeneration !== undefined && o.installedGeneration >= m.generation ? "True" : "False",
      reason: installPending ? "InstallPending" : o.installedGeneration !== undefined ? "AtGeneration" : "NotInstalled",
      observedGeneration: o.installedGeneration ?? null,
      commit: desiredCommit,
    },
    {
      type: "Ready",
      status: o.phase === "Ready" ? "True" : "False",
      reason: o.phase,
      ...(o.message ? { message: o.message } : {}),
      lastTransitionTime: o.phaseSince,
      commit: desiredCommit,
    },
  ];
  if (o.power) {
    conditions.push({
      type: "PowerAction",
      status: o.power.error ? "False" : o.power.done ? "True" : "False",
      reason: o.power.error ? "Failed" : o.power.done ? `Power${cap(o.power.action)}Done` : `Power${cap(o.power.action)}Requested`,
      ...(o.power.error ? { message: o.power.error } : {}),
      lastTransitionTime: o.power.at,
      commit: desiredCommit,
    } as never);
  }
  return stableYaml({
    apiVersion: "gitrack/v1",
    kind: "MachineStatus",
    metadata: {
      name: m.name,
      annotations: { "gitrack.io/desired-commit": desiredCommit, "gitrack.io/site": m.site },
    },
    spec: { intent: m.intent, generation: m.generation, bootEnv: m.bootEnv ?? null },
    status: {
      phase: o.phase,
      phaseSince: o.phaseSince,
      addresses: m.interfaces.filter((i) => i.ip).map((i) => ({ mac: i.mac, ip: i.ip })),
      observedIp: o.ip ?? null,
      lease: lease ? { ip: lease.ip, state: lease.state, expires: lease.expiresAt } : null,
      bootTarget: target,
      lastBoot: o.lastBoot ?? null,
      installedGeneration: o.installedGeneration ?? null,
      conditions,
    },
  });
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function siteStatusFile(site: string, commit: string | undefined, rec: SiteRecord, summary: string): string {
  return stableYaml({
    apiVersion: "gitrack/v1",
    kind: "SiteStatus",
    metadata: { name: site, annotations: { "gitrack.io/desired-commit": commit ?? null } },
    status: {
      summary,
      servingCommit: commit ?? null,
      lastApplied: rec.lastApplied ?? null,
      lastRejected: rec.lastRejected ?? null,
      ...(rec.lastFailed ? { lastFailed: rec.lastFailed } : {}),
    },
  });
}

export function noteText(n: { outcome: "applied" | "rejected" | "partial" | "failed"; site: string; commit: string; errors: string[]; startedAt: number; actions: Record<string, number> }): string {
  return stableYaml({
    outcome: n.outcome,
    site: n.site,
    commit: n.commit,
    startedAt: new Date(n.startedAt).toISOString(),
    durationMs: Date.now() - n.startedAt,
    actions: n.actions,
    errors: n.errors,
  });
}
