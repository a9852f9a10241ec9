// Real site repositories for the model and CLI tests: a working copy made
// with the git CLI in a temporary directory, committed to like a person would,
// and read back through GitRepo (the object database, never the work tree).
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, afterEach } from "vitest";
import { GitRepo } from "../../reconciler/source/git.js";
import { formatDiagnostic } from "../../reconciler/model/diagnostics.js";
import { loadModel } from "../../reconciler/model/load.js";
import type { Model } from "../../reconciler/model/model.js";

/** Path → content; `null` deletes the file. */
export type Files = Record<string, string | null>;

// Temporary folders and the git runner are those of the source tests.
import { cleanupTemp as removeTempDirs, sh as git, tempDir } from "../source/fixture.js";
export { git, removeTempDirs, tempDir };

/**
 * For a test file: a maker of SiteRepos, each disposed after the test that
 * made it; the temporary folders go after the file's last test.
 */
export function siteRepos(): (files: Files) => SiteRepo {
  const made: SiteRepo[] = [];
  afterEach(async () => {
    for (const r of made.splice(0)) await r.dispose();
  });
  afterAll(() => removeTempDirs());
  return (files) => {
    const repo = SiteRepo.create(files);
    made.push(repo);
    return repo;
  };
}

export class SiteRepo {
  private readonly opened: GitRepo[] = [];

  private constructor(readonly dir: string) {}

  /** A repository on branch main whose first commit holds `files`. */
  static create(files: Files, message = "initial"): SiteRepo {
    const dir = tempDir("gitrack-site-");
    git(dir, "init", "-q", "--initial-branch=main");
    const repo = new SiteRepo(dir);
    repo.commit(files, message);
    return repo;
  }

  /** Writes (or with null deletes) files, commits them, returns the new commit. */
  commit(files: Files, message = "change"): string {
    const paths: string[] = [];
    for (const [path, content] of Object.entries(files)) {
      const full = join(this.dir, path);
      if (content === null) {
        rmSync(full, { force: true });
      } else {
        mkdirSync(dirname(full), { recursive: true });
        writeFileSync(full, content);
      }
      paths.push(path);
    }
    git(this.dir, "add", "-A", "--", ...paths);
    git(this.dir, "commit", "-q", "--allow-empty", "-m", message);
    return this.head();
  }

  head(): string {
    return git(this.dir, "rev-parse", "HEAD");
  }

  /** A GitRepo on this repository, closed by dispose(). */
  open(): GitRepo {
    const r = new GitRepo(this.dir);
    this.opened.push(r);
    return r;
  }

  async model(rev = "HEAD"): Promise<Model> {
    const repo = this.open();
    return loadModel(repo, git(this.dir, "rev-parse", rev));
  }

  /** Every diagnostic of a commit as `FILE:LINE:COL: message`. */
  async problems(rev = "HEAD"): Promise<string[]> {
    return (await this.model(rev)).diagnostics().map(formatDiagnostic);
  }

  async dispose(): Promise<void> {
    for (const r of this.opened.splice(0)) await r.close();
  }
}

// --- documents ---------------------------------------------------------------
// Each builder writes a fixed layout so tests can name exact lines.

/**
 * sites/lab.yaml, 15 lines:
 *   10 `cidr: 10.0.0.0/24`, 12 `range: {start: 10.0.0.200, end: 10.0.0.249}`,
 *   15 `unknownBootEnv: discovery`.
 */
export function siteYaml(opts: { name?: string; params?: Record<string, string>; unknownBootEnv?: string } = {}): string {
  const params = opts.params ?? { timezone: "UTC" };
  return [
    "apiVersion: gitrack/v1",
    "kind: Site",
    "metadata:",
    `  name: ${opts.name ?? "lab"}`,
    "spec:",
    "  params:",
    ...Object.entries(params).map(([k, v]) => `    ${k}: ${v}`),
    "  subnets:",
    "    - name: prov",
    "      cidr: 10.0.0.0/24",
    "      gateway: 10.0.0.1",
    "      range: {start: 10.0.0.200, end: 10.0.0.249}",
    "  boot:",
    "    advertise: 10.0.0.1",
    `    unknownBootEnv: ${opts.unknownBootEnv ?? "discovery"}`,
    "",
  ].join("\n");
}

/** A Cluster document; `roles` are the lines under `roles:` (role names indented 4, their fields 6). */
export function clusterYaml(name: string, roles: string[], opts: { site?: string; params?: Record<string, string> } = {}): string {
  const params = opts.params ? ["  params:", ...Object.entries(opts.params).map(([k, v]) => `    ${k}: ${v}`)] : [];
  return ["apiVersion: gitrack/v1", "kind: Cluster", "metadata:", `  name: ${name}`, "spec:", `  site: ${opts.site ?? "lab"}`, "  roles:", ...roles, ...params, ""].join("\n");
}

export function profileYaml(name: string, opts: { bootEnv?: string; params?: Record<string, string> } = {}): string {
  const lines = ["apiVersion: gitrack/v1", "kind: Profile", "metadata:", `  name: ${name}`, "spec:"];
  if (opts.bootEnv) lines.push(`  bootEnv: ${opts.bootEnv}`);
  if (opts.params && Object.keys(opts.params).length) {
    lines.push("  params:");
    for (const [k, v] of Object.entries(opts.params)) lines.push(`    ${k}: ${v}`);
  }
  if (lines.length === 5) lines.push("  params: {}");
  return lines.join("\n") + "\n";
}

export interface MachineOpts {
  site?: string;
  mac?: string;
  ip?: string;
  profiles?: string[];
  labels?: Record<string, string>;
  params?: Record<string, string>;
  bootEnv?: string;
  intent?: string;
  generation?: number;
  power?: boolean;
}

export function macOf(n: number): string {
  return `52:54:00:00:${((n >> 8) & 255).toString(16).padStart(2, "0")}:${(n & 255).toString(16).padStart(2, "0")}`;
}

export function ipOf(n: number): string {
  return `10.0.0.${10 + n}`;
}

/**
 * A Machine; line 9 is `- mac: "..."`, line 10 `ip: ...`, line 11 the
 * profiles, line 12 the generation; then optional lines.
 */
export function machineYaml(name: string, n: number, o: MachineOpts = {}): string {
  const labels = o.labels ?? { rack: "r1" };
  const lines = [
    "apiVersion: gitrack/v1",
    "kind: Machine",
    "metadata:",
    `  name: ${name}`,
    `  labels: {${Object.entries(labels).map(([k, v]) => `${k}: ${v}`).join(", ")}}`,
    "spec:",
    `  site: ${o.site ?? "lab"}`,
    "  interfaces:",
    `    - mac: "${o.mac ?? macOf(n)}"`,
    `      ip: ${o.ip ?? ipOf(n)}`,
    `  profiles: [${(o.profiles ?? ["base"]).join(", ")}]`,
    `  generation: ${o.generation ?? 1}`,
  ];
  if (o.bootEnv) lines.push(`  bootEnv: ${o.bootEnv}`);
  if (o.intent) lines.push(`  intent: ${o.intent}`);
  if (o.power !== false) lines.push("  power: {driver: manual}");
  if (o.params && Object.keys(o.params).length) {
    lines.push("  params:");
    for (const [k, v] of Object.entries(o.params)) lines.push(`    ${k}: ${v}`);
  }
  return lines.join("\n") + "\n";
}

/** A valid repository: site lab, profile base (bootEnv debian-12), machines n1..nCount. */
export function baseFiles(count = 2): Record<string, string> {
  const files: Record<string, string> = {
    "sites/lab.yaml": siteYaml(),
    "profiles/base.yaml": profileYaml("base", { bootEnv: "debian-12", params: { keymap: "us" } }),
  };
  for (let i = 1; i <= count; i++) files[`machines/n${i}.yaml`] = machineYaml(`n${i}`, i);
  return files;
}

/** The layers that can set a param, highest precedence first. */
export const LAYERS = ["machine", "profile1", "profile2", "cluster", "site"] as const;
export type Layer = (typeof LAYERS)[number];

/** What each layer sets `locale` to (the bootEnv debian-12 defaults it to en_US.UTF-8). */
export const LOCALE_OF: Record<Layer | "bootEnv", string> = {
  machine: "nl_NL.UTF-8",
  profile1: "es_ES.UTF-8",
  profile2: "it_IT.UTF-8",
  cluster: "fr_FR.UTF-8",
  site: "de_DE.UTF-8",
  bootEnv: "en_US.UTF-8",
};

/**
 * Machine n1 (profiles [p1, p2], in cluster k8s) where each layer in `set`
 * sets `locale`; n2 is in no cluster and sets nothing. In every file the
 * `locale:` value is at column 13: machines/n1.yaml line 15, profiles/p1.yaml
 * and p2.yaml line 8, clusters/k8s.yaml line 12, sites/lab.yaml line 7.
 */
export function layeredFiles(set: readonly Layer[]): Record<string, string> {
  const has = (l: Layer) => set.includes(l);
  const locale = (l: Layer): Record<string, string> => (has(l) ? { locale: LOCALE_OF[l] } : { other: "x" });
  return {
    "sites/lab.yaml": siteYaml({ params: has("site") ? { locale: LOCALE_OF.site } : { timezone: "UTC" } }),
    "profiles/p1.yaml": profileYaml("p1", { bootEnv: "debian-12", params: locale("profile1") }),
    "profiles/p2.yaml": profileYaml("p2", { bootEnv: "local", params: locale("profile2") }),
    "clusters/k8s.yaml": clusterYaml("k8s", ["    worker:", "      machines: [n1]", "      count: 1"], {
      params: has("cluster") ? { locale: LOCALE_OF.cluster } : { clusterName: "k8s" },
    }),
    "machines/n1.yaml": machineYaml("n1", 1, { profiles: ["p1", "p2"], params: locale("machine") }),
    "machines/n2.yaml": machineYaml("n2", 2, { profiles: ["p1"] }),
  };
}
