import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { canUseNetns, createVethPair } from "./netns.js";

describe.skipIf(!canUseNetns())("test namespaces", () => {
  it("joins two namespaces with a veth pair and removes both afterwards", async () => {
    const pair = createVethPair("nt", { serverAddr: "10.231.0.1/24", clientAddr: "10.231.0.2/24" });
    try {
      const out = pair.client.run("ping", ["-c", "1", "-W", "2", "10.231.0.1"]);
      expect(out).toMatch(/1 received/);
    } finally {
      await pair.destroy();
    }
    const left = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    expect(left).not.toContain(pair.server.name);
    expect(left).not.toContain(pair.client.name);
  });
});
