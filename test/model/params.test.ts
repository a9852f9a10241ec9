// Param precedence, highest first: machine, its profiles in list order, its
// cluster, its site, its bootEnv's defaults. Each layer is proven by removing
// the one above it.
import { describe, expect, it } from "vitest";
import { positionOf } from "../../reconciler/model/yaml-source.js";
import type { Model } from "../../reconciler/model/model.js";
import { LAYERS, LOCALE_OF, layeredFiles, profileYaml, siteRepos, type Layer } from "./site-repo.js";

const newRepo = siteRepos();

async function modelWith(layers: readonly Layer[], extra: Record<string, string> = {}): Promise<Model> {
  const repo = newRepo({ ...layeredFiles(layers), ...extra });
  const model = await repo.model();
  expect(model.diagnostics()).toEqual([]);
  return model;
}

/** Where n1's locale came from, as "Kind name file:line:col". */
function sourceOfLocale(model: Model): string {
  const m = model.findMachines("n1")[0]!;
  const src = m.paramSources.locale!;
  const pos = positionOf(src.doc.file, src.doc.index, src.path);
  return `${src.kind} ${src.name} ${src.doc.file.path}:${pos.line}:${pos.col}`;
}

describe("param precedence", () => {
  it("machine params win over every other layer", async () => {
    const model = await modelWith(LAYERS);
    expect(model.findMachines("n1")[0]!.params.locale).toBe(LOCALE_OF.machine);
    expect(sourceOfLocale(model)).toBe("Machine n1 machines/n1.yaml:15:13");
  });

  it("without the machine's value, the first profile in the list wins", async () => {
    const model = await modelWith(["profile1", "profile2", "cluster", "site"]);
    expect(model.findMachines("n1")[0]!.params.locale).toBe(LOCALE_OF.profile1);
    expect(sourceOfLocale(model)).toBe("Profile p1 profiles/p1.yaml:8:13");
  });

  it("without the first profile's value, the second profile wins over the cluster", async () => {
    const model = await modelWith(["profile2", "cluster", "site"]);
    expect(model.findMachines("n1")[0]!.params.locale).toBe(LOCALE_OF.profile2);
    expect(sourceOfLocale(model)).toBe("Profile p2 profiles/p2.yaml:8:13");
  });

  it("the order of the machine's profile list decides, not the profiles' names", async () => {
    const repo = newRepo(layeredFiles(["profile1", "profile2"]));
    repo.commit({ "machines/n1.yaml": layeredFiles([])["machines/n1.yaml"]!.replace("profiles: [p1, p2]", "profiles: [p2, p1]") });
    const model = await repo.model();
    expect(model.findMachines("n1")[0]!.params.locale).toBe(LOCALE_OF.profile2);
  });

  it("without any profile's value, the cluster wins over the site", async () => {
    const model = await modelWith(["cluster", "site"]);
    expect(model.findMachines("n1")[0]!.params.locale).toBe(LOCALE_OF.cluster);
    expect(sourceOfLocale(model)).toBe("Cluster k8s clusters/k8s.yaml:12:13");
  });

  it("cluster params reach only the cluster's machines", async () => {
    const model = await modelWith(["cluster", "site"]);
    expect(model.findMachines("n2")[0]!.params.locale).toBe(LOCALE_OF.site);
  });

  it("without the cluster's value, the site wins over the bootEnv", async () => {
    const model = await modelWith(["site"]);
    expect(model.findMachines("n1")[0]!.params.locale).toBe(LOCALE_OF.site);
    expect(sourceOfLocale(model)).toBe("Site lab sites/lab.yaml:7:13");
  });

  it("without the site's value, the bootEnv's default is used", async () => {
    const model = await modelWith([]);
    expect(model.findMachines("n1")[0]!.params.locale).toBe(LOCALE_OF.bootEnv);
    expect(sourceOfLocale(model)).toBe("BootEnv debian-12 renderers/bootenvs/debian-12.yaml:29:13");
  });

  it("a cluster role's profiles rank below the machine's own profiles and above the cluster", async () => {
    const files = layeredFiles(["profile1", "cluster"]);
    files["clusters/k8s.yaml"] = files["clusters/k8s.yaml"]!.replace("      count: 1\n", "      count: 1\n      profiles: [role]\n");
    const model = await modelWith([], { ...files, "profiles/role.yaml": profileYaml("role", { params: { locale: "sv_SE.UTF-8", roleOnly: "yes" } }) });
    const n1 = model.findMachines("n1")[0]!;
    expect(n1.profiles).toEqual(["p1", "p2", "role"]);
    expect(n1.params.locale).toBe(LOCALE_OF.profile1);
    expect(n1.params.roleOnly).toBe("yes");
    const withoutP1 = await modelWith([], {
      ...files,
      "profiles/p1.yaml": profileYaml("p1", { bootEnv: "debian-12", params: { other: "x" } }),
      "profiles/role.yaml": profileYaml("role", { params: { locale: "sv_SE.UTF-8" } }),
    });
    expect(withoutP1.findMachines("n1")[0]!.params.locale).toBe("sv_SE.UTF-8");
  });

  it("the bootEnv comes from the machine, else from the first profile that names one", async () => {
    const model = await modelWith([]);
    expect(model.findMachines("n1")[0]!.bootEnv).toBe("debian-12");
    const repo = newRepo(layeredFiles([]));
    repo.commit({ "machines/n1.yaml": layeredFiles([])["machines/n1.yaml"]!.replace("profiles: [p1, p2]", "profiles: [p2, p1]") });
    expect((await repo.model()).findMachines("n1")[0]!.bootEnv).toBe("local");
  });
});
