// A machine's life as the daemon observes it, and the pure rules that move
// it: which boot target it gets, what an event from it means, and which power
// action brings it closer to what the repository wants. Level-triggered: each
// rule reads desired and observed state afresh and is safe to apply twice.
import { createHash } from "node:crypto";
import type { ResolvedMachine } from "../model/model.js";

export type Phase = "Pending" | "Booting" | "Installing" | "Installed" | "Ready" | "Failed" | "Decommissioned" | "Maintenance";

export interface Condition {
  type: string;
  status: "True" | "False";
  reason: string;
  message?: string;
  commit?: string;
  observedGeneration?: number;
  at: string;
}

/** What the daemon has seen of one machine; durable in the state dir. */
export interface MachineObserved {
  phase: Phase;
  phaseSince: string;
  /** The generation the machine last reported Ready at. */
  installedGeneration?: number;
  /** The generation being installed since the last boot into the installer. */
  installingGeneration?: number;
  /** The reprovision request (the document version asking for it) already carried out. */
  reprovisionDone?: string;
  bootEnv?: string;
  bootTarget?: string;
  lastBoot?: string;
  lastSeen?: string;
  ip?: string;
  message?: string;
  /**
   * The power action asked of the driver, written before the driver is
   * called and marked done after: after a crash, an action that is recorded
   * for the same generation is not repeated.
   */
  power?: { action: PowerAction; generation: number; key: string; at: string; done: boolean; error?: string };
  conditions?: Condition[];
}

export type PowerAction = "on" | "cycle" | "off";

export function now(): string {
  return new Date().toISOString();
}

/** The version of the document that asked for `reprovision` (one reinstall per such edit). */
export function reprovisionKey(m: ResolvedMachine): string {
  // The machine's own document, not its file: editing another document in
  // the same file must not ask for a second wipe.
  return createHash("sha256").update(JSON.stringify(m.doc.value)).digest("hex").slice(0, 16);
}

/** Whether the machine must (re)install what its bootEnv installs. */
export function needsInstall(m: ResolvedMachine, o: MachineObserved | undefined): boolean {
  if (m.intent === "decommissioned" || m.intent === "maintenance") return false;
  const purpose = m.bootEnvInfo?.purpose ?? "install";
  if (purpose !== "install") return false;
  if (m.intent === "reprovision" && o?.reprovisionDone !== reprovisionKey(m)) return true;
  return o?.installedGeneration === undefined || o.installedGeneration < m.generation;
}

/**
 * What a known machine boots when its iPXE asks: its bootEnv while it needs
 * installing (or when the bootEnv is not an installer), `local` otherwise.
 */
export function bootTarget(m: ResolvedMachine, o: MachineObserved | undefined): string {
  if (m.intent === "decommissioned" || m.intent === "maintenance") return "local";
  const purpose = m.bootEnvInfo?.purpose ?? "install";
  if (purpose !== "install") return m.bootEnv ?? "local";
  return needsInstall(m, o) ? (m.bootEnv ?? "local") : "local";
}

export function initialObserved(): MachineObserved {
  return { phase: "Pending", phaseSince: now() };
}

function withPhase(o: MachineObserved, phase: Phase, message?: string): MachineObserved {
  if (o.phase === phase && o.message === message) return o;
  return { ...o, phase, phaseSince: now(), message };
}

/** The machine's iPXE fetched its script: it is booting `target`. */
export function onScriptServed(m: ResolvedMachine, o: MachineObserved, target: string): MachineObserved {
  const t = now();
  let next: MachineObserved = { ...o, lastBoot: t, lastSeen: t, bootTarget: target };
  if (target !== "local" && target === m.bootEnv) {
    next = withPhase({ ...next, bootEnv: target, installingGeneration: m.generation }, "Booting");
  }
  return next;
}

/** Its DHCP request was seen (before iPXE, or its installed OS renewing). */
export function onDhcpSeen(m: ResolvedMachine, o: MachineObserved, ip: string | undefined): MachineObserved {
  const next: MachineObserved = { ...o, lastSeen: now(), ip: ip ?? o.ip };
  if (needsInstall(m, o) && (o.phase === "Pending" || o.phase === "Failed")) return withPhase(next, "Booting");
  return next;
}

/** It fetched one of its rendered files: the installer is running. */
export function onFileServed(m: ResolvedMachine, o: MachineObserved): MachineObserved {
  if (o.phase === "Booting" || o.phase === "Pending") return withPhase({ ...o, lastSeen: now(), installingGeneration: o.installingGeneration ?? m.generation }, "Installing");
  return { ...o, lastSeen: now() };
}

export type MachineEventPhase = "Installing" | "Installed" | "Ready" | "Failed";

/** An event the booted system posted to its events URL. */
export function onEvent(m: ResolvedMachine, o: MachineObserved, phase: MachineEventPhase, message: string | undefined, ip: string | undefined): MachineObserved {
  const base: MachineObserved = { ...o, lastSeen: now(), ip: ip ?? o.ip };
  switch (phase) {
    case "Installing":
      return withPhase({ ...base, installingGeneration: o.installingGeneration ?? m.generation }, "Installing", message);
    case "Installed":
      return withPhase({ ...base, installingGeneration: o.installingGeneration ?? m.generation }, "Installed", message);
    case "Ready": {
      const purpose = m.bootEnvInfo?.purpose ?? "install";
      const installed = purpose === "install" ? (o.installingGeneration ?? m.generation) : o.installedGeneration;
      const next: MachineObserved = { ...base, installedGeneration: installed, installingGeneration: undefined };
      if (m.intent === "reprovision") next.reprovisionDone = reprovisionKey(m);
      return withPhase(next, "Ready", message);
    }
    case "Failed":
      return withPhase(base, "Failed", message ?? "the installer reported a failure");
  }
}

/** Booting or Installing for too long. */
export function timedOut(o: MachineObserved, timeoutSec: number, at = Date.now()): boolean {
  if (o.phase !== "Booting" && o.phase !== "Installing") return false;
  return at - Date.parse(o.phaseSince) > timeoutSec * 1000;
}

/** The document-level intent becomes the observed phase where it decides it. */
export function onDesired(m: ResolvedMachine, o: MachineObserved): MachineObserved {
  if (m.intent === "decommissioned") return withPhase(o, "Decommissioned");
  if (m.intent === "maintenance") return withPhase(o, "Maintenance");
  if (o.phase === "Decommissioned" || o.phase === "Maintenance") return withPhase(o, o.installedGeneration !== undefined && !needsInstall(m, o) ? "Ready" : "Pending");
  if (needsInstall(m, o) && o.phase === "Ready") return withPhase(o, "Pending");
  return o;
}

/**
 * The power action that moves the machine toward its desired state, or
 * undefined. A first install powers on; a reinstall power-cycles into PXE;
 * a decommission powers off. Each is asked once per generation (the `key`).
 */
export function powerActionFor(m: ResolvedMachine, o: MachineObserved): { action: PowerAction; key: string } | undefined {
  if (!m.power || m.intent === "maintenance") return undefined;
  if (m.intent === "decommissioned") {
    const key = `off@${m.generation}`;
    return o.power?.key === key ? undefined : { action: "off", key };
  }
  if (!needsInstall(m, o)) return undefined;
  const key = m.intent === "reprovision" ? `install@${reprovisionKey(m)}` : `install@${m.generation}`;
  if (o.power?.key === key) return undefined;
  const everInstalled = o.installedGeneration !== undefined || o.power !== undefined;
  return { action: everInstalled ? "cycle" : "on", key };
}
