// "manual": a person powers the machine; gitrack only says what to do.
import type { PowerDriver, PowerLogger, PowerTarget } from "./types.js";

export function createManualDriver(logger: PowerLogger): PowerDriver {
  const ask = (t: PowerTarget, action: string) => {
    const note = typeof t.spec.note === "string" ? t.spec.note : undefined;
    logger.warn(
      { machine: t.machine, macs: t.macs, action, driver: "manual", ...(note ? { note } : {}) },
      `manual power: please ${action} machine ${t.machine} (MAC ${t.macs.join(", ") || "unknown"})` +
        (action === "power off" ? "" : " and let it boot from the network (PXE)"),
    );
  };
  return {
    name: "manual",
    async status() {
      return "unknown";
    },
    async powerOn(t) {
      ask(t, "power on");
    },
    async powerOff(t) {
      ask(t, "power off");
    },
    async powerCycle(t) {
      ask(t, "power cycle");
    },
  };
}
