// Every kind of problem `validate` reports, each at the exact FILE:LINE:COL a
// person should open, against real commits read through GitRepo.
import { describe, expect, it } from "vitest";
import { baseFiles, machineYaml, profileYaml, siteYaml, siteRepos, clusterYaml, type Files } from "./site-repo.js";

const newRepo = siteRepos();

/** The problems of a commit holding baseFiles() with `changes` applied. */
async function problemsWith(changes: Files, count = 2): Promise<string[]> {
  const repo = newRepo(baseFiles(count));
  repo.commit(changes, "the change under test");
  return repo.problems();
}

const SHA = "a".repeat(64);

/** A repository BootEnv "tiny"; its answers.cfg block scalar starts on line 14. */
function tinyBootEnv(template: string[], opts: { sha256?: string; params?: string[] } = {}): string {
  return [
    "apiVersion: gitrack/v1",
    "kind: BootEnv",
    "metadata:",
    "  name: tiny",
    "spec:",
    "  purpose: install",
    "  kernel:",
    "    url: http://mirror.lab/vmlinuz",
    `    sha256: ${opts.sha256 ?? SHA}`,
    "  cmdline: console=ttyS0",
    "  files:",
    "    - name: answers.cfg",
    "      template: |",
    ...template.map((l) => `        ${l}`),
    ...(opts.params ? ["  params:", ...opts.params.map((p) => `    ${p}`)] : []),
    "",
  ].join("\n");
}

describe("a valid repository", () => {
  it("has no diagnostics", async () => {
    expect(await problemsWith({})).toEqual([]);
  });
});

describe("YAML syntax", () => {
  it("reports an unclosed flow sequence where the parser finds the next key", async () => {
    const text = machineYaml("n1", 1).replace("profiles: [base]", "profiles: [base");
    expect(await problemsWith({ "machines/n1.yaml": text })).toEqual([
      "machines/n1.yaml:12:3: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ]);
  });

  it("reports a key indented one space less than its siblings at that line", async () => {
    const text = machineYaml("n1", 1).replace("  generation: 1", " generation: 1");
    const problems = await problemsWith({ "machines/n1.yaml": text });
    expect(problems).toEqual(["machines/n1.yaml:12:1: All mapping items must start at the same column"]);
  });

  it("reports a duplicate key at its second occurrence and names it", async () => {
    const text = machineYaml("n1", 1).replace("  generation: 1\n", "  generation: 1\n  site: lab\n");
    expect(await problemsWith({ "machines/n1.yaml": text })).toEqual([
      'machines/n1.yaml:13:3: duplicate key "site" (it is already set above in the same map)',
    ]);
  });

  it("reports a quoted MAC whose closing quote is missing on the line of the opening quote", async () => {
    const text = machineYaml("n1", 1).replace('"52:54:00:00:00:01"', '"52:54:00:00:00:01');
    const problems = await problemsWith({ "machines/n1.yaml": text });
    expect(problems).toEqual(['machines/n1.yaml:9:12: Missing closing "quote']);
  });

  it("reports syntax problems in two documents of one file, one line each", async () => {
    const dup = (name: string) => profileYaml(name).replace("kind: Profile", "kind: Profile\nkind: Profile");
    expect(await problemsWith({ "profiles/two.yaml": dup("extra") + "---\n" + dup("more") })).toEqual([
      'profiles/two.yaml:3:1: duplicate key "kind" (it is already set above in the same map)',
      'profiles/two.yaml:11:1: duplicate key "kind" (it is already set above in the same map)',
    ]);
  });

  it("reports a tab used for indentation", async () => {
    const text = machineYaml("n1", 1).replace("  generation: 1", "\tgeneration: 1");
    const problems = await problemsWith({ "machines/n1.yaml": text });
    expect(problems).toEqual(["machines/n1.yaml:12:1: Tabs are not allowed as indentation"]);
  });

  it("reports a problem in the second document of a file at its own line", async () => {
    const two = profileYaml("extra") + "---\n" + profileYaml("more").replace("kind: Profile", "kind: Profile\nkind: Site");
    expect(await problemsWith({ "profiles/two.yaml": two })).toEqual([
      'profiles/two.yaml:10:1: duplicate key "kind" (it is already set above in the same map)',
    ]);
  });
});

describe("schema violations", () => {
  it("points an unknown field at its key", async () => {
    const text = machineYaml("n1", 1).replace("  generation: 1\n", "  generation: 1\n  colour: red\n");
    expect(await problemsWith({ "machines/n1.yaml": text })).toEqual(['machines/n1.yaml:13:3: spec: unknown field "colour"']);
  });

  it("points an unknown metadata field at its key", async () => {
    const text = machineYaml("n1", 1).replace("  name: n1\n", "  name: n1\n  owner: ada\n");
    expect(await problemsWith({ "machines/n1.yaml": text })).toEqual(['machines/n1.yaml:5:3: metadata: unknown field "owner"']);
  });

  it("points a malformed MAC at the value", async () => {
    const problems = await problemsWith({ "machines/n1.yaml": machineYaml("n1", 1, { mac: "52:54:00:00:00:zz" }) });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^machines\/n1\.yaml:9:12: spec\.interfaces\[0\]\.mac: "52:54:00:00:00:zz" is not a MAC address/);
  });

  it("points a malformed IP at the value", async () => {
    const problems = await problemsWith({ "machines/n1.yaml": machineYaml("n1", 1, { ip: "10.0.0.300" }) });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^machines\/n1\.yaml:10:11: spec\.interfaces\[0\]\.ip: "10\.0\.0\.300" is not an IPv4 address/);
  });

  it("points a missing required field at its parent map", async () => {
    const text = machineYaml("n1", 1).replace("  site: lab\n", "");
    expect(await problemsWith({ "machines/n1.yaml": text })).toEqual(['machines/n1.yaml:7:3: spec: missing required field "site"']);
  });

  it("points a value of the wrong type at the value", async () => {
    const text = machineYaml("n1", 1).replace("generation: 1", "generation: two");
    expect(await problemsWith({ "machines/n1.yaml": text })).toEqual(["machines/n1.yaml:12:15: spec.generation: must be integer"]);
  });

  it("points an unknown power driver at the driver", async () => {
    const text = machineYaml("n1", 1).replace("power: {driver: manual}", "power: {driver: ilo}");
    const problems = await problemsWith({ "machines/n1.yaml": text });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toBe('machines/n1.yaml:13:19: spec.power.driver: unknown driver "ilo" (expected one of "manual", "qemu", "ipmi", "redfish")');
  });

  it("points an unknown kind at the kind", async () => {
    const text = machineYaml("n1", 1).replace("kind: Machine", "kind: Machin");
    expect(await problemsWith({ "machines/n1.yaml": text })).toEqual([
      'machines/n1.yaml:2:7: unknown kind "Machin" (expected one of Site, Profile, Machine, Cluster, BootEnv)',
    ]);
  });

  it("points a wrong apiVersion at the value", async () => {
    const text = machineYaml("n1", 1).replace("apiVersion: gitrack/v1", "apiVersion: gitrack/v2");
    expect(await problemsWith({ "machines/n1.yaml": text })).toEqual(['machines/n1.yaml:1:13: apiVersion must be "gitrack/v1"']);
  });

  it("points a malformed sha256 at the value", async () => {
    const be = tinyBootEnv(["hostname {{ machine.hostname }}"], { sha256: "ABC123" });
    const problems = await problemsWith({ "bootenvs/tiny.yaml": be });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^bootenvs\/tiny\.yaml:9:13: spec\.kernel\.sha256: "ABC123" is not a sha256 digest/);
  });
});

describe("names", () => {
  it("reports a second Profile of the same name where it is defined, naming the first", async () => {
    expect(await problemsWith({ "profiles/zz-copy.yaml": profileYaml("base", { bootEnv: "debian-12" }) })).toEqual([
      'profiles/zz-copy.yaml:4:9: duplicate Profile name "base": already defined at profiles/base.yaml:4',
    ]);
  });

  it("reports a second Machine of the same name in the same site", async () => {
    expect(await problemsWith({ "machines/zz-copy.yaml": machineYaml("n1", 9) })).toEqual([
      'machines/zz-copy.yaml:4:9: duplicate Machine name "n1" in site "lab": already defined at machines/n1.yaml:4',
    ]);
  });

  it("allows the same machine name in two sites", async () => {
    expect(
      await problemsWith({
        "sites/edge.yaml": siteYaml({ name: "edge" }),
        "machines/edge-n1.yaml": machineYaml("n1", 9, { site: "edge" }),
      }),
    ).toEqual([]);
  });
});

describe("addresses", () => {
  it("reports a MAC used twice (in another case) naming both places", async () => {
    expect(await problemsWith({ "machines/n2.yaml": machineYaml("n2", 2, { mac: "52:54:00:00:00:01".toUpperCase() }) })).toEqual([
      "machines/n2.yaml:9:12: MAC 52:54:00:00:00:01 of machine n2 is also used by machine n1 at machines/n1.yaml:9",
    ]);
  });

  it("reports an IP used twice in a site naming both places", async () => {
    expect(await problemsWith({ "machines/n2.yaml": machineYaml("n2", 2, { ip: "10.0.0.11" }) })).toEqual([
      "machines/n2.yaml:10:11: ip 10.0.0.11 of machine n2 is also used by machine n1 at machines/n1.yaml:10",
    ]);
  });

  it("allows the same IP in two sites", async () => {
    expect(
      await problemsWith({
        "sites/edge.yaml": siteYaml({ name: "edge" }),
        "machines/edge-n1.yaml": machineYaml("e1", 9, { site: "edge", ip: "10.0.0.11" }),
      }),
    ).toEqual([]);
  });

  it("reports an IP outside every subnet of its site", async () => {
    expect(await problemsWith({ "machines/n2.yaml": machineYaml("n2", 2, { ip: "10.0.1.5" }) })).toEqual([
      "machines/n2.yaml:10:11: ip 10.0.1.5 is outside every subnet of site lab (10.0.0.0/24)",
    ]);
  });

  it("reports an IP inside the dynamic range", async () => {
    expect(await problemsWith({ "machines/n2.yaml": machineYaml("n2", 2, { ip: "10.0.0.210" }) })).toEqual([
      "machines/n2.yaml:10:11: ip 10.0.0.210 is inside the dynamic range 10.0.0.200-10.0.0.249 of subnet prov",
    ]);
  });

  it("accepts the addresses just outside the dynamic range", async () => {
    expect(
      await problemsWith({
        "machines/n1.yaml": machineYaml("n1", 1, { ip: "10.0.0.199" }),
        "machines/n2.yaml": machineYaml("n2", 2, { ip: "10.0.0.250" }),
      }),
    ).toEqual([]);
  });
});

describe("subnets", () => {
  /** A site "edge" whose one subnet has these lines after its name (indented 6); the subnet starts on line 9. */
  const edge = (lines: string[]) =>
    ["apiVersion: gitrack/v1", "kind: Site", "metadata:", "  name: edge", "spec:", "  params: {timezone: UTC}", "  subnets:", "    - name: far", ...lines.map((l) => `      ${l}`), "  boot: {advertise: 10.9.0.1}", ""].join("\n");

  it("rejects a served subnet of /0 (it would offer the mask 0.0.0.0) and of /31, at the cidr", async () => {
    expect(await problemsWith({ "sites/edge.yaml": edge(["cidr: 0.0.0.0/0"]) })).toEqual([
      "sites/edge.yaml:9:13: 0.0.0.0/0: a subnet gitrack serves DHCP on must be /8 to /30 (set dhcp: off for others)",
    ]);
    expect(await problemsWith({ "sites/edge.yaml": edge(["cidr: 10.9.0.0/31"]) })).toEqual([
      "sites/edge.yaml:9:13: 10.9.0.0/31: a subnet gitrack serves DHCP on must be /8 to /30 (set dhcp: off for others)",
    ]);
  });

  it("accepts a /31 or /0 that gitrack does not serve", async () => {
    expect(await problemsWith({ "sites/edge.yaml": edge(["cidr: 10.9.0.0/31", "dhcp: off"]) })).toEqual([]);
  });

  it("rejects a dynamic range of more than 65,536 addresses", async () => {
    expect(await problemsWith({ "sites/edge.yaml": edge(["cidr: 10.0.0.0/8", "range: {start: 10.9.0.1, end: 10.10.0.1}"]) })).toEqual([
      "sites/edge.yaml:10:14: range 10.9.0.1-10.10.0.1 holds more than 65536 addresses",
    ]);
  });

  it("rejects relays on a subnet not declared relayed, and a relay outside its subnet, each at its place", async () => {
    expect(await problemsWith({ "sites/edge.yaml": edge(["cidr: 10.9.0.0/16", "relays: [10.9.0.2]"]) })).toEqual([
      "sites/edge.yaml:10:15: relays are listed but subnet far is not relayed (set relayed: true)",
    ]);
    expect(await problemsWith({ "sites/edge.yaml": edge(["cidr: 10.9.0.0/16", "relayed: true", "relays: [10.9.0.2, 10.10.0.2]"]) })).toEqual([
      "sites/edge.yaml:11:26: relay 10.10.0.2 is outside 10.9.0.0/16 (a relay's giaddr is its address on the relayed subnet)",
    ]);
  });
});

describe("references", () => {
  it("reports a machine's missing site at spec.site", async () => {
    expect(await problemsWith({ "machines/n2.yaml": machineYaml("n2", 2, { site: "nowhere" }) })).toEqual([
      'machines/n2.yaml:7:9: site "nowhere" is not defined',
    ]);
  });

  it("reports a machine's missing profile at its place in the list", async () => {
    expect(await problemsWith({ "machines/n2.yaml": machineYaml("n2", 2, { profiles: ["base", "missing"] }) })).toEqual([
      'machines/n2.yaml:11:20: profile "missing" is not defined',
    ]);
  });

  it("reports a machine's missing bootEnv at spec.bootEnv", async () => {
    expect(await problemsWith({ "machines/n2.yaml": machineYaml("n2", 2, { bootEnv: "nope" }) })).toEqual([
      'machines/n2.yaml:13:12: bootEnv "nope" is not defined',
    ]);
  });

  it("reports a profile's missing bootEnv once, at the profile", async () => {
    expect(await problemsWith({ "profiles/base.yaml": profileYaml("base", { bootEnv: "nope" }) })).toEqual([
      'profiles/base.yaml:6:12: bootEnv "nope" is not defined',
    ]);
  });

  it("reports a site's missing unknownBootEnv", async () => {
    expect(await problemsWith({ "sites/lab.yaml": siteYaml({ unknownBootEnv: "nope" }) })).toEqual([
      'sites/lab.yaml:15:21: bootEnv "nope" is not defined',
    ]);
  });

  it("reports a machine without any bootEnv", async () => {
    expect(await problemsWith({ "machines/n2.yaml": machineYaml("n2", 2, { profiles: [] }) })).toEqual([
      "machines/n2.yaml:7:3: machine n2 has no bootEnv: set spec.bootEnv or use a profile that sets one",
    ]);
  });
});

describe("clusters", () => {
  const cluster = (site: string, roles: string[]) => clusterYaml("k8s", roles, { site });

  it("reports a cluster's missing site", async () => {
    const c = cluster("nowhere", ["    control:", "      machines: [n1]", "      count: 1"]);
    const problems = await problemsWith({ "clusters/k8s.yaml": c });
    expect(problems[0]).toBe('clusters/k8s.yaml:6:9: site "nowhere" is not defined');
  });

  it("reports a cluster role's missing machine at its place in the list", async () => {
    const c = cluster("lab", ["    control:", "      machines: [n1, n9]", "      count: 2"]);
    expect(await problemsWith({ "clusters/k8s.yaml": c })).toEqual([
      'clusters/k8s.yaml:9:22: cluster k8s role control: machine "n9" is not defined in site "lab"',
      "clusters/k8s.yaml:10:14: cluster k8s role control: lists 1 machine(s), fewer than count 2",
    ]);
  });

  it("reports a cluster role's missing profile at its place in the list", async () => {
    const c = cluster("lab", ["    control:", "      machines: [n1]", "      count: 1", "      profiles: [base, gpu]"]);
    expect(await problemsWith({ "clusters/k8s.yaml": c })).toEqual(['clusters/k8s.yaml:11:24: profile "gpu" is not defined']);
  });

  it("reports a role whose selector matches fewer machines than its count", async () => {
    const c = cluster("lab", ["    worker:", "      selector: {matchLabels: {rack: r1}}", "      count: 3"]);
    expect(await problemsWith({ "clusters/k8s.yaml": c })).toEqual([
      "clusters/k8s.yaml:9:17: cluster k8s role worker: selector rack=r1 matches 2 machine(s), fewer than count 3",
    ]);
  });

  it("accepts a selector that matches at least its count", async () => {
    const c = cluster("lab", ["    worker:", "      selector: {matchLabels: {rack: r1}}", "      count: 2"]);
    expect(await problemsWith({ "clusters/k8s.yaml": c })).toEqual([]);
  });
});

describe("templates", () => {
  const useTiny = { "profiles/base.yaml": profileYaml("base", { bootEnv: "tiny" }) };
  const answers = ["# answers for {{ machine.name }}", "hostname {{ machine.hostname }}", "ntp {{ params.ntpServer }}"];

  it("reports a param nobody sets at the template line, naming the machines and the template file", async () => {
    const problems = await problemsWith({ ...useTiny, "bootenvs/tiny.yaml": tinyBootEnv(answers) });
    expect(problems).toEqual([
      "bootenvs/tiny.yaml:16:16: BootEnv tiny file answers.cfg uses params.ntpServer, which no one sets for machine n1, n2 (set it on the machine, a profile, its cluster, its site or the bootEnv's params)",
    ]);
  });

  it("names only the machines that lack the param", async () => {
    const problems = await problemsWith({
      ...useTiny,
      "bootenvs/tiny.yaml": tinyBootEnv(answers),
      "machines/n1.yaml": machineYaml("n1", 1, { params: { ntpServer: "10.0.0.1" } }),
    });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("which no one sets for machine n2 (");
  });

  it("counts the machines beyond the first three", async () => {
    const problems = await problemsWith({ ...useTiny, "bootenvs/tiny.yaml": tinyBootEnv(answers) }, 5);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("for machine n1, n2, n3 and 2 more");
  });

  it("is satisfied by a site param", async () => {
    expect(await problemsWith({ ...useTiny, "bootenvs/tiny.yaml": tinyBootEnv(answers), "sites/lab.yaml": siteYaml({ params: { ntpServer: "10.0.0.1" } }) })).toEqual([]);
  });

  it("is satisfied by the bootEnv's own default", async () => {
    expect(await problemsWith({ ...useTiny, "bootenvs/tiny.yaml": tinyBootEnv(answers, { params: ["ntpServer: pool.ntp.org"] }) })).toEqual([]);
  });

  it("does not require a param guarded by if or filtered by default", async () => {
    const guarded = ["{% if params.ntpServer %}ntp {{ params.ntpServer }}{% endif %}", "proxy {{ params.proxy | default: \"\" }}"];
    expect(await problemsWith({ ...useTiny, "bootenvs/tiny.yaml": tinyBootEnv(guarded) })).toEqual([]);
  });

  it("reports a param nobody sets in a folded (>-) command line at its own line, not where folding put it", async () => {
    const be = tinyBootEnv(["host {{ machine.hostname }}"]).replace(
      "  cmdline: console=ttyS0\n",
      "  cmdline: >-\n    console=ttyS0\n    priority=critical\n    ntp={{ params.ntpServer }}\n",
    );
    expect(await problemsWith({ ...useTiny, "bootenvs/tiny.yaml": be })).toEqual([
      "bootenvs/tiny.yaml:13:12: BootEnv tiny cmdline uses params.ntpServer, which no one sets for machine n1, n2 (set it on the machine, a profile, its cluster, its site or the bootEnv's params)",
    ]);
  });

  it("reports a template syntax error in a folded command line at its own line", async () => {
    const be = tinyBootEnv(["host {{ machine.hostname }}"]).replace("  cmdline: console=ttyS0\n", "  cmdline: >-\n    console=ttyS0\n    {% if params.x %}x\n");
    expect(await problemsWith({ ...useTiny, "bootenvs/tiny.yaml": be })).toEqual(["bootenvs/tiny.yaml:12:5: BootEnv tiny cmdline: tag {% if params.x %} not closed"]);
  });

  it("reports a template syntax error at the tag", async () => {
    const broken = ["# answers", "{% if machine.known %}", "hostname {{ machine.hostname }}"];
    expect(await problemsWith({ ...useTiny, "bootenvs/tiny.yaml": tinyBootEnv(broken) })).toEqual([
      "bootenvs/tiny.yaml:15:9: BootEnv tiny file answers.cfg: tag {% if machine.known %} not closed",
    ]);
  });

  it("reports a name templates cannot see", async () => {
    const typo = ["hostname {{ machin.hostname }}"];
    expect(await problemsWith({ ...useTiny, "bootenvs/tiny.yaml": tinyBootEnv(typo) })).toEqual([
      'bootenvs/tiny.yaml:14:21: BootEnv tiny file answers.cfg: "machin" is not something templates can see (machine, params, site, bootEnv, urls)',
    ]);
  });
});

describe("several problems", () => {
  it("are all reported, sorted by file and line", async () => {
    const problems = await problemsWith({
      "machines/n1.yaml": machineYaml("n1", 1, { mac: "zz" }),
      "machines/n2.yaml": machineYaml("n2", 2, { ip: "10.0.0.210" }),
      "profiles/base.yaml": profileYaml("base", { bootEnv: "nope" }),
    });
    expect(problems.map((p) => p.split(": ")[0])).toEqual(["machines/n1.yaml:9:12", "machines/n2.yaml:10:11", "profiles/base.yaml:6:12"]);
  });
});
