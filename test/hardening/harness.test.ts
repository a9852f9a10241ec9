// The check every hardening test ends with must be able to fail: it passes
// on a quiet site and fails once the daemon is gone.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canUseNetns } from "../lib/netns.js";
import { hasCommand } from "../daemon/harness.js";
import { expectStillServing, leaseJournalProblems, startAttackSite, takeBaseline, type AttackSite, type Baseline } from "./harness.js";

const TOOLS = ["busybox", "curl", "git", "tftp"].every(hasCommand);

describe.skipIf(!canUseNetns() || !TOOLS)("the site-under-attack check", () => {
  let site: AttackSite;
  let baseline: Baseline;

  beforeAll(async () => {
    site = await startAttackSite("self");
    baseline = await takeBaseline(site);
  });
  afterAll(async () => {
    await site?.close();
  });

  it("passes on a site nobody attacked", async () => {
    expect(baseline.rssKiB).toBeGreaterThan(10_000);
    await expectStillServing(site, baseline);
    expect(leaseJournalProblems(site.stateDir)).toEqual([]);
  });

  it("fails when a service stops answering", async () => {
    await site.restart(["--no-dhcp", "--no-tftp"]);
    await expect(expectStillServing(site, baseline, { tftp: false })).rejects.toThrow(/got no lease/);
    await expect(expectStillServing(site, baseline, { dhcp: false })).rejects.toThrow(/did not come over TFTP/);
    await expectStillServing(site, baseline, { dhcp: false, tftp: false });
  });

  it("fails once the daemon is gone", async () => {
    await site.daemon.kill("SIGKILL");
    await expect(expectStillServing(site, baseline)).rejects.toThrow(/not running/);
  });
});
