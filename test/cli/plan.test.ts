// `gitrack plan` on the changes operators make: which machines are touched,
// with which actions, and nothing else; exit 0 nothing to do, 2 changes,
// 1 invalid.
import { describe, expect, it } from "vitest";
import { SiteRepo, baseFiles, machineYaml, profileYaml, siteRepos } from "../model/site-repo.js";
import { gitrack } from "./run.js";

interface PlanJson {
  from: string | null;
  to: string;
  valid: boolean;
  actions: Array<{ site: string; machine?: string; type: string; detail: string }>;
  summary: Record<string, number>;
  machinesAffected: number;
}

const newRepo = siteRepos();


async function planJson(repo: SiteRepo, ...args: string[]): Promise<{ code: number; plan: PlanJson }> {
  const r = await gitrack("plan", "--repo", repo.dir, "--to", "HEAD", "--format", "json", ...args);
  return { code: r.code, plan: JSON.parse(r.stdout) as PlanJson };
}

/** machine → its action types, in plan order. */
function byMachine(plan: PlanJson): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const a of plan.actions) {
    const k = a.machine ? `${a.site}/${a.machine}` : `site ${a.site}`;
    (out[k] ??= []).push(a.type);
  }
  return out;
}

describe("gitrack plan", () => {
  it("for an added machine: reserve its address, set its boot target and power it on; nothing else", async () => {
    const repo = newRepo(baseFiles());
    repo.commit({ "machines/n3.yaml": machineYaml("n3", 3) }, "add n3");
    const { code, plan } = await planJson(repo);
    expect(code).toBe(2);
    expect(byMachine(plan)).toEqual({ "lab/n3": ["reservation.add", "boot.target", "power.on"] });
    expect(plan.actions[0]!.detail).toBe("reserve 10.0.0.13 for 52:54:00:00:00:03 (subnet prov)");
    expect(plan.machinesAffected).toBe(1);
  });

  it("for a changed MAC: the address moves to the new MAC, and only for that machine", async () => {
    const repo = newRepo(baseFiles());
    repo.commit({ "machines/n1.yaml": machineYaml("n1", 1, { mac: "52:54:00:00:aa:01" }) }, "n1: new NIC");
    const { code, plan } = await planJson(repo);
    expect(code).toBe(2);
    expect(byMachine(plan)).toEqual({ "lab/n1": ["reservation.remove", "reservation.add"] });
    expect(plan.actions.map((a) => a.detail)).toEqual([
      "release 10.0.0.11 of 52:54:00:00:00:01",
      "reserve 10.0.0.11 for 52:54:00:00:aa:01 (MAC changed from 52:54:00:00:00:01)",
    ]);
  });

  it("for a changed IP: one reservation change, no reinstall", async () => {
    const repo = newRepo(baseFiles());
    repo.commit({ "machines/n2.yaml": machineYaml("n2", 2, { ip: "10.0.0.99" }) }, "n2: readdress");
    const { plan } = await planJson(repo);
    expect(byMachine(plan)).toEqual({ "lab/n2": ["reservation.change"] });
    expect(plan.actions[0]!.detail).toBe("52:54:00:00:00:02: 10.0.0.12 → 10.0.0.99");
  });

  it("for a profile edit: exactly the 50 machines using the profile, nothing else", async () => {
    const files = baseFiles(0);
    files["profiles/web.yaml"] = profileYaml("web", { params: { workers: "4" } });
    for (let i = 1; i <= 60; i++) files[`machines/m${i}.yaml`] = machineYaml(`m${i}`, i, { profiles: i <= 50 ? ["web", "base"] : ["base"] });
    const repo = newRepo(files);
    repo.commit({ "profiles/web.yaml": profileYaml("web", { params: { workers: "8" } }) }, "web: more workers");
    const { code, plan } = await planJson(repo);
    expect(code).toBe(2);
    const expected: Record<string, string[]> = {};
    for (let i = 1; i <= 50; i++) expected[`lab/m${i}`] = ["boot.render"];
    expect(byMachine(plan)).toEqual(expected);
    expect(plan.machinesAffected).toBe(50);
    expect(plan.summary).toEqual({ "boot.render": 50 });
    expect(new Set(plan.actions.map((a) => a.detail))).toEqual(new Set(["rendered boot files change (params changed: workers); used at its next install"]));
  });

  it("for a raised generation: reinstall and power cycle that machine only", async () => {
    const repo = newRepo(baseFiles(3));
    repo.commit({ "machines/n2.yaml": machineYaml("n2", 2, { generation: 2 }) }, "n2: reinstall");
    const { plan } = await planJson(repo);
    expect(byMachine(plan)).toEqual({ "lab/n2": ["reinstall", "power.cycle"] });
    expect(plan.actions[0]!.detail).toBe("reinstall debian-12: generation 1 → 2");
  });

  it("for a changed bootEnv: a new boot target for that machine", async () => {
    const repo = newRepo(baseFiles());
    repo.commit({ "machines/n1.yaml": machineYaml("n1", 1, { bootEnv: "local" }) }, "n1: boot local");
    const { plan } = await planJson(repo);
    expect(Object.keys(byMachine(plan))).toEqual(["lab/n1"]);
    expect(plan.actions.find((a) => a.type === "boot.target")?.detail).toBe("boot target debian-12 → local");
  });

  it("for a decommissioned machine: release its address, decommission and power it off", async () => {
    const repo = newRepo(baseFiles());
    repo.commit({ "machines/n1.yaml": machineYaml("n1", 1, { intent: "decommissioned" }) }, "n1: retire");
    const { plan } = await planJson(repo);
    expect(byMachine(plan)).toEqual({ "lab/n1": ["decommission", "reservation.remove", "power.off"] });
  });

  it("for a machine put into maintenance: hands off, no power or boot actions", async () => {
    const repo = newRepo(baseFiles());
    repo.commit({ "machines/n1.yaml": machineYaml("n1", 1, { intent: "maintenance", generation: 5 }) }, "n1: maintenance");
    const { plan } = await planJson(repo);
    expect(byMachine(plan)).toEqual({ "lab/n1": ["maintenance.enter"] });
  });

  it("for a deleted machine file: release its address and forget it", async () => {
    const repo = newRepo(baseFiles());
    repo.commit({ "machines/n2.yaml": null }, "n2: gone");
    const { plan } = await planJson(repo);
    expect(byMachine(plan)).toEqual({ "lab/n2": ["decommission", "reservation.remove"] });
  });

  it("for a commit that changes nothing the machines use: exit 0 and No changes", async () => {
    const repo = newRepo(baseFiles());
    repo.commit({ "README.md": "# lab\n", ".github/ci.yaml": "on: push\n" }, "docs");
    const r = await gitrack("plan", "--repo", repo.dir, "--to", "HEAD");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("No changes: nothing to do.");
  });

  it("for an invalid target: exit 1 with its diagnostics", async () => {
    const repo = newRepo(baseFiles());
    repo.commit({ "machines/n2.yaml": machineYaml("n2", 2, { ip: "10.0.0.11" }) }, "n2: clash");
    const r = await gitrack("plan", "--repo", repo.dir, "--to", "HEAD");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      "HEAD is not valid; nothing would be applied:\n" + "machines/n2.yaml:10:11: ip 10.0.0.11 of machine n2 is also used by machine n1 at machines/n1.yaml:10\n",
    );
    const json = await gitrack("plan", "--repo", repo.dir, "--to", "HEAD", "--format", "json");
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: false, problems: [{ file: "machines/n2.yaml", line: 10, col: 11 }] });
  });

  it("prints the same text twice, and its JSON parses", async () => {
    const repo = newRepo(baseFiles(4));
    repo.commit(
      {
        "machines/n1.yaml": machineYaml("n1", 1, { generation: 2 }),
        "machines/n3.yaml": machineYaml("n3", 3, { ip: "10.0.0.90" }),
        "machines/n5.yaml": machineYaml("n5", 5),
        "profiles/base.yaml": profileYaml("base", { bootEnv: "debian-12", params: { keymap: "de" } }),
      },
      "several",
    );
    const a = await gitrack("plan", "--repo", repo.dir, "--to", "HEAD");
    const b = await gitrack("plan", "--repo", repo.dir, "--to", "HEAD");
    expect(a.code).toBe(2);
    expect(b).toEqual(a);
    const { plan } = await planJson(repo);
    expect(Object.keys(byMachine(plan))).toEqual(["lab/n1", "lab/n2", "lab/n3", "lab/n4", "lab/n5"]);
    expect(a.stdout).toContain(`Plan: ${plan.actions.length} action(s) on 5 machine(s)`);
  });

  it("compares with the first parent of --to by default", async () => {
    const repo = newRepo(baseFiles());
    const first = repo.head();
    const second = repo.commit({ "machines/n3.yaml": machineYaml("n3", 3) }, "add n3");
    const third = repo.commit({ "machines/n1.yaml": machineYaml("n1", 1, { generation: 2 }) }, "n1: reinstall");
    const byDefault = await planJson(repo);
    expect(byDefault.plan.from).toBe(second);
    expect(byDefault.plan.to).toBe(third);
    expect(byMachine(byDefault.plan)).toEqual({ "lab/n1": ["reinstall", "power.cycle"] });
    expect(await planJson(repo, "--from", second)).toEqual(byDefault);
    const wider = await planJson(repo, "--from", first);
    expect(Object.keys(byMachine(wider.plan))).toEqual(["lab/n1", "lab/n3"]);
  });

  it("plans from an empty repository for the first commit", async () => {
    const repo = newRepo(baseFiles());
    const { plan } = await planJson(repo);
    expect(plan.from).toBeNull();
    expect(byMachine(plan)).toEqual({
      "site lab": ["site.add"],
      "lab/n1": ["reservation.add", "boot.target", "power.on"],
      "lab/n2": ["reservation.add", "boot.target", "power.on"],
    });
  });
});
