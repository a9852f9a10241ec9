// How gitrack starts a QEMU VM that network-boots like a diskless machine.
// Shared by the qemu power driver and the end-to-end lab so both boot VMs
// the same way.
import { accessSync, constants, readFileSync } from "node:fs";

export type QemuAccel = "kvm" | "tcg";
export type QemuNic = "virtio" | "e1000";

export const QEMU_BINARY = "qemu-system-x86_64";

/**
 * KVM only when the CPU advertises vmx/svm and /dev/kvm is writable. A
 * nested host whose /dev/kvm is backed by PVM shows neither flag, and stock
 * guests do not boot there, so it gets TCG.
 */
export function detectAccel(): QemuAccel {
  try {
    const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
    if (!/^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo)) return "tcg";
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
    return "kvm";
  } catch {
    return "tcg";
  }
}

export function resolveAccel(accel: "auto" | QemuAccel | undefined): QemuAccel {
  return accel === undefined || accel === "auto" ? detectAccel() : accel;
}

export interface QemuVmArgs {
  name: string;
  accel: QemuAccel;
  memoryMB: number;
  nic: QemuNic;
  tap: string;
  mac: string;
  serialLog: string;
  /** Append to the serial log instead of truncating it. */
  appendSerial?: boolean;
  pidFile?: string;
  /** Direct kernel boot (skips firmware PXE); otherwise the NIC's iPXE ROM boots. */
  kernel?: string;
  initrd?: string;
  append?: string;
}

export function qemuArgs(o: QemuVmArgs): string[] {
  const device = o.nic === "e1000" ? "e1000" : "virtio-net-pci";
  const args = [
    "-name", o.name,
    "-accel", o.accel,
    "-m", String(o.memoryMB),
    // SeaBIOS and iPXE write to the serial port only with -nographic
    // (with -display none only the kernel's output arrives).
    "-nographic",
    "-no-reboot",
    "-monitor", "none",
    "-chardev", `file,id=serial0,path=${o.serialLog}${o.appendSerial ? ",append=on" : ""}`,
    "-serial", "chardev:serial0",
    "-netdev", `tap,id=net0,ifname=${o.tap},script=no,downscript=no`,
    // No romfile=: an explicit one left SeaBIOS without a network boot entry
    // (QEMU 7.2); the default is Debian ipxe-qemu's efi-*.rom, i.e. iPXE.
    "-device", `${device},netdev=net0,mac=${o.mac}`,
  ];
  if (o.pidFile) args.push("-pidfile", o.pidFile);
  if (o.kernel) {
    args.push("-kernel", o.kernel);
    if (o.initrd) args.push("-initrd", o.initrd);
    if (o.append) args.push("-append", o.append);
  } else {
    args.push("-boot", "n");
  }
  return args;
}
