// Boot benchmark (issue 4): commit to Ready for 1 VM and for 5 VMs started
// together, under gitrack against the same boots served by dnsmasq + a
// static HTTP server (the reference of /work/shared/lab/README.md).
//
//   gitrack:   a lab namespace (br0 10.77.0.1/24, radvd), `gitrack serve`
//              on a site repository whose BootEnv is the end-to-end guest
//              (test/e2e/lib/assets.ts). The start is the commit adding N
//              machines with the qemu power driver; the daemon powers them
//              on, they PXE boot (iPXE → DHCP → script → kernel + initrd over
//              HTTP), the guest fetches its rendered config and POSTs
//              Installing / Installed / Ready; the end is the daemon's
//              "machine phase" log line with to=Ready (its own time stamp).
//   reference: another lab, dnsmasq (DHCP, --dhcp-boot=tag:ipxe,URL) and the
//              event listener as static HTTP server (script, kernel, initrd,
//              config, events); N VMs started at once with lab.startVm (no
//              kernel = network boot); VM start → the listener's Ready POST.
//
//   node --import tsx test/bench/boot.ts [--sizes 1,5]   # prints the Markdown section
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ensureGuestAssets, type GuestAssets } from "../e2e/lib/assets.js";
import { startDaemon, logLines, waitFor } from "../e2e/lib/daemon.js";
import { Lab, canRunLab } from "../e2e/lib/lab.js";
import { startEventListener } from "../e2e/lib/listener.js";
import { bootEnvDocs, commitFiles, gitrack, machineDoc, readRepoFile, type LabMachine } from "../e2e/lib/site-repo.js";

export interface BootBenchResult {
  title: string;
  markdown: string;
  rows: Array<Record<string, unknown>>;
}

export interface BootBenchOptions {
  /** VMs per batch; default [1, 5]. */
  sizes?: number[];
  log?: (line: string) => void;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BOOT_TIMEOUT_MS = 300_000;
const r2 = (x: number) => Math.round(x * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function uptimeLine(): string {
  const [a, b, c] = os.loadavg();
  return `load average ${a!.toFixed(2)}, ${b!.toFixed(2)}, ${c!.toFixed(2)} on ${os.cpus().length} CPUs`;
}

function procHwmMB(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : undefined;
  } catch {
    return undefined;
  }
}

/** Busy cores of the whole machine and of the processes in `nsNames` (ours), sampled every 500 ms. */
function startLoadSampler(nsNames: string[]): { stop(): { busyCores: number; oursCores: number; otherCores: number } } {
  const tck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  const ncpu = os.cpus().length;
  const stat = () => {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3]! + f[4]!, total: f.reduce((a, b) => a + b, 0) };
  };
  const cpuOf = (pid: string) => {
    try {
      const t = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = t.slice(t.lastIndexOf(")") + 2).split(" ");
      return (Number(f[11]) + Number(f[12])) / tck;
    } catch {
      return undefined;
    }
  };
  const pids = () =>
    nsNames.flatMap((n) => {
      try {
        return execFileSync("ip", ["netns", "pids", n], { encoding: "utf8" }).split(/\s+/).filter(Boolean);
      } catch {
        return [];
      }
    });
  const last = new Map<string, number>();
  for (const p of pids()) {
    const c = cpuOf(p);
    if (c !== undefined) last.set(p, c);
  }
  let ours = 0;
  const t0 = Date.now();
  const s0 = stat();
  const sample = () => {
    for (const p of pids()) {
      const c = cpuOf(p);
      if (c === undefined) continue;
      ours += c - (last.get(p) ?? 0); // a process new since the last sample: all of its CPU is ours
      last.set(p, c);
    }
  };
  const timer = setInterval(sample, 500);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const s1 = stat();
      const total = s1.total - s0.total;
      const busyCores = total > 0 ? ((total - (s1.idle - s0.idle)) / total) * ncpu : 0;
      const oursCores = ours / ((Date.now() - t0) / 1000);
      return { busyCores: r2(busyCores), oursCores: r2(oursCores), otherCores: r2(Math.max(0, busyCores - oursCores)) };
    },
  };
}

const hexhyp = (mac: string) => mac.toLowerCase().replace(/:/g, "-");

type VmRow = {
  figure: "boot";
  server: "gitrack" | "dnsmasq+http";
  batch: number;
  vm: string;
  mac: string;
  /** gitrack: commit → Ready; reference: VM start → Ready. */
  toReadySeconds: number;
  /** QEMU start → Ready (gitrack: the qemu driver's "VM powered on" log line). */
  vmStartToReadySeconds: number;
  /** gitrack: commit → the daemon powered the VM on. */
  commitToPowerOnSeconds?: number;
};

type BatchSummary = {
  server: VmRow["server"];
  batch: number;
  /** Machine CPU during the batch: all, this lab's processes, everything else (cores). */
  busyCores?: number;
  oursCores?: number;
  otherCores?: number;
  maxToReady: number;
  medianToReady: number;
  maxVmStartToReady: number;
  load: string;
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function summarize(rows: VmRow[], server: VmRow["server"], batch: number, load: string): BatchSummary {
  const rs = rows.filter((r) => r.server === server && r.batch === batch);
  return {
    server,
    batch,
    maxToReady: Math.max(...rs.map((r) => r.toReadySeconds)),
    medianToReady: r2(median(rs.map((r) => r.toReadySeconds))),
    maxVmStartToReady: Math.max(...rs.map((r) => r.vmStartToReadySeconds)),
    load,
  };
}

interface Side {
  name: VmRow["server"];
  lab: Lab;
  commands: string[];
  /** Boots n VMs, returns one row per VM. */
  batch(n: number): Promise<VmRow[]>;
  /** The script a VM gets (for the report). */
  script(): string;
  close(): Promise<void>;
}

// ------------------------------------------------------------------ gitrack

async function gitrackSide(assets: GuestAssets, log: (s: string) => void): Promise<Side & { hwmMB(): number | undefined }> {
  const work = mkdtempSync(path.join(os.tmpdir(), "gt-bootbench-"));
  const repo = path.join(work, "site");
  const stateDir = path.join(work, "state");
  const lab = await Lab.create({ prefix: "bg", bridgeAddr: "10.77.0.1/24" });
  const commands: string[] = [];
  let hwm: number | undefined;
  try {
    // The repository of test/e2e/lib/site-repo.ts makeLabRepo, without machines yet (and
    // without the template's cluster, whose worker count would reject a 1-machine commit).
    gitrack(["init", repo]);
    const site = readRepoFile(repo, "sites/lab.yaml").replace("unknownBootEnv: discovery", "unknownBootEnv: lab-discovery");
    const base = readRepoFile(repo, "profiles/base.yaml").replace("bootEnv: debian-12", "bootEnv: lab-install");
    commitFiles(
      repo,
      { "bootenvs/lab.yaml": bootEnvDocs(assets), "sites/lab.yaml": site, "profiles/base.yaml": base, "machines/node01.yaml": null, "machines/node02.yaml": null, "clusters/workers.yaml": null },
      "Boot the lab's test guest",
    );
    const daemon = startDaemon(lab, { repo, stateDir, logName: "bench-daemon.log" });
    const pid = daemon.child.pid!;
    commands.push(
      `ip netns exec ${lab.name} node bin/gitrack.js serve --repo ${repo} --site lab --state-dir ${stateDir} --status-interval 1 --install-timeout 900   (test/e2e/lib/daemon.ts startDaemon; DHCP 67, TFTP 69, HTTP 8080 on br0 10.77.0.1/24)`,
      `git -C ${repo} commit  (adds machines/bN-NN.yaml: qemu power driver, bridge br0, 256 MB, virtio; test/e2e/lib/site-repo.ts machineDoc)`,
    );
    await waitFor("gitrack serving", 60_000, () => logLines(daemon.log).some((l) => l.msg === "gitrack serving") || undefined, 100);
    let octet = 20;
    let batchNo = 0;
    let scriptText = "";
    return {
      name: "gitrack",
      lab,
      commands,
      hwmMB: () => procHwmMB(pid) ?? hwm,
      async batch(n) {
        batchNo++;
        const machines: LabMachine[] = [];
        for (let i = 1; i <= n; i++, octet++) {
          machines.push({ name: `b${batchNo}-${String(i).padStart(2, "0")}`, mac: `52:54:00:78:${batchNo.toString(16).padStart(2, "0")}:${i.toString(16).padStart(2, "0")}`, ip: `10.77.0.${octet}` });
        }
        const files: Record<string, string> = {};
        for (const m of machines) files[`machines/${m.name}.yaml`] = machineDoc(m);
        const t0 = Date.now();
        const commit = commitFiles(repo, files, `Add ${n} machine${n > 1 ? "s" : ""}`);
        log(`gitrack: committed ${n} machines`);
        const outcome = await waitFor(`the daemon's verdict on ${commit}`, 60_000, () =>
          logLines(daemon.log).find((l) => (l.msg === "commit applied" || String(l.msg).startsWith("commit rejected")) && l.commit === commit),
        100);
        if (outcome.msg !== "commit applied") throw new Error(`gitrack rejected the bench commit: ${JSON.stringify(outcome)}`);
        if (!scriptText) {
          try {
            scriptText = execFileSync("ip", ["netns", "exec", lab.name, "curl", "-sf", `http://10.77.0.1:8080/boot/${hexhyp(machines[0]!.mac)}.ipxe`], { encoding: "utf8" });
          } catch {
            /* reported as not fetched */
          }
        }
        const names = new Set(machines.map((m) => m.name));
        const readyAt = await waitFor(
          `${n} machines Ready in the daemon's log`,
          BOOT_TIMEOUT_MS,
          () => {
            const ready = new Map<string, number>();
            for (const l of logLines(daemon.log)) {
              if (l.msg === "machine phase" && l.to === "Ready" && names.has(String(l.machine))) ready.set(String(l.machine), Date.parse(String(l.time)));
            }
            return ready.size === n ? ready : undefined;
          },
          250,
        );
        hwm = procHwmMB(pid) ?? hwm;
        const lines = logLines(daemon.log);
        const rows: VmRow[] = [];
        for (const m of machines) {
          const on = lines.find((l) => l.msg === "qemu: VM powered on" && l.machine === m.name);
          const onAt = on ? Date.parse(String(on.time)) : NaN;
          const ready = readyAt.get(m.name)!;
          rows.push({
            figure: "boot",
            server: "gitrack",
            batch: n,
            vm: m.name,
            mac: m.mac,
            toReadySeconds: r2((ready - t0) / 1000),
            vmStartToReadySeconds: r2((ready - onAt) / 1000),
            commitToPowerOnSeconds: r2((onAt - t0) / 1000),
          });
        }
        // Let the VMs power off (the guest does after Ready) before the next batch.
        await waitFor("the batch's VMs powered off", 60_000, () => machines.every((m) => !qemuAlive(path.join(stateDir, "vms", m.name, "qemu.pid"))) || undefined).catch(
          () => undefined,
        );
        return rows;
      },
      script: () => scriptText,
      async close() {
        hwm = procHwmMB(pid) ?? hwm;
        await daemon.kill("SIGTERM");
        await lab.destroy();
        rmSync(work, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await lab.destroy();
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
}

function qemuAlive(pidFile: string): boolean {
  try {
    const text = readFileSync(pidFile, "utf8").trim();
    const pid = text.startsWith("{") ? (JSON.parse(text) as { pid: number }).pid : Number(text);
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- reference

async function referenceSide(assets: GuestAssets, log: (s: string) => void): Promise<Side> {
  const lab = await Lab.create({ prefix: "br", bridgeAddr: "10.77.0.1/24" });
  const commands: string[] = [];
  const base = "http://10.77.0.1:8080";
  // The same kernel command line as gitrack's lab-install BootEnv renders, with static URLs.
  const script = [
    "#!ipxe",
    `kernel ${base}/vmlinuz console=ttyS0 quiet panic=-1 gitrack.events=${base}/events/\${net0/mac:hexhyp} gitrack.config=${base}/install.cfg gitrack.hold=0`,
    `initrd ${base}/initrd.gz`,
    "boot",
    "",
  ].join("\n");
  try {
    const scriptFile = path.join(lab.stateDir, "boot.ipxe");
    const cfgFile = path.join(lab.stateDir, "install.cfg");
    writeFileSync(scriptFile, script);
    writeFileSync(cfgFile, "hostname=ref\ngeneration=1\nrole=worker\n");
    const listener = await startEventListener(lab, {
      port: 8080,
      serve: { "/boot.ipxe": scriptFile, "/vmlinuz": assets.kernel, "/initrd.gz": assets.initrd, "/install.cfg": cfgFile },
    });
    lab.startDnsmasq({ range: "10.77.0.100,10.77.0.150,1h", bootFile: `${base}/boot.ipxe` });
    commands.push(
      `ip netns exec ${lab.name} dnsmasq --keep-in-foreground --port=0 --no-resolv --no-hosts --interface=br0 --bind-interfaces --user=root --no-ping --dhcp-range=10.77.0.100,10.77.0.150,1h --dhcp-match=set:ipxe,175 --dhcp-option=tag:ipxe,encap:175,176,1b --dhcp-boot=tag:ipxe,${base}/boot.ipxe ...   (test/e2e/lib/lab.ts startDnsmasq)`,
      `ip netns exec ${lab.name} node --import tsx test/e2e/lib/event-listener.ts --host 10.77.0.1 --port 8080 --serve /boot.ipxe=… --serve /vmlinuz=… --serve /initrd.gz=… --serve /install.cfg=…   (static files; POSTs recorded with their time)`,
      `ip netns exec ${lab.name} qemu-system-x86_64 … -netdev tap,ifname=tap-NAME … (lab.startVm: no kernel = iPXE network boot, 256 MB, virtio; N started together)`,
    );
    let batchNo = 0;
    return {
      name: "dnsmasq+http",
      lab,
      commands,
      script: () => script,
      async batch(n) {
        batchNo++;
        const vms = Array.from({ length: n }, (_, i) => ({ name: `r${batchNo}v${i + 1}`, mac: `52:54:00:79:${batchNo.toString(16).padStart(2, "0")}:${(i + 1).toString(16).padStart(2, "0")}` }));
        const started = await Promise.all(
          vms.map(async (v) => {
            const at = Date.now();
            const handle = await lab.startVm({ name: v.name, mac: v.mac });
            return { ...v, at, handle };
          }),
        );
        log(`reference: started ${n} VMs`);
        const rows: VmRow[] = [];
        for (const v of started) {
          const ev = await listener.waitFor(
            (r) => r.method === "POST" && r.url === `/events/${hexhyp(v.mac)}` && /"phase"\s*:\s*"Ready"/.test(r.body),
            BOOT_TIMEOUT_MS,
          );
          const sec = r2((ev.at - v.at) / 1000);
          rows.push({ figure: "boot", server: "dnsmasq+http", batch: n, vm: v.name, mac: v.mac, toReadySeconds: sec, vmStartToReadySeconds: sec });
        }
        for (const v of started) await v.handle.waitExit(60_000).catch(() => v.handle.stop());
        return rows;
      },
      async close() {
        await lab.destroy();
      },
    };
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}

// ------------------------------------------------------------------ section

const mdCell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

export async function benchBoot(opts: BootBenchOptions = {}): Promise<BootBenchResult> {
  const sizes = opts.sizes ?? [1, 5];
  const log = opts.log ?? ((s: string) => process.stderr.write(`[boot bench] ${s}\n`));
  const title = "Boot: commit to Ready, gitrack against dnsmasq + static HTTP";
  if (!canRunLab()) {
    return { title, markdown: `## ${title}\n\nSkipped: needs root, network namespaces and qemu-system-x86_64.\n`, rows: [] };
  }
  const assets = await ensureGuestAssets(path.join(ROOT, "test/e2e/.assets"));
  const loadStart = uptimeLine();
  const rowsAll: VmRow[] = [];
  const summaries: BatchSummary[] = [];
  let hwmMB: number | undefined;
  let gScript = "";
  let rScript = "";
  const commands: string[] = [];
  const g = await gitrackSide(assets, log);
  try {
    const ref = await referenceSide(assets, log);
    try {
      commands.push(...g.commands, ...ref.commands);
      // Interleaved (gitrack N, reference N, for each N) so that both see similar other load.
      for (const n of sizes) {
        for (const side of [g, ref] as Side[]) {
          await sleep(2000);
          const load = uptimeLine();
          const sampler = startLoadSampler([g.lab.name, ref.lab.name]);
          const rows = await side.batch(n);
          const cpu = sampler.stop();
          rowsAll.push(...rows);
          summaries.push({ ...summarize(rows, side.name, n, load), ...cpu });
          log(`${side.name} batch ${n}: ${JSON.stringify(summaries[summaries.length - 1])}`);
        }
      }
      gScript = g.script();
      rScript = ref.script();
    } finally {
      await ref.close();
    }
  } finally {
    hwmMB = g.hwmMB();
    await g.close();
  }
  const loadEnd = uptimeLine();
  const gs = summaries.filter((s) => s.server === "gitrack");
  const rs = summaries.filter((s) => s.server !== "gitrack");

  const md: string[] = [`## ${title}`, ""];
  md.push(
    `Machine: ${os.cpus().length} vCPUs, VMs under ${accelWord()}; **one run of each case** (a TCG boot costs about a core for 12–15 s, so repeats would take minutes each), gitrack and reference interleaved per batch size. ` +
      `Machine load (\`uptime\`) at the start: ${loadStart}; at the end: ${loadEnd}; other people's tests were running at the same time, so each batch's own CPU reading is in the table.`,
    "",
    "Both sides boot the same payload: QEMU (256 MB, virtio NIC, Debian's iPXE ROM) → DHCP → iPXE script over HTTP → the end-to-end guest's kernel and initrd " +
      "(`test/e2e/lib/assets.ts`: Debian kernel, busybox initramfs) → udhcpc → GET of the rendered config → POSTs Installing, Installed, Ready → power-off. Both labs run radvd (no 13 s IPv6 router wait).",
    "",
    "- **gitrack**: the start is the `git commit` adding the N Machine files (qemu power driver); the daemon notices the commit, powers the VMs on, serves DHCP, the per-machine script, the cached kernel and initrd, the rendered config and the events. " +
      "Ready = the daemon's `\"msg\":\"machine phase\"` log line with `to: Ready` (its time stamp). \"VM start → Ready\" starts at the qemu driver's `qemu: VM powered on` line.",
    "- **reference**: dnsmasq (DHCP, `--dhcp-boot=tag:ipxe,<script URL>`, no-ping, 175.176) + the event listener as static HTTP server; nothing to notice, so the start is `lab.startVm` of the N VMs at once and Ready is the listener's receipt of the Ready POST.",
    "",
    "Columns: per-VM and max time to Ready; \"VM start → Ready\" (QEMU start to Ready on both sides); for gitrack, commit → the daemon's power-on of each VM; " +
      "CPU during the batch, sampled every 500 ms: the whole machine, this bench's processes (both labs' namespaces: VMs, daemon, dnsmasq, listener) and the rest (\"other\": colleagues' work), in cores of 2.",
    "",
    "| server | VMs | to Ready per VM, s | max, s | median, s | VM start → Ready max, s | commit → power-on, s | CPU all / ours / other, cores | load at start |",
    "|---|---:|---|---:|---:|---:|---|---|---|",
  );
  for (const sm of summaries) {
    const vr = rowsAll.filter((r) => r.server === sm.server && r.batch === sm.batch);
    const power = sm.server === "gitrack" ? vr.map((r) => r.commitToPowerOnSeconds?.toFixed(2)).join(", ") : "–";
    md.push(
      `| ${sm.server} | ${sm.batch} | ${vr.map((r) => r.toReadySeconds.toFixed(2)).join(", ")} | ${sm.maxToReady.toFixed(2)} | ${sm.medianToReady.toFixed(2)} | ${sm.maxVmStartToReady.toFixed(2)} | ${power} | ${sm.busyCores} / ${sm.oursCores} / ${sm.otherCores} | ${sm.load.replace(/ on \d+ CPUs/, "").replace("load average ", "")} |`,
    );
  }
  md.push("", "| VMs | gitrack commit → Ready max ÷ reference VM start → Ready max | VM start → Ready on both sides, ratio |", "|---:|---:|---:|");
  const ratios: Array<Record<string, unknown>> = [];
  for (const n of sizes) {
    const a = gs.find((x) => x.batch === n);
    const b = rs.find((x) => x.batch === n);
    if (!a || !b) continue;
    const ratio = a.maxToReady / b.maxToReady;
    const ratioVm = a.maxVmStartToReady / b.maxVmStartToReady;
    ratios.push({ figure: "boot-ratio", batch: n, ratioCommitToReady: r2(ratio), ratioVmStartToReady: r2(ratioVm) });
    md.push(`| ${n} | ${ratio.toFixed(2)} | ${ratioVm.toFixed(2)} |`);
  }
  const slower = ratios.filter((r) => (r.ratioCommitToReady as number) > 1.1);
  md.push(
    "",
    `Daemon peak memory over the whole run (all batches): VmHWM ${hwmMB ?? "–"} MB (\`/proc/<pid>/status\` of the node process; \`ip netns exec\` execs node).`,
    "",
    "Lab reference figures (`/work/shared/lab/README.md`, dnsmasq + cbhttpd.py, quiet machine): 1 VM 12.3–14.4 s to callback, 3 VMs together 17–22 s.",
    "",
    "Aim (issue 4): boots under gitrack about as fast as under dnsmasq + a static server (ratio near 1.0; gitrack's commit → Ready also contains what the reference does not do at all: noticing the commit, applying it and powering the VMs on). " +
      (slower.length
        ? `Missed: gitrack's commit → Ready is more than 10 % slower than the reference for ${slower.map((r) => `${r.batch} VM(s) (ratio ${(r.ratioCommitToReady as number).toFixed(2)})`).join(" and ")}; with one run each under TCG and other load, differences of this size are within the noise of the \"other\" CPU column.`
        : "Met in this run: no ratio above 1.1. With one run each under TCG and other load on the machine, differences of ±20 % are noise (see the \"other\" CPU column)."),
    "",
    "Commands:",
    "",
    ...commands.map((c) => `- \`${mdCell(c)}\``),
    "",
    "The iPXE scripts:",
    "",
    "```",
    "# gitrack: GET /boot/<mac>.ipxe of the first machine while it was being installed",
    gScript.trim().replace(/\/m\/([^/\s]+)\/[^/\s]+\//g, "/m/$1/<token>/") || "(not fetched)",
    "# reference: /boot.ipxe",
    rScript.trim(),
    "```",
    "",
    "Run alone: `node --import tsx test/bench/boot.ts` (prints this section; `--sizes 1,5`).",
    "",
  );
  return { title, markdown: md.join("\n"), rows: [...rowsAll, ...summaries.map((x) => ({ figure: "boot-batch", ...x })), ...ratios, { figure: "boot-daemon-memory", vmHwmMB: hwmMB }] };
}

function accelWord(): string {
  try {
    return /vmx|svm/.test(readFileSync("/proc/cpuinfo", "utf8")) ? "KVM or TCG (auto)" : "TCG (software emulation; no usable KVM here)";
  } catch {
    return "QEMU";
  }
}

/** Adapter for test/bench/run.ts (`benchSection(ctx)` → body without the "##" heading). */
export async function benchSection(ctx: { runs: number; log: (line: string) => void }): Promise<{ markdown: string }> {
  const r = await benchBoot({ log: ctx.log });
  return { markdown: r.markdown.replace(/^## .*\n\n/, "") };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf("--sizes");
  const sizes = i > 0 ? process.argv[i + 1]!.split(",").map(Number) : undefined;
  benchBoot({ sizes }).then(
    (r) => {
      process.stdout.write(r.markdown + "\n");
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
