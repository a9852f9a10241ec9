// `npm run demo`: gitrack doing its main job on this machine. As root with
// QEMU: a private network namespace with a bridge, a site repository made
// with `gitrack init`, `gitrack serve` on it, and two VMs that PXE boot from
// it, with their phases shown live, then the status branch and its log, and
// what to try next. Without root or QEMU: the daemon on loopback with DHCP
// and TFTP off, so validate, plan, render and the HTTP endpoints can be tried.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureGuestAssets } from "../test/e2e/lib/assets.js";
import { Lab, canRunLab } from "../test/e2e/lib/lab.js";
import { machineStatus, startDaemon, sleep, waitFor, type MachineStatus } from "../test/e2e/lib/daemon.js";
import { GITRACK, ROOT, git, gitrack, makeLabRepo, type LabMachine } from "../test/e2e/lib/site-repo.js";
import { spawn, spawnSync } from "node:child_process";

const DEMO_DIR = process.env.GITRACK_DEMO_DIR ?? join(ROOT, ".state", "demo");
const exitWhenReady = process.argv.includes("--exit-when-ready");
const tty = process.stdout.isTTY === true;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s = "") => process.stdout.write(s + "\n");

const machines: LabMachine[] = [
  { name: "node01", mac: "52:54:00:77:00:01", ip: "10.77.0.11" },
  { name: "node02", mac: "52:54:00:77:00:02", ip: "10.77.0.12" },
];

async function main(): Promise<void> {
  rmSync(DEMO_DIR, { recursive: true, force: true });
  mkdirSync(DEMO_DIR, { recursive: true });
  const repo = join(DEMO_DIR, "site");
  const stateDir = join(DEMO_DIR, "state");
  if (!canRunLab()) return loopbackDemo(repo, stateDir);

  say(bold("gitrack demo: two machines PXE boot from a Git commit"));
  say(`  demo folder: ${DEMO_DIR}`);
  say("  building the guest's kernel and initrd (once; cached afterwards) ...");
  const assets = await ensureGuestAssets();
  const lab = await Lab.create({ prefix: "demo", bridgeAddr: "10.77.0.1/24" });
  const cleanup = async () => {
    await lab.destroy();
  };
  process.once("SIGINT", () => void cleanup().then(() => process.exit(130)));
  try {
    say(`  network namespace ${lab.name}: bridge br0 10.77.0.1/24 (nothing leaves it)`);
    const { commit } = makeLabRepo(repo, assets, machines);
    say(`  site repository: ${repo} (gitrack init + 2 commits), HEAD ${commit.slice(0, 12)}`);
    say(`  accelerator: ${lab.accel}${lab.accel === "tcg" ? " (software emulation: about 15-30 s per boot)" : ""}`);
    const daemon = startDaemon(lab, { repo, stateDir, logDir: DEMO_DIR });
    say(`  gitrack serve started (log: ${daemon.log})`);
    say("");
    await showProgress(repo, machines.map((m) => m.name), (all) => all.every((s) => s?.status.phase === "Ready"), 600_000);
    say("");
    say(bold("Status branch gitrack/status/lab (written by the daemon):"));
    say(indent(git(repo, ["show", "gitrack/status/lab:machines/node01.yaml"])));
    say(bold("git log gitrack/status/lab:"));
    say(indent(git(repo, ["log", "--format=%h %s", "-8", "gitrack/status/lab"])));
    say(bold(`git notes --ref=gitrack/lab show ${commit.slice(0, 12)}:`));
    say(indent(git(repo, ["notes", "--ref=gitrack/lab", "show", commit])));
    say("");
    if (exitWhenReady) {
      await cleanup();
      return;
    }
    say(bold("Try it: change the repository and watch the daemon react."));
    say(`  cd ${repo}`);
    say("  sed -i 's/generation: 1/generation: 2/' machines/node01.yaml");
    say("  git commit -qam 'Reinstall node01' && gitrack plan --from HEAD~1 --to HEAD");
    say("  git log --oneline gitrack/status/lab   # watch node01 power-cycle, reinstall, reach Ready at generation 2");
    say("  (gitrack is `node " + GITRACK + "`; also try: gitrack status --site lab, gitrack explain node01)");
    say("Phases keep updating below. Ctrl-C stops the daemon and the VMs and removes the namespace.");
    say("");
    await showProgress(repo, machines.map((m) => m.name), () => false, Number.MAX_SAFE_INTEGER, true);
  } finally {
    await cleanup();
  }
}

function indent(s: string): string {
  return s
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

function line(s: MachineStatus | undefined, name: string): string {
  if (!s) return `${name.padEnd(16)} (not yet on the status branch)`;
  const st = s.status;
  return `${name.padEnd(16)} ${st.phase.padEnd(14)} ${(st.addresses[0]?.ip ?? "-").padEnd(13)} gen ${String(s.spec.generation).padEnd(3)} installed ${String(st.installedGeneration ?? "-").padEnd(3)} boot ${st.bootTarget}`;
}

/** Prints each machine's phase whenever it changes, until `done` or the timeout. */
async function showProgress(repo: string, names: string[], done: (all: Array<MachineStatus | undefined>) => boolean, timeoutMs: number, follow = false): Promise<void> {
  const start = Date.now();
  let last = "";
  for (;;) {
    let all = names.map((n) => machineStatus(repo, n));
    if (follow) {
      const listed = git(repo, ["ls-tree", "--name-only", "gitrack/status/lab", "machines/"]).split("\n").filter(Boolean);
      names = listed.map((p) => p.replace(/^machines\//, "").replace(/\.yaml$/, ""));
      all = names.map((n) => machineStatus(repo, n));
    }
    const text = names.map((n, i) => line(all[i], n)).join("\n");
    if (text !== last) {
      say(`[${((Date.now() - start) / 1000).toFixed(0).padStart(4)} s]`);
      say(indent(text));
      last = text;
    }
    if (done(all)) return;
    if (Date.now() - start > timeoutMs) throw new Error(`machines not Ready after ${timeoutMs / 1000} s; see the daemon log and ${DEMO_DIR}/state/vms/*/serial.log`);
    await sleep(1000);
  }
}

async function loopbackDemo(repo: string, stateDir: string): Promise<void> {
  const why = process.getuid?.() !== 0 ? "not running as root (network namespaces and VMs need root)" : "QEMU or network namespaces are not available";
  say(bold("gitrack demo (reduced): " + why));
  say("  No VMs will boot. The daemon runs on 127.0.0.1:8080 with DHCP and TFTP off,");
  say("  so validate, plan, render and the HTTP boot endpoints can be tried.");
  gitrack(["init", repo]);
  say(`  site repository: ${repo}`);
  say("");
  for (const args of [["validate"], ["plan", "--to", "HEAD"], ["render", "node01"], ["explain", "node01", "locale"]]) {
    say(bold(`$ gitrack ${args.join(" ")}`));
    const r = spawnSyncText(process.execPath, [GITRACK, ...args, "--repo", repo]);
    say(indent(r.trimEnd()));
  }
  const child = spawn(process.execPath, [GITRACK, "serve", "--repo", repo, "--site", "lab", "--state-dir", stateDir, "--no-dhcp", "--no-tftp", "--listen", "127.0.0.1", "--http-port", "8080"], { stdio: ["ignore", "ignore", "inherit"] });
  process.once("SIGINT", () => child.kill("SIGTERM"));
  await waitFor("the daemon's health check", 30_000, async () => {
    const r = await fetch("http://127.0.0.1:8080/healthz").catch(() => undefined);
    return r?.ok ? true : undefined;
  });
  const tokenFile = join(stateDir, "api-token");
  say("");
  say(bold("gitrack serve is running on http://127.0.0.1:8080. Try:"));
  say("  curl http://127.0.0.1:8080/boot/52-54-00-77-00-01.ipxe     # node01's iPXE script");
  say("  curl http://127.0.0.1:8080/boot/52-54-00-77-00-99.ipxe     # an unknown MAC gets discovery");
  say(`  curl -H "Authorization: Bearer $(cat ${tokenFile})" http://127.0.0.1:8080/api/v1/machines`);
  say("  curl http://127.0.0.1:8080/metrics");
  say(`  cd ${repo} && edit a file && git commit -am change   # the daemon picks it up; git log gitrack/status/lab`);
  say("Ctrl-C stops it.");
  if (exitWhenReady) {
    child.kill("SIGTERM");
    return;
  }
  await new Promise((r) => child.once("exit", r));
}

function spawnSyncText(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}(exit ${r.status})`;
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
