import { describe, expect, it } from "vitest";
import { compileConfig, DhcpConfigError, type DhcpConfig } from "../../reconciler/services/dhcp/config.js";
import { DhcpServer } from "../../reconciler/services/dhcp/server.js";
import { intToIp, ipToInt } from "../../reconciler/services/dhcp/codec.js";

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function cfg(reservations: DhcpConfig["reservations"] = []): DhcpConfig {
  return {
    serverId: "10.60.0.1",
    subnets: [{ name: "prov", cidr: "10.60.0.0/16", gateway: "10.60.0.254", dns: ["10.60.0.1"], mode: "serve", range: { start: "10.60.200.1", end: "10.60.200.254" }, leaseSeconds: 3600 }],
    reservations,
    boot: { nextServer: "10.60.0.1", biosFile: "undionly.kpxe", uefiX64File: "ipxe.efi", uefiArm64File: "ipxe-arm64.efi", ipxeScriptUrl: (m) => `http://10.60.0.1/${m}` },
  };
}

function many(n: number): DhcpConfig["reservations"] {
  return Array.from({ length: n }, (_, i) => ({
    mac: `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`,
    ip: intToIp(ipToInt("10.60.1.1") + i),
    hostname: `n${i}`,
    subnet: "prov",
  }));
}

describe("DHCP configuration", () => {
  it("indexes 10,000 reservations by MAC and by address in well under a second", () => {
    const res = many(10_000);
    const t0 = performance.now();
    const c = compileConfig(cfg(res));
    const ms = performance.now() - t0;
    expect(c.byMac.get(res[9_999].mac)?.ip).toBe(res[9_999].ip);
    expect(c.byIp.get(res[5_000].ip)?.mac).toBe(res[5_000].mac);
    expect(ms).toBeLessThan(500);
  });

  it("picks the subnet containing serverId as the on-link one", () => {
    expect(compileConfig(cfg()).local?.name).toBe("prov");
  });

  it("rejects a reservation outside its subnet, a MAC reserved twice and a bad CIDR, naming the culprit", () => {
    expect(() => compileConfig(cfg([{ mac: "52:54:00:00:00:01", ip: "10.61.0.5", hostname: "x", subnet: "prov" }]))).toThrow(/reservation x: 10.61.0.5 is not inside subnet prov/);
    const dup = [
      { mac: "52:54:00:00:00:01", ip: "10.60.0.5", hostname: "a", subnet: "prov" },
      { mac: "52:54:00:00:00:01", ip: "10.60.0.6", hostname: "b", subnet: "prov" },
    ];
    expect(() => compileConfig(cfg(dup))).toThrow(/reservation b: MAC 52:54:00:00:00:01 reserved twice/);
    const bad = cfg();
    bad.subnets[0].cidr = "10.60.0.0/33";
    expect(() => compileConfig(bad)).toThrow(DhcpConfigError);
  });

  it("refuses an invalid configuration in setConfig with DhcpConfigError, before swapping anything", async () => {
    const server = new DhcpServer({ stateDir: "/nonexistent", logger: silent });
    server.setConfig(cfg(many(3)));
    expect(() => server.setConfig({ ...cfg(), serverId: "nope" })).toThrow(DhcpConfigError);
    // still configured: stats work and nothing was started
    expect(server.stats().received).toBe(0);
  });
});
