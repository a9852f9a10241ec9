// advanceModel (the daemon's path: re-parse only the files a commit changed)
// must give the same model as a cold loadModel of the same commit.
import { describe, expect, it } from "vitest";
import { formatDiagnostic } from "../../reconciler/model/diagnostics.js";
import { advanceModel, loadModel } from "../../reconciler/model/load.js";
import { machineFingerprint, type Model } from "../../reconciler/model/model.js";
import { positionOf } from "../../reconciler/model/yaml-source.js";
import { baseFiles, machineYaml, profileYaml, siteYaml, siteRepos, clusterYaml, type Files } from "./site-repo.js";

const newRepo = siteRepos();

const SHA = "b".repeat(64);
const tiny = (line: string) =>
  [
    "apiVersion: gitrack/v1",
    "kind: BootEnv",
    "metadata:",
    "  name: tiny",
    "spec:",
    "  kernel:",
    "    url: http://mirror.lab/vmlinuz",
    `    sha256: ${SHA}`,
    "  cmdline: console=ttyS0",
    "  files:",
    "    - name: answers.cfg",
    "      template: |",
    "        host {{ machine.hostname }}",
    `        ${line}`,
    "",
  ].join("\n");

/** Eight machines; odd ones are workers in cluster k8s and use profile web (bootEnv tiny). */
function fleet(): Record<string, string> {
  const files = baseFiles(0);
  files["sites/lab.yaml"] = siteYaml({ params: { timezone: "UTC", ntpServer: "10.0.0.1" } });
  files["profiles/web.yaml"] = profileYaml("web", { bootEnv: "tiny", params: { workers: "4" } });
  files["bootenvs/tiny.yaml"] = tiny("ntp {{ params.ntpServer }}");
  files["clusters/k8s.yaml"] = clusterYaml("k8s", ["    worker:", "      selector: {matchLabels: {role: worker}}", "      count: 4"], {
    params: { pods: "10.244.0.0/16" },
  });
  for (let i = 1; i <= 8; i++) {
    const worker = i % 2 === 1;
    files[`machines/n${i}.yaml`] = machineYaml(`n${i}`, i, {
      labels: worker ? { rack: "r1", role: "worker" } : { rack: "r2" },
      profiles: worker ? ["web", "base"] : ["base"],
    });
  }
  return files;
}

/** Everything a model says about a commit, as comparable text. */
function snapshot(model: Model) {
  const machines: Record<string, unknown> = {};
  for (const key of [...model.machines.keys()].sort()) {
    const m = model.machines.get(key)!;
    const sources: Record<string, string> = {};
    for (const [p, s] of Object.entries(m.paramSources)) {
      const pos = positionOf(s.doc.file, s.doc.index, s.path);
      sources[p] = `${s.kind} ${s.name} ${s.doc.file.path}:${pos.line}:${pos.col}`;
    }
    machines[key] = { fingerprint: machineFingerprint(m), cluster: m.cluster ?? null, sources, diagnostics: m.diagnostics.map(formatDiagnostic) };
  }
  return { diagnostics: model.diagnostics().map(formatDiagnostic), machines };
}

/**
 * Commits each step in turn; after each, advances the previous model and
 * checks it against a cold load. Returns the affected sets.
 */
async function stepThrough(steps: Files[]): Promise<{ affected: Array<Set<string>>; models: Model[] }> {
  const repo = newRepo(fleet());
  const git = repo.open();
  let commit = repo.head();
  let model = await loadModel(git, commit);
  expect(model.diagnostics().map(formatDiagnostic)).toEqual([]);
  const affected: Array<Set<string>> = [];
  const models: Model[] = [];
  for (const step of steps) {
    const next = repo.commit(step, "step");
    const advanced = await advanceModel(git, model, commit, next);
    const cold = await loadModel(git, next);
    expect(snapshot(advanced.model)).toEqual(snapshot(cold));
    affected.push(advanced.affected);
    models.push(advanced.model);
    model = advanced.model;
    commit = next;
  }
  return { affected, models };
}

describe("advanceModel across one commit equals a cold load", () => {
  it("for a machine edit, re-resolving that machine only", async () => {
    const { affected } = await stepThrough([{ "machines/n2.yaml": machineYaml("n2", 2, { labels: { rack: "r2" }, ip: "10.0.0.77" }) }]);
    expect([...affected[0]!]).toEqual(["lab/n2"]);
  });

  it("for a profile edit, re-resolving the machines that use it", async () => {
    const { affected, models } = await stepThrough([{ "profiles/web.yaml": profileYaml("web", { bootEnv: "tiny", params: { workers: "8" } }) }]);
    expect([...affected[0]!].sort()).toEqual(["lab/n1", "lab/n3", "lab/n5", "lab/n7"]);
    expect(models[0]!.findMachines("n3")[0]!.params.workers).toBe(8);
  });

  it("for a site edit that puts a machine inside the dynamic range", async () => {
    const site = siteYaml({ params: { timezone: "UTC", ntpServer: "10.0.0.1" } }).replace("start: 10.0.0.200", "start: 10.0.0.15");
    const { models } = await stepThrough([{ "sites/lab.yaml": site }]);
    expect(models[0]!.diagnostics().map(formatDiagnostic)).toContain(
      "machines/n5.yaml:10:11: ip 10.0.0.15 is inside the dynamic range 10.0.0.15-10.0.0.249 of subnet prov",
    );
  });

  it("for a site param edit that templates read", async () => {
    const { models } = await stepThrough([{ "sites/lab.yaml": siteYaml({ params: { timezone: "UTC" } }) }]);
    expect(models[0]!.diagnostics()).toHaveLength(1);
  });

  it("for a deleted machine file and a deleted profile", async () => {
    const { models } = await stepThrough([{ "machines/n8.yaml": null }, { "profiles/web.yaml": null }]);
    expect(models[0]!.machines.has("lab/n8")).toBe(false);
    expect(models[1]!.diagnostics().filter((d) => d.message === 'profile "web" is not defined')).toHaveLength(4);
  });

  it("for a deleted worker that leaves the cluster selector short", async () => {
    await stepThrough([{ "machines/n7.yaml": null }]);
  });

  it("for a file that becomes invalid YAML, then valid again", async () => {
    const good = machineYaml("n3", 3, { labels: { rack: "r1", role: "worker" }, profiles: ["web", "base"] });
    const { models } = await stepThrough([{ "machines/n3.yaml": good.replace("profiles: [web, base]", "profiles: [web, base") }, { "machines/n3.yaml": good }]);
    expect(models[0]!.isValid()).toBe(false);
    expect(models[1]!.diagnostics()).toEqual([]);
  });

  it("for a file that fails its schema, then is fixed", async () => {
    const { models } = await stepThrough([{ "machines/n4.yaml": machineYaml("n4", 4, { labels: { rack: "r2" }, mac: "nope" }) }, { "machines/n4.yaml": machineYaml("n4", 4, { labels: { rack: "r2" } }) }]);
    expect(models[0]!.machines.has("lab/n4")).toBe(false);
    expect(models[1]!.machines.has("lab/n4")).toBe(true);
  });

  it("for a BootEnv template edit, a cluster edit and a label change that moves a machine into the cluster", async () => {
    await stepThrough([
      { "bootenvs/tiny.yaml": tiny("ntp {{ params.ntpServer }} {{ params.tz }}") },
      { "clusters/k8s.yaml": fleet()["clusters/k8s.yaml"]!.replace("pods: 10.244.0.0/16", "pods: 10.245.0.0/16") },
      { "machines/n2.yaml": machineYaml("n2", 2, { labels: { rack: "r2", role: "worker" } }) },
    ]);
  });

  it("for a file renamed to another path, and a duplicate name added then removed", async () => {
    const n6 = fleet()["machines/n6.yaml"]!;
    await stepThrough([
      { "machines/n6.yaml": null, "machines/rack2/n6.yaml": n6 },
      { "machines/a-copy.yaml": n6.replace('"52:54:00:00:00:06"', '"52:54:00:00:06:06"').replace("10.0.0.16", "10.0.0.66") },
      { "machines/a-copy.yaml": null },
    ]);
  });
});
