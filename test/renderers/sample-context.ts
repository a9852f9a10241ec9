import type { RenderContext } from "../../renderers/context.js";

/** A machine as the model would hand it to the renderers. */
export function sampleContext(over: Partial<RenderContext> = {}): RenderContext {
  return {
    machine: {
      name: "r1-n01",
      hostname: "r1-n01.lab.example",
      site: "lab",
      labels: { rack: "r1" },
      annotations: {},
      mac: "52:54:00:12:34:56",
      ip: "10.77.0.11",
      macs: ["52:54:00:12:34:56"],
      generation: 3,
      known: true,
    },
    params: { ntp: { server: "10.77.0.1" }, locale: "en_US.UTF-8" },
    site: {
      name: "lab",
      params: {},
      advertise: "10.77.0.1",
      subnet: {
        name: "boot",
        cidr: "10.77.0.0/24",
        network: "10.77.0.0",
        prefixLength: 24,
        netmask: "255.255.255.0",
        gateway: "10.77.0.1",
        dns: ["10.77.0.1", "9.9.9.9"],
      },
    },
    bootEnv: {
      name: "debian-12",
      purpose: "install",
      kernel: { url: "http://deb.example/linux", sha256: "a".repeat(64) },
      initrds: [{ url: "http://deb.example/initrd.gz", sha256: "b".repeat(64) }],
    },
    urls: {
      base: "http://10.77.0.1:8080",
      script: "http://10.77.0.1:8080/boot/tok123/script.ipxe",
      kernel: "http://10.77.0.1:8080/cache/aaaa/linux",
      initrds: ["http://10.77.0.1:8080/cache/bbbb/initrd.gz"],
      files: "http://10.77.0.1:8080/boot/tok123/files/",
      events: "http://10.77.0.1:8080/boot/tok123/events",
    },
    ...over,
  };
}
