// Power drivers by name: what the apply loop uses to switch machines on and off.
import { createManualDriver } from "./manual.js";
import { createQemuDriver } from "./qemu.js";
import { PowerError, type PowerDriver, type PowerLogger, type PowerTarget } from "./types.js";
import { createUnavailableDriver } from "./unavailable.js";

export * from "./types.js";
export { qemuTapName, parseQemuSpec, type QemuPowerSpec } from "./qemu.js";

export interface PowerDriversOptions {
  /** The daemon's state directory; the qemu driver keeps VMs under stateDir/vms/<machine>/. */
  stateDir: string;
  logger: PowerLogger;
  /**
   * Run QEMU and the tap commands inside this network namespace (ip netns
   * exec / ip -n). Unset: the daemon's own namespace, the normal case.
   */
  netns?: string;
}

export function createPowerDrivers(opts: PowerDriversOptions): Map<string, PowerDriver> {
  const drivers: PowerDriver[] = [
    createManualDriver(opts.logger),
    createQemuDriver(opts),
    createUnavailableDriver("ipmi"),
    createUnavailableDriver("redfish"),
  ];
  return new Map(drivers.map((d) => [d.name, d]));
}

/** The driver for a target's spec.power.driver, or a PowerError naming the choices. */
export function powerDriverFor(drivers: Map<string, PowerDriver>, t: PowerTarget): PowerDriver {
  const name = typeof t.spec.driver === "string" ? t.spec.driver : "";
  const driver = drivers.get(name);
  if (!driver) {
    throw new PowerError("unknown-driver", t.machine, name, `unknown driver; known: ${[...drivers.keys()].join(", ")}`);
  }
  return driver;
}
