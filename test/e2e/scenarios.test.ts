// Real machines boot from a commit: QEMU VMs whose NICs run iPXE network-boot
// from `gitrack serve` in a lab namespace, exactly as servers in a rack would,
// and the results are read back from Git with the git CLI. The scenarios run
// in order on one lab and one site repository, as an operator's day would.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureGuestAssets, type GuestAssets } from "./lib/assets.js";
import { Lab, canRunLab } from "./lib/lab.js";
import { Netns, uniqueSuffix } from "../lib/netns.js";
import { logLines, machineStatus, note, startDaemon, waitFor, type DaemonProcess } from "./lib/daemon.js";
import { commitFiles, git, machineDoc, makeLabRepo, readRepoFile, type LabMachine } from "./lib/site-repo.js";

const BOOT_MS = 240_000;
const node01: LabMachine = { name: "node01", mac: "52:54:00:77:00:01", ip: "10.77.0.11", hold: true };
const node02: LabMachine = { name: "node02", mac: "52:54:00:77:00:02", ip: "10.77.0.12" };
const strangerMac = "52:54:00:77:00:33";

describe.skipIf(!canRunLab())("end-to-end: machines boot from commits", () => {
  let lab: Lab;
  let assets: GuestAssets;
  let repo: string;
  let stateDir: string;
  let daemon: DaemonProcess;
  let firstCommit: string;

  const api = (path: string): unknown => {
    const token = readRepoFileSafe(join(stateDir, "api-token"));
    return JSON.parse(lab.run("curl", ["-sf", "-H", `Authorization: Bearer ${token}`, `http://10.77.0.1:8080${path}`]));
  };
  const ready = (m: LabMachine, generation: number) => () => {
    const s = machineStatus(repo, m.name);
    return s && s.status.phase === "Ready" && s.status.installedGeneration === generation ? s : undefined;
  };
  // Both daemon runs (before and after the SIGKILL) count.
  const powerActions = (machine: string, action?: string) =>
    ["daemon.log", "daemon-2.log"]
      .flatMap((f) => logLines(join(lab.stateDir, f)))
      .filter((l) => l.msg === "power action" && l.machine === machine && (!action || l.action === action)).length;

  beforeAll(async () => {
    assets = await ensureGuestAssets();
    lab = await Lab.create({ prefix: "e2e", bridgeAddr: "10.77.0.1/24" });
    const work = mkdtempSync(join(tmpdir(), "gitrack-e2e-"));
    repo = join(work, "site");
    stateDir = join(work, "state");
    ({ commit: firstCommit } = makeLabRepo(repo, assets, [node01, node02]));
    daemon = startDaemon(lab, { repo, stateDir });
  }, 300_000);

  afterAll(async () => {
    await lab?.destroy();
    if (repo) rmSync(join(repo, ".."), { recursive: true, force: true });
  });

  it("powers on two committed machines, which PXE boot, report Ready, and show Ready with their reserved addresses on the status branch", async () => {
    const s1 = await waitFor("node01 Ready on the status branch", BOOT_MS, ready(node01, 1), 1000);
    const s2 = await waitFor("node02 Ready on the status branch", BOOT_MS, ready(node02, 1), 1000);
    for (const [s, m] of [[s1, node01], [s2, node02]] as const) {
      expect(s.status.addresses).toEqual([{ mac: m.mac, ip: m.ip }]);
      expect(s.status.observedIp).toBe(m.ip);
      expect(s.metadata.annotations["gitrack.io/desired-commit"]).toBe(firstCommit);
      expect(s.status.bootTarget).toBe("local");
    }
    expect(note(repo, firstCommit)).toMatch(/^outcome: applied$/m);
    expect(git(repo, ["log", "--format=%(trailers:key=Gitrack-Desired-Commit,valueonly)", "-1", "gitrack/status/lab"])).toBe(firstCommit);
    // The guest went through iPXE (DHCP → HTTP script → kernel + initrd) and its installer fetched its rendered file.
    const serial = lab.run("cat", [join(stateDir, "vms", "node02", "serial.log")]);
    expect(serial).toContain("gitrack-guest: config: hostname=node02");
  }, BOOT_MS * 2);

  it("proposes a Machine file on gitrack/discovered/lab for a VM nobody committed, and merging it makes the machine known", async () => {
    const vm = await lab.startVm({ name: "stranger", mac: strangerMac });
    const path = "machines/discovered/discovered-525400770033.yaml";
    const proposal = await waitFor("the proposal on gitrack/discovered/lab", BOOT_MS, () => {
      try {
        return git(repo, ["show", `gitrack/discovered/lab:${path}`]);
      } catch {
        return undefined;
      }
    }, 1000);
    await vm.stop();
    expect(proposal).toMatch(new RegExp(`mac: ["']?${strangerMac}["']?`));
    expect(proposal).toMatch(/discovered\.gitrack\.io\/cpus/);
    expect(git(repo, ["rev-parse", "gitrack/discovered/lab^"])).toBe(git(repo, ["rev-parse", "main"]));
    git(repo, ["merge", "-q", "--ff-only", "gitrack/discovered/lab"]);
    const known = await waitFor("the merged machine in the API", 30_000, () => {
      try {
        return api("/api/v1/machines/discovered-525400770033") as { macs: string[] };
      } catch {
        return undefined;
      }
    });
    expect(known.macs).toEqual([strangerMac]);
  }, BOOT_MS + 60_000);

  it("power-cycles a machine whose generation was raised; it reinstalls and reaches Ready at the new generation while the other machine is untouched", async () => {
    const before02 = machineStatus(repo, "node02")!;
    const actions02 = powerActions("node02");
    const c = commitFiles(repo, { "machines/node01.yaml": machineDoc(node01, 2) }, "Reinstall node01");
    const s = await waitFor("node01 Ready at generation 2", BOOT_MS, ready(node01, 2), 1000);
    expect(s.metadata.annotations["gitrack.io/desired-commit"]).toBe(c);
    const after02 = machineStatus(repo, "node02")!;
    expect(after02.status.lastBoot).toBe(before02.status.lastBoot);
    expect(after02.status.installedGeneration).toBe(1);
    expect(powerActions("node02")).toBe(actions02);
    expect(powerActions("node01", "cycle")).toBe(1);
  }, BOOT_MS + 60_000);

  it("rejects a commit that breaks validation, keeps serving the last good one, and applies the next fixed commit", async () => {
    const good = git(repo, ["rev-parse", "HEAD"]);
    const scriptBefore = lab.run("curl", ["-sf", `http://10.77.0.1:8080/boot/52-54-00-77-00-02.ipxe`]);
    const broken = machineDoc(node02, 2).replace(`mac: "${node02.mac}"`, 'mac: "52:54:00:77:00:zz"');
    const bad = commitFiles(repo, { "machines/node02.yaml": broken }, "Break node02");
    const n = await waitFor("the rejection note", 30_000, () => note(repo, bad));
    expect(n).toMatch(/^outcome: rejected$/m);
    expect(n).toMatch(/machines\/node02\.yaml:\d+:\d+: spec\.interfaces\[0\]\.mac/);
    expect((api("/api/v1/sites") as Array<{ commit: string }>)[0]!.commit).toBe(good);
    expect(lab.run("curl", ["-sf", `http://10.77.0.1:8080/boot/52-54-00-77-00-02.ipxe`])).toBe(scriptBefore);
    expect(powerActions("node02")).toBe(1);

    const fixed = commitFiles(repo, { "machines/node02.yaml": machineDoc(node02, 2) }, "Fix node02 and reinstall it");
    await waitFor("the fixed commit applied", 30_000, () => /^outcome: applied$/m.test(note(repo, fixed) ?? "") || undefined);
    const s = await waitFor("node02 Ready at generation 2", BOOT_MS, ready(node02, 2), 1000);
    expect(s.metadata.annotations["gitrack.io/desired-commit"]).toBe(fixed);
  }, BOOT_MS + 60_000);

  it("survives a SIGKILL while a VM is booting: after a restart the VM still reaches Ready, its address is unchanged, and nothing is done twice", async () => {
    const actionsBefore = powerActions("node02");
    commitFiles(repo, { "machines/node02.yaml": machineDoc(node02, 3) }, "Reinstall node02 again");
    await waitFor("the power cycle of node02", 60_000, () => powerActions("node02") > actionsBefore || undefined, 200);
    await daemon.kill("SIGKILL");
    daemon = startDaemon(lab, { repo, stateDir, logName: "daemon-2.log" });
    const s = await waitFor("node02 Ready at generation 3", BOOT_MS, ready(node02, 3), 1000);
    expect(s.status.observedIp).toBe(node02.ip);
    expect(s.status.lease?.ip ?? node02.ip).toBe(node02.ip);
    expect(powerActions("node02")).toBe(actionsBefore + 1);
    const serial = lab.run("cat", [join(stateDir, "vms", "node02", "serial.log")]);
    const installs = serial.split("gitrack-guest: config: hostname=node02").length - 1;
    expect(installs).toBe(3);
  }, BOOT_MS + 60_000);

  it("decommissions a machine: its reservation goes, its VM is powered off, and its status says so", async () => {
    const running = () => {
      try {
        const text = lab.run("cat", [join(stateDir, "vms", "node01", "qemu.pid")]).trim();
        return text.startsWith("{") ? String((JSON.parse(text) as { pid: number }).pid) : text;
      } catch {
        return "";
      }
    };
    expect(running()).not.toBe("");
    commitFiles(repo, { "machines/node01.yaml": machineDoc(node01, 2, "decommissioned") }, "Decommission node01");
    const s = await waitFor("node01 Decommissioned", 60_000, () => {
      const x = machineStatus(repo, "node01");
      return x?.status.phase === "Decommissioned" ? x : undefined;
    }, 1000);
    expect(s.spec.intent).toBe("decommissioned");
    const view = api("/api/v1/machines/node01") as { phase: string; bootTarget: string };
    expect(view.phase).toBe("Decommissioned");
    expect(powerActions("node01", "off")).toBe(1);
    await waitFor("node01's VM gone", 30_000, () => {
      const pid = running();
      if (!pid) return true;
      try {
        lab.run("kill", ["-0", pid]);
        return undefined;
      } catch {
        return true;
      }
    });
    // No reservation: a DHCP client with node01's MAC now gets an address from the dynamic range.
    expect(dhcpAddressFor(lab, node01.mac)).toMatch(/^10\.77\.0\.2(0\d|[1-4]\d)$/);
    expect(dhcpAddressFor(lab, node02.mac)).toBe(node02.ip);
  }, 120_000);
});

/** The address busybox udhcpc gets for `mac` on the lab's bridge, from a client namespace. */
function dhcpAddressFor(lab: Lab, mac: string): string {
  const client = Netns.create("e2ec");
  const sfx = uniqueSuffix();
  try {
    execFileSync("ip", ["link", "add", `gc${sfx}`, "netns", client.name, "type", "veth", "peer", "name", `gb${sfx}`, "netns", lab.name]);
    lab.run("ip", ["link", "set", `gb${sfx}`, "master", "br0", "up"]);
    client.run("ip", ["link", "set", `gc${sfx}`, "address", mac, "up"]);
    const script = join(lab.stateDir, "udhcpc-print.sh");
    writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && echo "lease=$ip"\nexit 0\n', { mode: 0o755 });
    const out = client.run("busybox", ["udhcpc", "-i", `gc${sfx}`, "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", script], { timeoutMs: 20_000 });
    return /lease=(\S+)/.exec(out)?.[1] ?? "";
  } finally {
    void client.destroy();
  }
}

function readRepoFileSafe(path: string): string {
  try {
    return readRepoFile("/", path).trim();
  } catch {
    return "";
  }
}
