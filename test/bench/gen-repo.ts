// A realistic site repository of N machines in R racks, written straight into
// Git's object database with one `git fast-import` (10,000 files in about a
// second; `git add` of a working tree takes many times longer), plus the
// commits the benchmarks plan between:
//
//   bench/base      the fleet
//   bench/one-file  base + one machine file changed (its second MAC)
//   bench/profile   base + one change to profile class-c, used by 10 racks
//                   (exactly machines/racks*10 machines; 1,000 for 10k/100)
//
// Layout: sites/dc1.yaml (a /20 of provisioning network per 16 racks, a
// discovery /20 with the only dynamic range, a data /16 without DHCP),
// profiles/*.yaml (base with bootEnv debian-12, one per rack class, one per
// role), clusters/prod.yaml (selector roles), machines/rNN/rNN-nNNN.yaml.
import { spawn } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";

export interface GenOptions {
  machines: number;
  racks: number;
}

export interface GeneratedRepo {
  dir: string;
  machines: number;
  racks: number;
  files: number;
  profiles: number;
  /** Full commit ids of the three scenarios. */
  base: string;
  oneFile: string;
  profile: string;
  /** What differs in each scenario, in words. */
  oneFileChange: string;
  profileChange: string;
  /** How many machines use the changed profile. */
  profileMachines: number;
}

/** Machines per rack class: racks are grouped 10 at a time into classes a, b, c ... */
const RACKS_PER_CLASS = 10;
const CLASS_NAMES = "abcdefghijklmnopqrstuvwxyz";
const ROLES = ["control", "worker", "storage"] as const;
type Role = (typeof ROLES)[number];

const pad = (n: number, w: number) => String(n).padStart(w, "0");
const rackName = (r: number) => `r${pad(r, 2)}`;
const machineName = (r: number, n: number) => `${rackName(r)}-n${pad(n, 3)}`;
const rackClass = (r: number) => CLASS_NAMES[Math.floor(r / RACKS_PER_CLASS) % CLASS_NAMES.length]!;

function mac(prefix: number, r: number, n: number): string {
  const h = (x: number) => x.toString(16).padStart(2, "0");
  return ["52", "54", h(prefix), h(r & 255), h((n >> 8) & 255), h(n & 255)].join(":");
}

/** Provisioning address: rack r owns 10.100.r.0/24 (inside one of the /20s), hosts .10 upwards. */
function provIp(r: number, n: number): string {
  return `10.100.${r}.${10 + n}`;
}

function roleOf(r: number, n: number, perRack: number): Role {
  if (r < 3 && n === 0) return "control";
  if (n >= perRack - Math.max(1, Math.floor(perRack / 10))) return "storage";
  return "worker";
}

function siteYaml(racks: number): string {
  const groups = Math.ceil(racks / 16);
  const subnets: string[] = [];
  for (let g = 0; g < groups; g++) {
    subnets.push(
      `    - name: prov-${g}`,
      `      cidr: 10.100.${g * 16}.0/20`,
      `      gateway: 10.100.${g * 16}.1`,
      `      dns: [10.100.${g * 16}.2, 10.100.${g * 16}.3]`,
      `      domain: dc1.example.net`,
      `      dhcp: serve`,
      `      relayed: ${g === 0 ? "false" : "true"}`,
      `      leaseSeconds: 86400`,
    );
  }
  const d = groups * 16;
  subnets.push(
    `    - name: discovery`,
    `      cidr: 10.100.${d}.0/20`,
    `      gateway: 10.100.${d}.1`,
    `      dns: [10.100.0.2]`,
    `      dhcp: serve`,
    `      relayed: true`,
    `      range: {start: 10.100.${d}.10, end: 10.100.${d + 15}.250}`,
    `      leaseSeconds: 3600`,
    `    - name: data`,
    `      cidr: 10.200.0.0/16`,
    `      dhcp: "off"`,
  );
  return `# yaml-language-server: $schema=../.gitrack/schemas/site.schema.json
apiVersion: gitrack/v1
kind: Site
metadata:
  name: dc1
  labels: {region: eu-west}
spec:
  params:
    timezone: Europe/Amsterdam
    ntpServer: 10.100.0.2
    mirror: mirror.dc1.example.net
    domain: dc1.example.net
  subnets:
${subnets.join("\n")}
  boot:
    advertise: 10.100.0.1
    httpPort: 8080
    unknownBootEnv: discovery
  rollout:
    maxUnavailable: 5%
    failureThreshold: 20
`;
}

function profileYaml(name: string, body: string): string {
  return `# yaml-language-server: $schema=../.gitrack/schemas/profile.schema.json
apiVersion: gitrack/v1
kind: Profile
metadata:
  name: ${name}
spec:
${body}`;
}

function profiles(racks: number, classChange = false): Map<string, string> {
  const out = new Map<string, string>();
  out.set(
    "profiles/base.yaml",
    profileYaml(
      "base",
      `  bootEnv: debian-12
  params:
    locale: en_US.UTF-8
    keymap: us
    installDisk: /dev/sda
    extraPackages: "chrony lldpd ipmitool"
    sshAuthorizedKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBench ops@dc1"
`,
    ),
  );
  const classes = Math.ceil(racks / RACKS_PER_CLASS);
  for (let c = 0; c < classes; c++) {
    const cls = CLASS_NAMES[c % CLASS_NAMES.length]!;
    // Scenario (b): class-c moves to another mirror and gains a kernel argument.
    const changed = classChange && cls === "c";
    out.set(
      `profiles/class-${cls}.yaml`,
      profileYaml(
        `class-${cls}`,
        `  params:
    rackClass: ${cls}
    mirror: ${changed ? `mirror2.dc1.example.net` : `mirror-${cls}.dc1.example.net`}
    kernelArgs: "console=ttyS1,115200n8${changed ? " intel_iommu=on" : ""}"
`,
      ),
    );
  }
  out.set("profiles/control.yaml", profileYaml("control", `  params:\n    role: control\n    installDisk: /dev/nvme0n1\n`));
  out.set("profiles/worker.yaml", profileYaml("worker", `  params:\n    role: worker\n`));
  out.set("profiles/storage.yaml", profileYaml("storage", `  params:\n    role: storage\n    installDisk: /dev/nvme0n1\n    extraPackages: "chrony lldpd ipmitool nvme-cli mdadm"\n`));
  return out;
}

function clusterYaml(counts: Record<Role, number>): string {
  return `# yaml-language-server: $schema=../.gitrack/schemas/cluster.schema.json
apiVersion: gitrack/v1
kind: Cluster
metadata:
  name: prod
spec:
  site: dc1
  roles:
    control:
      selector: {matchLabels: {role: control}}
      count: ${counts.control}
    worker:
      selector: {matchLabels: {role: worker}}
      count: ${counts.worker}
    storage:
      selector: {matchLabels: {role: storage}}
      count: ${counts.storage}
  params:
    cluster: prod
`;
}

function machineYaml(r: number, n: number, perRack: number, variant = 0): string {
  const name = machineName(r, n);
  const role = roleOf(r, n, perRack);
  const twoNics = role !== "worker" || n % 2 === 0;
  const nics = [`    - name: eno1\n      mac: "${mac(0x10, r, n)}"\n      ip: ${provIp(r, n)}`];
  if (twoNics) nics.push(`    - name: eno2\n      mac: "${mac(variant ? 0x30 : 0x20, r, n)}"\n      ip: 10.200.${r}.${10 + n}`);
  const manual = n % 10 === 9;
  const power = manual
    ? `  power:\n    driver: manual\n    note: "rack ${rackName(r)} PDU outlet ${n + 1}"`
    : `  power:\n    driver: ipmi\n    address: 10.101.${r}.${10 + n}\n    username: admin\n    credentialsRef: {secret: bmc-${rackName(r)}, key: password}`;
  return `# yaml-language-server: $schema=../../.gitrack/schemas/machine.schema.json
apiVersion: gitrack/v1
kind: Machine
metadata:
  name: ${name}
  labels: {rack: ${rackName(r)}, role: ${role}, class: ${rackClass(r)}}
  annotations: {asset-tag: "AT-${pad(r * 1000 + n, 6)}"}
spec:
  site: dc1
  interfaces:
${nics.join("\n")}
  profiles: [${role}, class-${rackClass(r)}, base]
  params:
    hostname: ${name}.dc1.example.net
    serialPort: ttyS${n % 2}
  intent: provisioned
  generation: 1
${power}
  serial: SN${pad(r, 2)}${pad(n, 4)}
`;
}

/** Runs a git command with stdin, resolving to stdout. */
function git(dir: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", args, {
      cwd: dir,
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, GIT_AUTHOR_NAME: "bench", GIT_AUTHOR_EMAIL: "bench@localhost", GIT_COMMITTER_NAME: "bench", GIT_COMMITTER_EMAIL: "bench@localhost", LC_ALL: "C" },
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`git ${args.join(" ")} failed (${code}): ${err.trim()}`))));
    child.stdin.on("error", () => {});
    child.stdin.end(input ?? "");
  });
}

/** One fast-import commit on `ref` holding `files` (the whole tree, or changes over `from`). */
function commitStream(ref: string, mark: number, message: string, files: Map<string, string>, from?: string, when = 1_700_000_000): string {
  const parts: string[] = [];
  parts.push(`commit ${ref}`, `mark :${mark}`, `author bench <bench@localhost> ${when} +0000`, `committer bench <bench@localhost> ${when} +0000`);
  const msg = Buffer.byteLength(message);
  parts.push(`data ${msg}`, message);
  if (from) parts.push(`from ${from}`);
  for (const [path, text] of files) parts.push(`M 100644 inline ${path}`, `data ${Buffer.byteLength(text)}`, text);
  parts.push("");
  return parts.join("\n");
}

/**
 * Writes the repository into `dir` (emptied first) and returns the three
 * commits. No working tree is checked out: gitrack reads commits only.
 */
export async function generateRepo(dir: string, opts: GenOptions): Promise<GeneratedRepo> {
  const { machines, racks } = opts;
  if (machines % racks !== 0) throw new Error("machines must be a multiple of racks");
  if (racks > 240) throw new Error("at most 240 racks (one /24 of addresses each)");
  const perRack = machines / racks;
  if (perRack > 240) throw new Error("at most 240 machines per rack");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await git(dir, ["init", "-q", "-b", "main"]);

  const files = new Map<string, string>();
  files.set("README.md", `# dc1\n\nGenerated by test/bench/gen-repo.ts: ${machines} machines in ${racks} racks.\n`);
  files.set("sites/dc1.yaml", siteYaml(racks));
  for (const [p, t] of profiles(racks)) files.set(p, t);
  const counts: Record<Role, number> = { control: 0, worker: 0, storage: 0 };
  for (let r = 0; r < racks; r++) for (let n = 0; n < perRack; n++) counts[roleOf(r, n, perRack)]++;
  files.set("clusters/prod.yaml", clusterYaml(counts));
  for (let r = 0; r < racks; r++) {
    for (let n = 0; n < perRack; n++) files.set(`machines/${rackName(r)}/${machineName(r, n)}.yaml`, machineYaml(r, n, perRack));
  }

  // (a) one machine file: the second NIC of r42-n007 (or the middle rack) replaced
  const ra = Math.min(42, racks - 1);
  const na = Math.min(8, perRack - 1) & ~1; // an even index: it has two NICs
  const oneFilePath = `machines/${rackName(ra)}/${machineName(ra, na)}.yaml`;
  const oneFile = new Map([[oneFilePath, machineYaml(ra, na, perRack, 1)]]);
  // (b) profile class-c
  const changedProfiles = profiles(racks, true);
  const profileFile = new Map([["profiles/class-c.yaml", changedProfiles.get("profiles/class-c.yaml")!]]);
  const profileMachines = Math.max(0, Math.min(racks, 3 * RACKS_PER_CLASS) - 2 * RACKS_PER_CLASS) * perRack;

  const stream =
    commitStream("refs/heads/main", 1, `${machines} machines in ${racks} racks\n`, files) +
    commitStream("refs/heads/bench/one-file", 2, `${machineName(ra, na)}: replace NIC eno2\n`, oneFile, ":1", 1_700_000_100) +
    commitStream("refs/heads/bench/profile", 3, "class-c: new mirror and kernel argument\n", profileFile, ":1", 1_700_000_200) +
    "reset refs/heads/bench/base\nfrom :1\n\n" +
    "done\n";
  await git(dir, ["fast-import", "--quiet", "--done"], stream);
  const rev = async (ref: string) => (await git(dir, ["rev-parse", ref])).trim();
  return {
    dir,
    machines,
    racks,
    files: files.size,
    profiles: [...files.keys()].filter((f) => f.startsWith("profiles/")).length,
    base: await rev("bench/base"),
    oneFile: await rev("bench/one-file"),
    profile: await rev("bench/profile"),
    oneFileChange: `${oneFilePath}: MAC of NIC eno2 replaced`,
    profileChange: `profiles/class-c.yaml: mirror and kernelArgs changed (profile used by racks ${rackName(2 * RACKS_PER_CLASS)}-${rackName(3 * RACKS_PER_CLASS - 1)})`,
    profileMachines,
  };
}
