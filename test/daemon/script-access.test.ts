// Who may read a known machine's boot script, without a daemon: the address
// rules on their own. The daemon test (serve.test.ts) checks them over HTTP.
import { networkInterfaces } from "node:os";
import { describe, expect, it } from "vitest";
import { mayReadBootScript, plainAddress } from "../../reconciler/daemon/script-access.js";

const own = Object.values(networkInterfaces())
  .flatMap((l) => l ?? [])
  .map((a) => a.address)
  .find((a) => !a.startsWith("127.") && a !== "::1");

describe("mayReadBootScript", () => {
  it("lets the machine's own addresses read its script, any interface", () => {
    expect(mayReadBootScript(["10.77.0.11", "10.88.0.11"], "10.77.0.11")).toBe(true);
    expect(mayReadBootScript(["10.77.0.11", "10.88.0.11"], "10.88.0.11")).toBe(true);
    expect(mayReadBootScript(["10.77.0.11", undefined], "::ffff:10.77.0.11")).toBe(true);
  });

  it("refuses another address, also one that merely starts like the machine's", () => {
    expect(mayReadBootScript(["10.77.0.11"], "10.77.0.12")).toBe(false);
    expect(mayReadBootScript(["10.77.0.11"], "10.77.0.111")).toBe(false);
    expect(mayReadBootScript([undefined], "192.0.2.7")).toBe(false);
  });

  it("lets loopback and this host's own addresses read it", () => {
    expect(mayReadBootScript(["10.77.0.11"], "127.0.0.1")).toBe(true);
    expect(mayReadBootScript(["10.77.0.11"], "::1")).toBe(true);
    if (own) expect(mayReadBootScript(["10.77.0.11"], own)).toBe(true);
  });
});

describe("plainAddress", () => {
  it("drops the IPv4-mapped prefix and leaves other addresses alone", () => {
    expect(plainAddress("::ffff:10.0.0.1")).toBe("10.0.0.1");
    expect(plainAddress("10.0.0.1")).toBe("10.0.0.1");
    expect(plainAddress("fe80::1")).toBe("fe80::1");
  });
});
