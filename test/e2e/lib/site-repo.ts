// The site repository the end-to-end tests and the demo boot from: made with
// `gitrack init` like any user's, then given — through ordinary commits of
// ordinary documents — a BootEnv for the test guest (kernel and initrd as
// file:// URLs pinned by sha256), a discovery BootEnv, and machines powered
// by the qemu driver.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { GuestAssets } from "./assets.js";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const GITRACK = join(ROOT, "bin", "gitrack.js");

export function git(repo: string, args: string[], input?: string): string {
  return execFileSync("git", ["-C", repo, ...args], {
    encoding: "utf8",
    input,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, GIT_AUTHOR_NAME: "operator", GIT_AUTHOR_EMAIL: "operator@example.invalid", GIT_COMMITTER_NAME: "operator", GIT_COMMITTER_EMAIL: "operator@example.invalid" },
  }).trim();
}

export function gitrack(args: string[]): string {
  return execFileSync(process.execPath, [GITRACK, ...args], { encoding: "utf8" });
}

/** Writes files (path → content, null deletes) and commits them; returns the new commit. */
export function commitFiles(repo: string, files: Record<string, string | null>, message: string): string {
  for (const [path, content] of Object.entries(files)) {
    const full = join(repo, path);
    if (content === null) {
      git(repo, ["rm", "-q", "--", path]);
      continue;
    }
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
    git(repo, ["add", "--", path]);
  }
  git(repo, ["commit", "-q", "-m", message]);
  return git(repo, ["rev-parse", "HEAD"]);
}

export function readRepoFile(repo: string, path: string): string {
  return readFileSync(join(repo, path), "utf8");
}

export interface LabMachine {
  name: string;
  mac: string;
  ip: string;
  /** Keep the VM running after Ready (the guest's gitrack.hold). */
  hold?: boolean;
}

export function machineDoc(m: LabMachine, generation = 1, intent = "provisioned"): string {
  return `apiVersion: gitrack/v1
kind: Machine
metadata:
  name: ${m.name}
  labels: {rack: r1, role: worker}
spec:
  site: lab
  interfaces:
    - mac: "${m.mac}"
      ip: ${m.ip}
  profiles: [worker, base]
  intent: ${intent}
  generation: ${generation}
  params:
    hold: "${m.hold ? 1 : 0}"
  power:
    driver: qemu
    bridge: br0
    memoryMB: 256
`;
}

export function bootEnvDocs(a: GuestAssets): string {
  const artifacts = `  kernel:
    url: file://${a.kernel}
    sha256: ${a.kernelSha256}
  initrds:
    - url: file://${a.initrd}
      sha256: ${a.initrdSha256}`;
  return `# The end-to-end guest: a Debian kernel and a busybox initrd that plays an
# installer (it fetches its rendered config, then reports Installing,
# Installed and Ready) or a discovery image (it reports its inventory).
apiVersion: gitrack/v1
kind: BootEnv
metadata:
  name: lab-install
spec:
  purpose: install
${artifacts}
  cmdline: >-
    console=ttyS0 quiet panic=-1
    gitrack.events={{ urls.events }}
    gitrack.config={{ urls.files }}install.cfg
    gitrack.hold={{ params.hold | default: "0" }}
  files:
    - name: install.cfg
      template: |
        hostname={{ machine.name }}
        generation={{ machine.generation }}
        role={{ params.role }}
  params:
    hold: "0"
---
apiVersion: gitrack/v1
kind: BootEnv
metadata:
  name: lab-discovery
spec:
  purpose: discovery
${artifacts}
  cmdline: console=ttyS0 quiet panic=-1 gitrack.mode=discovery gitrack.events={{ urls.events }}
`;
}

/**
 * A new site repository at `dir` for the lab: `gitrack init`, then one commit
 * pointing the site's profile and unknown machines at the lab BootEnvs and
 * one adding the machines (none, and no cluster of two workers, when
 * `machines` is empty).
 */
export function makeLabRepo(dir: string, assets: GuestAssets, machines: LabMachine[]): { commit: string } {
  gitrack(["init", dir]);
  const site = readRepoFile(dir, "sites/lab.yaml").replace("unknownBootEnv: discovery", "unknownBootEnv: lab-discovery");
  const base = readRepoFile(dir, "profiles/base.yaml").replace("bootEnv: debian-12", "bootEnv: lab-install");
  commitFiles(
    dir,
    { "bootenvs/lab.yaml": bootEnvDocs(assets), "sites/lab.yaml": site, "profiles/base.yaml": base, "machines/node01.yaml": null, "machines/node02.yaml": null, ...(machines.length ? {} : { "clusters/workers.yaml": null }) },
    "Boot the lab's test guest",
  );
  if (machines.length === 0) return { commit: git(dir, ["rev-parse", "HEAD"]) };
  const files: Record<string, string> = {};
  for (const m of machines) files[`machines/${m.name}.yaml`] = machineDoc(m);
  const commit = commitFiles(dir, files, `Add ${machines.map((m) => m.name).join(" and ")}`);
  return { commit };
}
