// A document rejected for its own errors is reported once: references to it
// and selectors it would have matched are not reported as problems of their
// own, so the first line a person reads is the real mistake.
import { describe, expect, it } from "vitest";
import { baseFiles, clusterYaml, machineYaml, profileYaml, siteRepos } from "./site-repo.js";

const newRepo = siteRepos();

async function problems(changes: Record<string, string | null>): Promise<string[]> {
  const repo = newRepo(baseFiles(2));
  repo.commit(changes, "the change under test");
  return repo.problems();
}

const cluster = clusterYaml("c1", ["    worker:", "      selector: {matchLabels: {rack: r1}}", "      count: 2"]);

describe("follow-on problems", () => {
  it("reports a machine with a bad MAC once, not also as a cluster selector short of machines", async () => {
    const out = await problems({ "clusters/c1.yaml": cluster, "machines/n1.yaml": machineYaml("n1", 1, { mac: "52:54:00:00:00:zz" }) });
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^machines\/n1\.yaml:9:\d+: spec\.interfaces\[0\]\.mac/);
  });

  it("still reports a selector short of machines when no rejected machine would have matched it", async () => {
    const out = await problems({
      "clusters/c1.yaml": cluster.replace("count: 2", "count: 3"),
      "machines/n1.yaml": machineYaml("n1", 1, { mac: "52:54:00:00:00:zz" }),
    });
    expect(out.some((l) => /clusters\/c1\.yaml:9:\d+: .*matches 1 machine\(s\), fewer than count 3/.test(l))).toBe(true);
  });

  it("does not report machines' references to a profile whose own document is rejected", async () => {
    const broken = profileYaml("base", { bootEnv: "debian-12" }).replace("spec:", "spec:\n  colour: red");
    const out = await problems({ "profiles/base.yaml": broken });
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^profiles\/base\.yaml:\d+:\d+: spec: unknown field "colour"/);
  });

  it("reports a reference to a profile that exists nowhere", async () => {
    const out = await problems({ "machines/n1.yaml": machineYaml("n1", 1, { profiles: ["base", "nosuch"] }) });
    expect(out).toEqual([expect.stringMatching(/^machines\/n1\.yaml:11:\d+: profile "nosuch" is not defined$/)]);
  });
});
