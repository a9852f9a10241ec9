// Drivers the schema accepts but gitrack cannot drive yet (ipmi, redfish):
// every action fails with an error that says so, at apply time.
import { PowerError, type PowerDriver, type PowerTarget } from "./types.js";

export function createUnavailableDriver(name: string): PowerDriver {
  const fail = async (t: PowerTarget): Promise<never> => {
    throw new PowerError(
      "driver-unavailable",
      t.machine,
      name,
      `driver not available yet in this gitrack version; power the machine with driver "manual" (or "qemu" for a local VM) until it is`,
    );
  };
  return { name, available: false, status: fail, powerOn: fail, powerOff: fail, powerCycle: fail };
}
