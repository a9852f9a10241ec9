// The contract between the apply loop and a power driver.

export type PowerState = "on" | "off" | "unknown";

export interface PowerTarget {
  /** Machine name (metadata.name). */
  machine: string;
  /** The machine's MAC addresses, boot interface first. */
  macs: string[];
  /** Machine.spec.power: `driver` plus that driver's fields. */
  spec: Record<string, unknown>;
}

export interface PowerOnOptions {
  bootDevice?: "pxe";
}

export interface PowerDriver {
  readonly name: string;
  /** false for a driver the schema accepts but this version cannot drive yet. */
  readonly available?: boolean;
  status(t: PowerTarget): Promise<PowerState>;
  powerOn(t: PowerTarget, opts?: PowerOnOptions): Promise<void>;
  powerOff(t: PowerTarget): Promise<void>;
  /** Off, then on: the machine boots afresh (into PXE for network-booted machines). */
  powerCycle(t: PowerTarget): Promise<void>;
}

/** The part of pino the drivers use; a pino Logger fits. */
export interface PowerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type PowerErrorCode = "driver-unavailable" | "unknown-driver" | "invalid-spec" | "failed";

/** A power action that could not be done, with what a person should look at. */
export class PowerError extends Error {
  readonly code: PowerErrorCode;
  readonly machine: string;
  readonly driver: string;

  constructor(code: PowerErrorCode, machine: string, driver: string, message: string) {
    super(`machine ${machine}: power driver "${driver}": ${message}`);
    this.name = "PowerError";
    this.code = code;
    this.machine = machine;
    this.driver = driver;
  }
}
