// Hardening (issue 8), the long runs: 1,000,000 mutated packets per UDP
// protocol and 100,000 mutated HTTP requests at one daemon, and what a
// spoofed-relay or new-MAC flood costs real clients while it runs. The site
// and the attack generators are test/hardening's; every figure comes with
// the check that the site was still served after it (alive, no fatal line,
// DHCP/TFTP/HTTP answered within 1 s, RSS back near its baseline, the lease
// journal consistent).
//
//   node --import tsx test/bench/hardening.ts [--packets 1000000]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { git } from "../daemon/harness.js";
import { hostileCommits } from "../hardening/hostile-commits.js";
import { KNOWN, ATTACKER, RELAY, SERVER, attackFromClient, expectStillServing, httpServed, noteOf, rssKiB, startAttackSite, takeBaseline, udhcpcLease, type AttackSite, type Baseline } from "../hardening/harness.js";
import type { DhcpFloodResult } from "../hardening/dhcp-flood.js";
import type { FloodResult } from "../hardening/tftp-flood.js";
import type { HttpFloodResult } from "../hardening/http-flood.js";

interface Row {
  what: string;
  daemon: string;
  command: string;
  seconds: number;
  figure: string;
  peakRssMiB: number;
  served: string;
}

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};

/** Runs `attack` while sampling the daemon's RSS; then the still-served check. */
async function measured<T>(site: AttackSite, baseline: Baseline, attack: () => Promise<T>): Promise<{ r: T; seconds: number; peakRssMiB: number; served: string }> {
  let peak = 0;
  const sampler = setInterval(() => {
    if (site.daemon.running) peak = Math.max(peak, rssKiB(site.daemon.child.pid!));
  }, 200);
  const t0 = process.hrtime.bigint();
  let r: T;
  try {
    r = await attack();
  } finally {
    clearInterval(sampler);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  let served = "yes";
  try {
    await expectStillServing(site, baseline);
  } catch (err) {
    // expectStillServing lists its problems after a first line, or says the daemon stopped and shows its log (not for this table).
    const lines = (err as Error).message.split("\n");
    served = `no: ${lines[0]!.startsWith("the daemon is not running") ? "the daemon is not running" : lines.slice(1, 3).join("; ")}`;
  }
  return { r, seconds, peakRssMiB: Math.round(peak / 1024), served };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");

const script = (name: string, args: string[]) => `ip netns exec CLIENT node --import tsx test/hardening/${name} ${args.join(" ")}`;

/** A finding of issue 8, attacked the same way at this commit's daemon and (with --before REF) at REF's. */
interface Finding {
  what: string;
  command: string;
  attack: (site: AttackSite) => Promise<string>;
}

const ms = (p: DhcpFloodResult) => (p.answered ? `${p.ms} ms` : "no answer in 10 s");

function findings(): Finding[] {
  const spoof = ["spoof-relay", "--server", SERVER, "--bind", ATTACKER, "--net", "10.79.0", "--count", "5000", "--pps", "2000"];
  const newMacs = ["new-macs", "--server", SERVER, "--bind", ATTACKER, "--count", "5000", "--pps", "2000"];
  const spray = ["error-spray", "--server", SERVER, "--bind", ATTACKER, "--file", "big.bin", "--count", "4"];
  return [
    {
      what: "DHCP: 5,000 DISCOVERs with spoofed giaddr in 2.5 s; a relayed client and a renewing client probed during it",
      command: script("dhcp-flood.ts", spoof),
      attack: async (site) => {
        const flood = attackFromClient<DhcpFloodResult>(site, "dhcp-flood.ts", spoof);
        await sleep(1000);
        const relayed = await attackFromClient<DhcpFloodResult>(site, "dhcp-flood.ts", ["probe-relayed", "--server", SERVER, "--relay", RELAY, "--timeout", "10000"]);
        // The renewing probe's ciaddr, on the attacker's interface for the probe only (the ACK is unicast
        // to it): left there, it would take the known MAC's unicast replies from udhcpc's macvlan.
        site.pair.client.run("ip", ["addr", "add", `${KNOWN.ip}/32`, "dev", site.pair.clientIf]);
        let renew: DhcpFloodResult;
        try {
          renew = await attackFromClient<DhcpFloodResult>(site, "dhcp-flood.ts", ["probe-renew", "--server", SERVER, "--ciaddr", KNOWN.ip, "--mac", KNOWN.mac, "--timeout", "10000"]);
        } finally {
          site.pair.client.run("ip", ["addr", "del", `${KNOWN.ip}/32`, "dev", site.pair.clientIf]);
        }
        await flood;
        return `relayed OFFER ${ms(relayed)}, renewing ACK ${ms(renew)}`;
      },
    },
    {
      what: "DHCP: 5,000 DISCOVERs from new MACs, then a new machine's DORA (busybox udhcpc, 5 tries)",
      command: script("dhcp-flood.ts", newMacs),
      attack: async (site) => {
        await attackFromClient<DhcpFloodResult>(site, "dhcp-flood.ts", newMacs);
        const t0 = Date.now();
        const lease = await udhcpcLease(site, "02:79:00:00:00:99", "gtbench", 5);
        return lease ? `lease ${lease.ip} in ${Date.now() - t0} ms` : "no lease in 5 tries";
      },
    },
    {
      what: "TFTP: 4 netascii reads of a 16 MiB file, then an ERROR at every port of the ephemeral range",
      command: script("tftp-flood.ts", spray),
      attack: async (site) => {
        const r = await attackFromClient<FloodResult>(site, "tftp-flood.ts", spray);
        await sleep(2000);
        const d = site.daemon;
        return `${r.sent.toLocaleString("en")} ERRORs sent; the daemon ${d.running ? "still runs" : `exited with status ${d.child.exitCode ?? d.child.signalCode}`}`;
      },
    },
    {
      what: "Commit: a 700-byte YAML alias bomb in a Machine file (test/hardening/hostile-commits.ts)",
      command: "git commit of hostileCommits()[0] to the tracked branch",
      attack: async (site) => {
        const good = git(site.repo, ["rev-parse", "HEAD"]).trim();
        const bomb = site.commit(hostileCommits()[0]!.files, "an alias bomb");
        let note: string | undefined;
        const t0 = Date.now();
        while (!note && Date.now() - t0 < 45_000 && site.daemon.running) {
          await sleep(250);
          note = noteOf(site, bomb);
        }
        const h = await httpServed(site);
        const outcome = note ? (/outcome: (\w+)/.exec(note)?.[1] ?? "?") : "none";
        const served = !h ? "no answer" : h.commit === good ? "the last good commit" : h.commit === bomb ? "the bomb commit" : String(h.commit);
        return `note on the bomb commit: ${note ? `outcome ${outcome} after ${((Date.now() - t0) / 1000).toFixed(1)} s` : "none in 45 s"}; /healthz says served: ${served}`;
      },
    },
  ];
}

/** The last commit before issue 8's fixes (the attack harness had landed, the fixes had not); `--before none` skips the comparison. */
const BEFORE_ISSUE_8 = "4e1fe7b";

function defaultBefore(): string | undefined {
  const ref = arg("before") ?? BEFORE_ISSUE_8;
  if (ref === "none") return undefined;
  try {
    git(ROOT, ["rev-parse", "--verify", "-q", `${ref}^{commit}`]);
    return ref;
  } catch {
    return undefined;
  }
}

/** A detached worktree of `ref`, built, sharing this checkout's node_modules; removed by the returned function. */
function checkoutOf(ref: string): { root: string; remove: () => void } {
  const root = mkdtempSync(join(tmpdir(), "gitrack-before-"));
  execFileSync("git", ["-C", ROOT, "worktree", "add", "-q", "--detach", root, ref], { stdio: "ignore" });
  const remove = () => {
    process.off("exit", onExit);
    try {
      execFileSync("git", ["-C", ROOT, "worktree", "remove", "--force", root], { stdio: "ignore" });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
  // Also when the bench is interrupted (run.ts turns signals into an exit).
  const onExit = () => {
    try {
      remove();
    } catch {
      /* the worktree is pruned by the next `git worktree prune` */
    }
  };
  process.once("exit", onExit);
  try {
    symlinkSync(join(ROOT, "node_modules"), join(root, "node_modules"));
    execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: root, stdio: "ignore" });
  } catch (err) {
    remove();
    throw err;
  }
  return { root, remove };
}

export async function benchHardening(
  ctx: { log: (line: string) => void },
  packets = Number(arg("packets") ?? 1_000_000),
  before = defaultBefore(),
): Promise<{ rows: Row[]; baselineMiB: number; before?: string }> {
  const rows: Row[] = [];
  let baselineMiB = 0;
  const beforeCheckout = before ? checkoutOf(before) : undefined;
  const beforeName = before ? git(ROOT, ["rev-parse", "--short", before]).trim() : undefined;
  try {
    for (const f of findings()) {
      for (const [daemon, root] of [["this commit", undefined], ...(beforeCheckout ? [[`before (${beforeName})`, beforeCheckout.root]] : [])] as Array<[string, string | undefined]>) {
        ctx.log(`hardening: ${daemon}: ${f.what}`);
        const site = await startAttackSite("bench", { root });
        try {
          const baseline = await takeBaseline(site);
          const m = await measured(site, baseline, () => f.attack(site));
          rows.push({ what: f.what, daemon, command: f.command, seconds: m.seconds, figure: m.r, peakRssMiB: m.peakRssMiB, served: m.served });
        } finally {
          await site.close();
        }
      }
    }
  } finally {
    beforeCheckout?.remove();
  }

  const site = await startAttackSite("bench");
  try {
    site.pair.client.run("sysctl", ["-qw", "net.ipv4.tcp_tw_reuse=1"]);
    const baseline = await takeBaseline(site);
    baselineMiB = Math.round(baseline.rssKiB / 1024);
    const long = 3_600_000;
    // The long fuzz runs.
    const fuzzRuns: Array<{ what: string; name: string; args: string[]; figure: (r: unknown, s: number) => string }> = [
      {
        what: `DHCP: ${packets.toLocaleString("en")} mutated requests to ports 67 and 4011, from the wire and a relay`,
        name: "dhcp-flood.ts",
        args: ["fuzz", "--server", SERVER, "--bind", ATTACKER, "--relay", RELAY, "--count", String(packets), "--pps", "20000", "--seed", "81"],
        figure: (r, s) => `${Math.round((r as DhcpFloodResult).sent / s)} packets/s sent, ${Object.values((r as DhcpFloodResult).replies).reduce((a, b) => a + b, 0)} replies`,
      },
      {
        what: `TFTP: ${packets.toLocaleString("en")} mutated requests and transfer packets`,
        name: "tftp-flood.ts",
        args: ["fuzz", "--server", SERVER, "--bind", ATTACKER, "--file", "undionly.kpxe", "--count", String(packets), "--seed", "82"],
        figure: (r, s) => `${Math.round((r as FloodResult).sent / s)} packets/s sent, ${(r as FloodResult).answers} answers`,
      },
      {
        what: `HTTP: ${(packets / 10).toLocaleString("en")} mutated requests (one TCP connection each, so a tenth of the packet count) to the boot, machine and operations routes`,
        name: "http-flood.ts",
        args: ["--server", `http://${SERVER}:8080`, "--bind", ATTACKER, "--fuzz", String(Math.round(packets / 10)), "--seed", "83", "--concurrency", "32"],
        figure: (r, s) => {
          const st = (r as HttpFloodResult).statuses;
          return `${Math.round((r as HttpFloodResult).sent / s)} requests/s, ${st["500"] ?? 0} answered 500, ${st["0"] ?? 0} unanswered`;
        },
      },
    ];
    for (const f of fuzzRuns) {
      ctx.log(`hardening: ${f.name} ${f.args.join(" ")}`);
      const m = await measured(site, baseline, () => attackFromClient(site, f.name, f.args, long));
      rows.push({ what: f.what, daemon: "this commit", command: script(f.name, f.args), seconds: m.seconds, figure: f.figure(m.r, m.seconds), peakRssMiB: m.peakRssMiB, served: m.served });
    }
  } finally {
    await site.close();
  }
  return { rows, baselineMiB, before: beforeName };
}

export async function benchSection(ctx: { runs: number; log: (line: string) => void }): Promise<{ markdown: string }> {
  const { rows, baselineMiB, before } = await benchHardening(ctx);
  const cell = (s: string) => s.replace(/\|/g, "\\|");
  const lines = [
    "One `gitrack serve` in a server namespace (test/hardening/harness.ts: a local /24 with a 50-address range, a relayed /16, one known machine, a TFTP root), attacked from a client namespace on the same veth; CLIENT is that namespace. After each attack the still-served check: alive, no fatal line, the known MAC's DORA, a TFTP read and `/healthz` each within a 1 s client timeout, RSS back within 64 MiB of the baseline, the lease journal consistent.",
    "",
    `Baseline RSS after one exchange per service: ${baselineMiB} MiB. Command for the whole section: \`npm run bench -- --only hardening\` (or \`node --import tsx test/bench/hardening.ts --packets N\`).`,
    "",
    before
      ? `Each finding is attacked twice in this run, at this commit's daemon and at ${before}'s (the last commit before issue 8's fixes, built in a temporary worktree; \`--before REF\` picks another, \`--before none\` skips it), each time on a fresh site. The long fuzz runs are this commit's only.`
      : "The comparison with the daemon before issue 8's fixes was skipped (--before none, or the commit is not in this repository).",
    "",
    "| attack | daemon | seconds | figure | peak RSS MiB | still served after | command |",
    "|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${cell(r.what)} | ${r.daemon} | ${r.seconds.toFixed(1)} | ${cell(r.figure)} | ${r.peakRssMiB} | ${cell(r.served)} | \`${cell(r.command)}\` |`),
    "",
    "No reference server is run here: Kea and dnsmasq have their own figures in the DHCP section.",
  ];
  return { markdown: lines.join("\n") + "\n" };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { rows } = await benchHardening({ log: (l) => process.stderr.write(l + "\n") });
  for (const r of rows) process.stdout.write(JSON.stringify(r) + "\n");
}
