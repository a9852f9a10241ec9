// `gitrack serve` as a real process in a network namespace, driven by git
// commits to a repository made with `gitrack init`, and checked with real
// clients in a second namespace: udhcpc, dhclient, perfdhcp (as a relay),
// atftp/tftp-hpa, curl and the git CLI (issue 3). One daemon serves the
// whole sequence; the tests run in order and build on each other.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import jsyaml from "js-yaml";
import { canUseNetns, createVethPair, type VethPair } from "../lib/netns.js";
import { MessageType, Opt, enc, macToChaddr, parseMessage, serializeMessage } from "../../reconciler/services/dhcp/codec.js";
import {
  ROOT,
  bootEnvDoc,
  commitFiles,
  curl,
  curlFrom,
  git,
  gitrack,
  hasCommand,
  machineDoc,
  setMac,
  startDaemon,
  tempDir,
  udhcpc,
  waitFor,
  type DaemonProcess,
} from "./harness.js";

const SERVER = "10.77.0.1";

/** The daemon's git note on `commit` in the repository at `dir`, if it wrote one yet. */
function noteIn(dir: string, commit: string): string | undefined {
  try {
    return git(dir, ["notes", "--ref=gitrack/lab", "show", commit]);
  } catch {
    return undefined;
  }
}
const BASE = `http://${SERVER}:8080`;
const N1 = { name: "node01", mac: "52:54:00:77:00:01", ip: "10.77.0.11" };
const N2 = { name: "node02", mac: "52:54:00:77:00:02", ip: "10.77.0.12", bootEnv: "test-badsum" };
const N3 = { name: "node03", mac: "52:54:00:77:00:03", ip: "10.77.0.13" };
const UNKNOWN_MAC = "52:54:00:99:00:01";
const TOOLS = ["busybox", "curl", "git"].every(hasCommand);
const IPXE_ROOT = "/usr/lib/ipxe";

const siteDoc = (mode: "serve" | "proxy" = "serve") => `apiVersion: gitrack/v1
kind: Site
metadata:
  name: lab
spec:
  params:
    timezone: UTC
    ntp: pool.ntp.org
  subnets:
    - name: prov
      cidr: 10.77.0.0/24
      gateway: 10.77.0.1
      dns: [10.77.0.1]
      dhcp: ${mode}
${mode === "serve" ? "      range: {start: 10.77.0.200, end: 10.77.0.249}\n" : ""}      leaseSeconds: 3600
    - name: relayed
      cidr: 10.78.0.0/16
      gateway: 10.78.0.2
      dhcp: serve
      relayed: true
      range: {start: 10.78.1.1, end: 10.78.1.250}
      leaseSeconds: 3600
  boot:
    advertise: ${SERVER}
    httpPort: 8080
    unknownBootEnv: discovery
  rollout:
    maxUnavailable: 2
    failureThreshold: 3
`;

describe.skipIf(!canUseNetns() || !TOOLS)("gitrack serve with real clients", () => {
  let pair: VethPair;
  let work: ReturnType<typeof tempDir>;
  let repo: string;
  let stateDir: string;
  let daemon: DaemonProcess;
  let starts = 0;
  let kernel: { path: string; sha256: string; bytes: Buffer };
  let initrd: { path: string; sha256: string; bytes: Buffer };
  let badKernel: { path: string; bytes: Buffer };
  const commits: Record<string, string> = {};
  const saved: Record<string, string> = {};

  const get = (path: string, extra: string[] = []) => curl(pair.client, work.path, `${BASE}${path}`, extra);
  /** A MAC's iPXE script, asked from `from` (a known machine's script is served only to its own address). */
  const script = (mac: string, from?: string) => {
    const path = `/boot/${mac.replace(/:/g, "-")}.ipxe`;
    return from ? curlFrom(pair.client, pair.clientIf, from, work.path, `${BASE}${path}`) : get(path);
  };
  const api = (path: string) => {
    const token = readFileSync(join(stateDir, "api-token"), "utf8").trim();
    const r = get(`/api/v1${path}`, ["-H", `Authorization: Bearer ${token}`]);
    return { status: r.status, json: r.status === 200 ? (JSON.parse(r.text) as Record<string, unknown>) : undefined };
  };
  const health = () => JSON.parse(get("/healthz").text) as { ok: boolean; commit: string | null };
  const tokenOf = (name: string, text: string) => new RegExp(`/m/${name}/(${name}\\.[A-Za-z0-9_-]+)/`).exec(text)?.[1];
  // A new MAC on the client veth leaves the server's neighbour entry for
  // 10.77.0.250 pointing at the old one; flush it so unicast replies (TFTP,
  // HTTP) are not dropped until it goes stale.
  const useMac = (mac: string) => {
    setMac(pair.client, pair.clientIf, mac);
    pair.server.run("ip", ["neigh", "flush", "dev", pair.serverIf]);
  };
  const lease = (mac: string) => {
    useMac(mac);
    return udhcpc(pair.client, pair.clientIf, work.path);
  };
  const start = async () => {
    daemon = startDaemon(
      pair.server,
      ["--repo", repo, "--site", "lab", "--state-dir", stateDir, "--listen", SERVER, "--status-interval", "1"],
      join(work.path, `daemon-${++starts}.log`),
    );
    await daemon.ready();
  };
  const statusFile = (name: string) =>
    jsyaml.load(git(repo, ["show", `gitrack/status/lab:machines/${name}.yaml`]), { schema: jsyaml.CORE_SCHEMA }) as {
      metadata: { annotations: Record<string, string> };
      status: { phase: string; addresses: Array<{ mac: string; ip: string }>; bootTarget: string };
    };
  const note = (commit: string) => noteIn(repo, commit);

  beforeAll(async () => {
    work = tempDir("daemon");
    repo = join(work.path, "repo");
    stateDir = join(work.path, "state");
    const file = (name: string, bytes: Buffer) => {
      const path = join(work.path, name);
      writeFileSync(path, bytes);
      return { path, bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
    };
    kernel = file("vmlinuz", randomBytes(300_000));
    initrd = file("initrd.img", randomBytes(200_000));
    badKernel = file("bad-vmlinuz", randomBytes(50_000));
    gitrack(["init", repo]);
    commits.init = git(repo, ["rev-parse", "HEAD"]);
    // The BootEnv that is used pins the real digests; test-badsum pins the
    // digest of the good kernel to the bytes of another file.
    const bad = bootEnvDoc("test-badsum", { path: badKernel.path, sha256: kernel.sha256.replace(/^./, (c) => (c === "0" ? "1" : "0")) }, initrd);
    commits.base = commitFiles(
      repo,
      {
        "sites/lab.yaml": siteDoc(),
        "bootenvs/test.yaml": bootEnvDoc("test-install", kernel, initrd) + "---\n" + bad,
        "profiles/base.yaml": readFileSync(join(repo, "profiles/base.yaml"), "utf8").replace("bootEnv: debian-12", "bootEnv: test-install"),
        "machines/node01.yaml": machineDoc(N1),
        "machines/node02.yaml": machineDoc(N2),
      },
      "Lab: a relayed subnet, local installer files, node02 on a BootEnv with a wrong digest",
    );
    pair = createVethPair("dm", { serverAddr: `${SERVER}/24`, clientAddr: "10.77.0.250/24" });
    // The relayed network: perfdhcp relays from 10.78.0.2 (giaddr).
    pair.server.run("ip", ["addr", "add", "10.78.0.1/16", "dev", pair.serverIf]);
    pair.client.run("ip", ["addr", "add", "10.78.0.2/16", "dev", pair.clientIf]);
    await start();
  });

  afterAll(async () => {
    await daemon?.kill("SIGTERM");
    await pair?.destroy();
    work?.remove();
  });

  it("serves the tracked commit and names it on /healthz", () => {
    expect(health()).toMatchObject({ ok: true, commit: commits.base });
  });

  // --- DHCP --------------------------------------------------------------------

  it("gives a known MAC its reserved address and hostname (udhcpc)", () => {
    expect(lease(N1.mac)).toMatchObject({ ip: N1.ip, hostname: N1.name, serverid: SERVER });
  });

  it("gives an unknown MAC an address from the dynamic range (udhcpc)", () => {
    const l = lease(UNKNOWN_MAC);
    expect(l?.ip).toMatch(/^10\.77\.0\.2[0-4]\d$/);
    saved.unknownIp = l!.ip!;
  });

  it("tells a BIOS PXE client to fetch undionly.kpxe from the daemon (udhcpc with option 60 and 93)", () => {
    useMac(N1.mac);
    const pxe = udhcpc(pair.client, pair.clientIf, work.path, ["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"]);
    expect(pxe).toMatchObject({ ip: N1.ip, boot_file: "undionly.kpxe", siaddr: SERVER });
  });

  it("tells iPXE (user class iPXE) to fetch the machine's script over HTTP (udhcpc with option 77)", () => {
    useMac(N1.mac);
    const l = udhcpc(pair.client, pair.clientIf, work.path, ["-x", "0x4d:69505845"]);
    expect(l?.boot_file).toBe(`${BASE}/boot/52-54-00-77-00-01.ipxe`);
  });

  it.skipIf(!hasCommand("dhclient"))("gives a known MAC its reserved address (dhclient)", () => {
    useMac(N2.mac);
    const lf = join(work.path, "dhclient.leases");
    const pf = join(work.path, "dhclient.pid");
    pair.client.run("dhclient", ["-4", "-1", "-sf", "/bin/true", "-lf", lf, "-pf", pf, pair.clientIf], { timeoutMs: 30_000 });
    try {
      expect(readFileSync(lf, "utf8")).toMatch(new RegExp(`fixed-address ${N2.ip.replace(/\./g, "\\.")};`));
    } finally {
      if (existsSync(pf)) pair.client.run("kill", [readFileSync(pf, "utf8").trim()]);
    }
  });

  it.skipIf(!hasCommand("perfdhcp"))("answers relayed requests to the relay (perfdhcp with giaddr 10.78.0.2)", () => {
    let out = "";
    try {
      out = pair.client.run("perfdhcp", ["-4", "-r", "2", "-R", "5", "-p", "3", "-l", "10.78.0.2", SERVER], { timeoutMs: 30_000 });
    } catch (err) {
      out = (err as { stdout?: string }).stdout ?? ""; // exit 3: the counts decide
    }
    const stat = (section: string, field: string): number => {
      const m = new RegExp(`Statistics for: ${section}[\\s\\S]*?${field}: (\\d+)`).exec(out);
      return m ? Number(m[1]) : -1;
    };
    // perfdhcp stops after -p 3 s: the last exchange may still be in flight.
    expect(stat("DISCOVER-OFFER", "sent packets")).toBeGreaterThan(1);
    expect(stat("DISCOVER-OFFER", "received packets")).toBeGreaterThanOrEqual(stat("DISCOVER-OFFER", "sent packets") - 1);
    expect(stat("REQUEST-ACK", "received packets")).toBeGreaterThan(0);
    expect(stat("REQUEST-ACK", "received packets")).toBeGreaterThanOrEqual(stat("REQUEST-ACK", "sent packets") - 1);
  });

  // --- TFTP --------------------------------------------------------------------

  it.skipIf(!hasCommand("atftp") || !existsSync(join(IPXE_ROOT, "undionly.kpxe")))("serves undionly.kpxe over TFTP with blksize and windowsize (atftp)", () => {
    const out = join(work.path, "undionly.kpxe");
    pair.client.run("atftp", ["--option", "blksize 1428", "--option", "windowsize 8", "-g", "-r", "undionly.kpxe", "-l", out, SERVER, "69"]);
    expect(createHash("sha256").update(readFileSync(out)).digest("hex")).toBe(createHash("sha256").update(readFileSync(join(IPXE_ROOT, "undionly.kpxe"))).digest("hex"));
  });

  it.skipIf(!hasCommand("tftp"))("refuses TFTP paths outside its root (tftp-hpa)", () => {
    for (const path of ["../../../../etc/passwd", "/etc/passwd", "..%2f..%2f..%2fetc/passwd"]) {
      const out = join(work.path, `escape-${randomBytes(3).toString("hex")}`);
      try {
        pair.client.run("tftp", [SERVER, "69", "-m", "binary", "-c", "get", path, out], { timeoutMs: 20_000 });
      } catch {
        /* an error is the expected answer; the file decides */
      }
      const got = existsSync(out) ? readFileSync(out, "utf8") : "";
      expect(got, path).not.toContain("root:");
    }
  });

  // --- HTTP boot -----------------------------------------------------------------

  it("serves a known MAC its BootEnv script with kernel and initrd from /cache/", () => {
    const r = script(N1.mac, N1.ip);
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/^#!ipxe/);
    expect(r.text).toContain(`${BASE}/cache/${kernel.sha256}/`);
    expect(r.text).toContain(`${BASE}/cache/${initrd.sha256}/`);
    saved.token1 = tokenOf(N1.name, r.text)!;
    saved.token2 = tokenOf(N2.name, script(N2.mac, N2.ip).text)!;
    expect(saved.token1).toBeTruthy();
    expect(saved.token2).toBeTruthy();
  });

  it("serves a known machine's script, which carries its token, only to that machine's address", () => {
    const other = script(N1.mac); // from 10.77.0.250, the client's own address
    expect(other.status).toBe(403);
    expect(other.text).not.toContain("/m/");
    expect(script(N1.mac, N3.ip).status).toBe(403); // another machine's address
    expect(daemon.lines(/^boot script refused/).some((l) => l.remote === "10.77.0.250" && l.machine === N1.name)).toBe(true);
    expect(script(N1.mac, N1.ip).status).toBe(200);
  });

  it("serves an unknown MAC's discovery script only to the address our DHCP leased to it", () => {
    expect(saved.unknownIp).toBeTruthy();
    const other = script(UNKNOWN_MAC); // from 10.77.0.250
    expect(other.status).toBe(403);
    expect(other.text).not.toContain("/m/");
    const own = script(UNKNOWN_MAC, saved.unknownIp);
    expect(own.status).toBe(200);
    expect(own.text).toContain("phase=Discovered");
  });

  it("serves an unknown MAC the discovery script", () => {
    const r = script("52:54:00:99:00:77");
    expect(r.status).toBe(200);
    expect(r.text).toContain("phase=Discovered");
    expect(r.text).not.toContain("/cache/");
  });

  it("turns an unknown machine's discovery report (iPXE GET) into a proposed Machine on gitrack/discovered/lab", async () => {
    const mac = "52:54:00:99:00:77";
    const events = /imgfetch --name discovered (\S+)\?/.exec(script(mac).text)?.[1];
    expect(events).toMatch(/\/m\/mac-525400990077\/mac-525400990077\.[A-Za-z0-9_-]+\/events$/);
    const r = curl(pair.client, work.path, `${events}?phase=Discovered&mac=${mac}&serial=SN-4711&manufacturer=QEMU`);
    expect(r.status).toBe(200);
    const doc = await waitFor("the proposal on the discovered branch", () => git(repo, ["show", "gitrack/discovered/lab:machines/discovered/discovered-525400990077.yaml"]));
    expect(doc).toContain(mac);
    expect(doc).toContain("SN-4711");
    expect(git(repo, ["rev-parse", "main"])).toBe(commits.base);
  });

  it("refuses a discovery report without the unknown machine's token (401)", () => {
    expect(get("/m/mac-525400990077/events?phase=Discovered&mac=52:54:00:99:00:77").status).toBe(401);
  });

  it("serves a machine's rendered file with its own token", () => {
    const r = get(`/m/${N1.name}/${saved.token1}/files/install.cfg`);
    expect(r.status).toBe(200);
    expect(r.text).toContain("hostname=node01");
  });

  it("refuses a machine's file without a token (401)", () => {
    expect(get(`/m/${N1.name}/files/install.cfg`).status).toBe(401);
  });

  it("refuses a machine's file with another machine's token (403)", () => {
    expect(get(`/m/${N1.name}/${saved.token2}/files/install.cfg`).status).toBe(403);
  });

  it("serves the kernel from the content-addressed cache, byte for byte", () => {
    const r = get(`/cache/${kernel.sha256}/vmlinuz`);
    expect(r.status).toBe(200);
    expect(createHash("sha256").update(r.body).digest("hex")).toBe(kernel.sha256);
  });

  it("serves a byte range of the initrd (curl -r 0-99)", () => {
    const r = get(`/cache/${initrd.sha256}/initrd.img`, ["-r", "0-99"]);
    expect(r.status).toBe(206);
    expect(r.body.equals(initrd.bytes.subarray(0, 100))).toBe(true);
  });

  it("never serves a file whose sha256 is not the pinned one", () => {
    const s = script(N2.mac, N2.ip).text;
    const url = /kernel (\S+)/.exec(s)?.[1];
    expect(url).toMatch(/\/cache\/[0-9a-f]{64}\//);
    const r = curl(pair.client, work.path, url!);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.body.includes(badKernel.bytes.subarray(0, 64))).toBe(false);
  });

  // --- lifecycle -----------------------------------------------------------------

  it("moves the phase with the installer's events: Installing, Installed, Ready", () => {
    const phases: unknown[] = [];
    for (const phase of ["Installing", "Installed", "Ready"]) {
      const r = get(`/m/${N1.name}/${saved.token1}/events`, ["-X", "POST", "-H", "Content-Type: application/json", "-d", JSON.stringify({ phase, message: `now ${phase}` })]);
      expect(r.status).toBe(200);
      phases.push(api(`/machines/${N1.name}`).json?.phase);
    }
    expect(phases).toEqual(["Installing", "Installed", "Ready"]);
  });

  it("accepts an event posted as a form (busybox wget --post-data, curl -d)", () => {
    const r = get(`/m/${N2.name}/${saved.token2}/events`, ["-d", "phase=Failed&message=disk+not+found"]);
    expect(r.status).toBe(200);
    expect(api(`/machines/${N2.name}`).json).toMatchObject({ phase: "Failed", message: "disk not found" });
  });

  it("serves the local-disk script once the machine is Ready", () => {
    const r = script(N1.mac, N1.ip);
    expect(r.status).toBe(200);
    expect(r.text).not.toContain("/cache/");
    expect(r.text).toMatch(/sanboot|exit/);
    expect(api(`/machines/${N1.name}`).json).toMatchObject({ bootTarget: "local", installedGeneration: 1 });
  });

  it("answers the API only with the bearer token", () => {
    expect(get("/api/v1/machines").status).toBe(401);
    const r = api("/machines");
    expect(r.status).toBe(200);
    expect((r.json as unknown as Array<{ name: string }>).map((m) => m.name)).toEqual(["node01", "node02"]);
  });

  // --- status in Git ---------------------------------------------------------------

  it("writes the machine's phase, addresses and desired commit to gitrack/status/lab", async () => {
    const f = await waitFor("node01 Ready on the status branch", () => {
      const s = statusFile(N1.name);
      return s.status.phase === "Ready" ? s : undefined;
    });
    expect(f.status.addresses).toEqual([{ mac: N1.mac, ip: N1.ip }]);
    expect(f.metadata.annotations["gitrack.io/desired-commit"]).toBe(commits.base);
    expect(git(repo, ["log", "--format=%s", "gitrack/status/lab"]).split("\n").length).toBeGreaterThan(0);
    expect(git(repo, ["log", "-1", "--format=%(trailers:key=Gitrack-Desired-Commit,valueonly)", "gitrack/status/lab"])).toBe(commits.base);
  });

  it("notes the applied commit with outcome: applied", async () => {
    const n = await waitFor("a note on the applied commit", () => note(commits.base));
    expect(n).toMatch(/^outcome: applied$/m);
  });

  // --- commits: rejected, fixed, new ----------------------------------------------

  it("rejects an invalid commit with FILE:LINE:COL errors in its note", async () => {
    saved.script2 = script(N2.mac, N2.ip).text;
    const broken = machineDoc({ ...N2, ip: "10.77.0.22" }).replace("profiles: [worker, base]", "profiles: [worker, base, no-such-profile]");
    commits.bad = commitFiles(repo, { "machines/node02.yaml": broken }, "node02: new address (and a profile that does not exist)");
    const n = await waitFor("a note on the rejected commit", () => note(commits.bad));
    expect(n).toMatch(/^outcome: rejected$/m);
    expect(n).toMatch(/machines\/node02\.yaml:\d+:\d+/);
  });

  it("keeps serving the last good commit after a rejected one (health, script, reservation)", () => {
    expect(health()).toMatchObject({ ok: true, commit: commits.base });
    expect(script(N2.mac, N2.ip).text).toBe(saved.script2);
    expect(lease(N2.mac)?.ip).toBe(N2.ip);
  });

  it("applies the fixed commit that follows a rejected one", async () => {
    commits.fixed = commitFiles(repo, { "machines/node02.yaml": machineDoc({ ...N2, ip: "10.77.0.22" }) }, "node02: new address, fixed");
    await waitFor("the fixed commit to be served", () => health().commit === commits.fixed);
    expect(lease(N2.mac)?.ip).toBe("10.77.0.22");
  });

  it("makes a merged discovery proposal a known machine with the proposed address", async () => {
    git(repo, ["merge", "-q", "--no-edit", "gitrack/discovered/lab"]);
    commits.merged = git(repo, ["rev-parse", "HEAD"]);
    await waitFor("the merge to be served", () => health().commit === commits.merged);
    const doc = jsyaml.load(readFileSync(join(repo, "machines/discovered/discovered-525400990077.yaml"), "utf8")) as { spec: { interfaces: Array<{ ip: string }> } };
    const ip = doc.spec.interfaces[0]!.ip;
    expect(ip).toMatch(/^10\.77\.0\.\d+$/);
    expect(lease("52:54:00:99:00:77")?.ip).toBe(ip);
    expect(script("52:54:00:99:00:77", ip).text).not.toContain("phase=Discovered");
  });

  it("picks up a new Machine from a new commit", async () => {
    commits.node03 = commitFiles(repo, { "machines/node03.yaml": machineDoc(N3) }, "Add node03");
    const text = await waitFor("node03's own script", () => {
      const t = script(N3.mac, N3.ip).text;
      return t.includes("/cache/") ? t : undefined;
    });
    expect(text).toContain(`/m/${N3.name}/`);
    saved.token3 = tokenOf(N3.name, text)!;
    expect(lease(N3.mac)?.ip).toBe(N3.ip);
  });

  // --- restarts ----------------------------------------------------------------------

  it("keeps every lease across a restart (SIGTERM)", async () => {
    await daemon.kill("SIGTERM");
    await start();
    expect(lease(UNKNOWN_MAC)?.ip).toBe(saved.unknownIp);
    expect(lease(N1.mac)?.ip).toBe(N1.ip);
  });

  it("keeps every lease across a crash (SIGKILL)", async () => {
    await daemon.kill("SIGKILL");
    await start();
    expect(lease(UNKNOWN_MAC)?.ip).toBe(saved.unknownIp);
  });

  it("never hands a leased address to another MAC after a restart", () => {
    const other = lease("52:54:00:99:00:02");
    expect(other?.ip).toMatch(/^10\.77\.0\.2[0-4]\d$/);
    expect(other?.ip).not.toBe(saved.unknownIp);
  });

  it("serves the last good commit after a restart while the branch head is invalid", async () => {
    const good = health().commit!;
    const broken = machineDoc({ ...N2, ip: "10.77.0.22" }).replace("profiles: [worker, base]", "profiles: [worker, no-such-profile]");
    commits.bad2 = commitFiles(repo, { "machines/node02.yaml": broken }, "node02: a profile that does not exist");
    await waitFor("a note on the rejected commit", () => note(commits.bad2));
    await daemon.kill("SIGTERM");
    await start();
    expect(health()).toMatchObject({ ok: true, commit: good });
    expect(script(N1.mac, N1.ip).status).toBe(200);
    expect(lease(N2.mac)?.ip).toBe("10.77.0.22");
  });

  it("applies the fix of a head that was invalid at start", async () => {
    commits.fixed2 = commitFiles(repo, { "machines/node02.yaml": machineDoc({ ...N2, ip: "10.77.0.22" }) }, "node02: fixed again");
    await waitFor("the fixed commit to be served", () => health().commit === commits.fixed2);
  });

  it("reinstalls a machine whose generation is raised: boot target back to its BootEnv, phase Pending", async () => {
    commits.gen2 = commitFiles(repo, { "machines/node01.yaml": machineDoc({ ...N1, generation: 2 }) }, "node01: reinstall (generation 2)");
    const m = await waitFor("node01 at generation 2", () => {
      const j = api(`/machines/${N1.name}`).json;
      return j?.generation === 2 && j.phase !== "Ready" ? j : undefined;
    });
    expect(m).toMatchObject({ phase: "Pending", bootTarget: "test-install", installedGeneration: 1 });
    expect(script(N1.mac, N1.ip).text).toContain(`/cache/${kernel.sha256}/`);
  });

  it("asks for a manual power cycle once per generation raise, not again after a restart", async () => {
    const cycles = (d: DaemonProcess) => d.lines(/manual power: please power cycle machine node01/).length;
    await waitFor("the power cycle request in the log", () => cycles(daemon) > 0);
    expect(cycles(daemon)).toBe(1);
    await daemon.kill("SIGKILL");
    await start();
    await waitFor("the commit served after the restart", () => health().commit === commits.gen2);
    expect(cycles(daemon)).toBe(0);
  });

  it("refuses the token of an earlier generation (403) and accepts the new one", () => {
    expect(get(`/m/${N1.name}/${saved.token1}/files/install.cfg`).status).toBe(403);
    const fresh = tokenOf(N1.name, script(N1.mac, N1.ip).text);
    expect(fresh).toBeTruthy();
    expect(fresh).not.toBe(saved.token1);
    const r = get(`/m/${N1.name}/${fresh}/files/install.cfg`);
    expect(r.status).toBe(200);
    expect(r.text).toContain("generation=2");
  });

  it("prints the machines table with gitrack status", async () => {
    const phase = api(`/machines/${N1.name}`).json?.phase as string;
    await waitFor("node01's generation and phase on the status branch", () => {
      const f = statusFile(N1.name);
      return f.metadata.annotations["gitrack.io/desired-commit"] === commits.gen2 && f.status.phase === phase;
    });
    const out = gitrack(["status", "--repo", repo, "--site", "lab"]);
    expect(out).toMatch(/^MACHINE\s+PHASE\s+ADDRESS/m);
    expect(out).toMatch(new RegExp(`^node01\\s+${phase}\\s+10\\.77\\.0\\.11\\s+2\\s+1\\s+test-install`, "m"));
    expect(out).toMatch(/^node02\s+\S+\s+10\.77\.0\.22/m);
  });

  it("removes a decommissioned machine's reservation and reports it Decommissioned", async () => {
    commits.decom = commitFiles(repo, { "machines/node03.yaml": machineDoc({ ...N3, intent: "decommissioned" }) }, "node03: decommissioned");
    await waitFor("the decommission commit to be served", () => health().commit === commits.decom);
    await waitFor("node03 Decommissioned in the API", () => api(`/machines/${N3.name}`).json?.phase === "Decommissioned");
    expect(lease(N3.mac)?.ip).not.toBe(N3.ip);
    const f = await waitFor("node03 Decommissioned on the status branch", () => statusFile(N3.name).status.phase === "Decommissioned" || undefined);
    expect(f).toBe(true);
  });

  it("serves a decommissioned machine the local-disk script, not the discovery one", () => {
    const r = script(N3.mac, N3.ip);
    expect(r.status).toBe(200);
    expect(r.text).not.toContain("phase=Discovered");
    expect(r.text).not.toContain("/cache/");
  });

  it("refuses a decommissioned machine's token (403)", () => {
    expect(saved.token3).toBeTruthy();
    expect(get(`/m/${N3.name}/${saved.token3}/files/install.cfg`).status).toBe(403);
    expect(get(`/m/${N3.name}/${saved.token3}/events`, ["-X", "POST", "-H", "Content-Type: application/json", "-d", '{"phase":"Ready"}']).status).toBe(403);
  });

  it("serves metrics with the daemon's counters", () => {
    const r = get("/metrics");
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/^gitrack_http_requests_total \d+$/m);
    expect(r.text).toContain('gitrack_machines{site="lab",phase="Decommissioned"} 1');
    expect(r.text).toMatch(/^gitrack_scripts_total\{site="lab"\} [1-9]\d*$/m);
  });

  // --- proxy mode (last: it takes the range away) ------------------------------------

  it("gives PXE clients boot information and no address when the subnet is in proxy mode", async () => {
    commits.proxy = commitFiles(repo, { "sites/lab.yaml": siteDoc("proxy") }, "prov: another DHCP server hands out addresses");
    await waitFor("the proxy commit to be served", () => health().commit === commits.proxy);
    // The PXE client broadcasts, as firmware does.
    pair.client.run("ip", ["route", "replace", "broadcast", "255.255.255.255", "dev", pair.clientIf, "table", "main"]);
    const discover = serializeMessage({
      op: 1,
      xid: 0x1234567,
      flags: 0,
      chaddr: macToChaddr("52:54:00:99:00:42"),
      options: [
        [Opt.MESSAGE_TYPE, enc.u8(MessageType.DISCOVER)],
        [Opt.VENDOR_CLASS, enc.str("PXEClient:Arch:00000:UNDI:002001")],
        [Opt.CLIENT_ARCH, enc.u16(0)],
      ],
    }).toString("hex");
    const out = pair.client.run(process.execPath, [join(ROOT, "test/dhcp/probe.mjs"), "--to", `255.255.255.255:67`, "--port", "68", "--wait", "1500", "--expect", "1", discover], { timeoutMs: 20_000 });
    const replies = out
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => parseMessage(Buffer.from((JSON.parse(l) as { hex: string }).hex, "hex")));
    expect(replies.length).toBe(1);
    expect(replies[0]!.options.get(Opt.MESSAGE_TYPE)?.[0]).toBe(MessageType.OFFER);
    expect(replies[0]!.yiaddr).toBe("0.0.0.0");
    expect(replies[0]!.file).toBe("undionly.kpxe");
    expect(replies[0]!.siaddr).toBe(SERVER);
  });

  it("answers the PXE boot server request on port 4011 in proxy mode", () => {
    const request = serializeMessage({
      op: 1,
      xid: 0x7654321,
      flags: 0,
      ciaddr: "10.77.0.250",
      chaddr: macToChaddr("52:54:00:99:00:42"),
      options: [
        [Opt.MESSAGE_TYPE, enc.u8(MessageType.REQUEST)],
        [Opt.VENDOR_CLASS, enc.str("PXEClient:Arch:00000:UNDI:002001")],
        [Opt.CLIENT_ARCH, enc.u16(0)],
      ],
    }).toString("hex");
    const out = pair.client.run(process.execPath, [join(ROOT, "test/dhcp/probe.mjs"), "--to", `${SERVER}:4011`, "--port", "4011", "--wait", "1500", "--expect", "1", request], { timeoutMs: 20_000 });
    const replies = out
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => parseMessage(Buffer.from((JSON.parse(l) as { hex: string }).hex, "hex")));
    expect(replies.length).toBe(1);
    expect(replies[0]!.options.get(Opt.MESSAGE_TYPE)?.[0]).toBe(MessageType.ACK);
    expect(replies[0]!.yiaddr).toBe("0.0.0.0");
    expect(replies[0]!.file).toBe("undionly.kpxe");
  });

  it("gives a plain DHCP client no address in proxy mode (udhcpc)", () => {
    expect(lease("52:54:00:99:00:43")).toBeNull();
  });
});

// --- a remote repository ------------------------------------------------------------

describe.skipIf(!canUseNetns() || !TOOLS)("gitrack serve following a remote repository", () => {
  const SECRET = "webhook-secret-for-tests";
  const PORT = 8081;
  let pair: VethPair;
  let work: ReturnType<typeof tempDir>;
  let repo: string;
  let bare: string;
  let daemon: DaemonProcess;
  const commits: Record<string, string> = {};

  const get = (path: string, extra: string[] = []) => curl(pair.client, work.path, `http://${SERVER}:${PORT}${path}`, extra);
  const health = () => JSON.parse(get("/healthz").text) as { ok: boolean; commit: string | null };
  const hook = (body: string, signature: string) =>
    get("/api/v1/hooks/git", ["-X", "POST", "-H", "Content-Type: application/json", "-H", `X-GitHub-Event: push`, "-H", `X-Hub-Signature-256: ${signature}`, "--data-binary", body]);
  const sign = (body: string) => `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`;
  const bareNote = (commit: string) => noteIn(bare, commit);

  beforeAll(async () => {
    work = tempDir("daemon-remote");
    repo = join(work.path, "work");
    bare = join(work.path, "site.git");
    gitrack(["init", repo]);
    commits.init = git(repo, ["rev-parse", "HEAD"]);
    git(work.path, ["clone", "-q", "--bare", repo, bare]);
    git(repo, ["remote", "add", "origin", bare]);
    pair = createVethPair("dr", { serverAddr: `${SERVER}/24`, clientAddr: "10.77.0.250/24" });
    // --fetch-interval 0: no safety-net fetch, so only the webhook brings a push in.
    await start(0);
  });

  let starts = 0;
  const start = async (fetchInterval: number) => {
    daemon = startDaemon(
      pair.server,
      ["--repo", `file://${bare}`, "--site", "lab", "--state-dir", join(work.path, "state"), "--listen", SERVER, "--http-port", String(PORT), "--no-dhcp", "--no-tftp", "--status-interval", "1", "--fetch-interval", String(fetchInterval)],
      join(work.path, `daemon-${++starts}.log`),
      { GITRACK_WEBHOOK_SECRET: SECRET },
    );
    await daemon.ready();
  };

  afterAll(async () => {
    await daemon?.kill("SIGTERM");
    await pair?.destroy();
    work?.remove();
  });

  it("clones the remote repository and serves its branch", () => {
    expect(health()).toMatchObject({ ok: true, commit: commits.init });
  });

  it("pushes the status branch and the notes back to the remote", async () => {
    await waitFor("gitrack/status/lab in the bare repository", () => git(bare, ["rev-parse", "--verify", "-q", "refs/heads/gitrack/status/lab"]) || undefined);
    const n = await waitFor("the note in the bare repository", () => bareNote(commits.init));
    expect(n).toMatch(/^outcome: applied$/m);
  });

  it("refuses a webhook with a bad signature (401)", () => {
    const body = JSON.stringify({ ref: "refs/heads/main" });
    expect(hook(body, sign(body + " ")).status).toBe(401);
    expect(hook(body, "sha256=" + "0".repeat(64)).status).toBe(401);
  });

  it("accepts a signed webhook sent as a form (GitHub's application/x-www-form-urlencoded)", () => {
    const body = `payload=${encodeURIComponent(JSON.stringify({ ref: "refs/heads/main" }))}`;
    const r = get("/api/v1/hooks/git", ["-X", "POST", "-H", "Content-Type: application/x-www-form-urlencoded", "-H", `X-Hub-Signature-256: ${sign(body)}`, "--data-binary", body]);
    expect(r.status).toBe(200);
  });

  it("fetches and applies a pushed commit when a signed webhook arrives", async () => {
    const doc = readFileSync(join(repo, "machines/node02.yaml"), "utf8").replace("generation: 1", "generation: 2");
    commits.pushed = commitFiles(repo, { "machines/node02.yaml": doc }, "node02: reinstall");
    git(repo, ["push", "-q", "origin", "main"]);
    const body = JSON.stringify({ ref: "refs/heads/main", after: commits.pushed });
    expect(hook(body, sign(body)).status).toBe(200);
    await waitFor("the pushed commit to be served", () => health().commit === commits.pushed);
    const n = await waitFor("the pushed commit's note in the bare repository", () => bareNote(commits.pushed));
    expect(n).toMatch(/^outcome: applied$/m);
  });

  it("lets the operator read the pushed status with git fetch", async () => {
    await waitFor("a status commit for the pushed commit", () =>
      git(bare, ["log", "-1", "--format=%(trailers:key=Gitrack-Desired-Commit,valueonly)", "gitrack/status/lab"]) === commits.pushed || undefined,
    );
    git(repo, ["fetch", "-q", "origin", "refs/heads/gitrack/status/lab:refs/remotes/origin/gitrack/status/lab"]);
    const f = jsyaml.load(git(repo, ["show", "origin/gitrack/status/lab:machines/node02.yaml"]), { schema: jsyaml.CORE_SCHEMA }) as { spec: { generation: number } };
    expect(f.spec.generation).toBe(2);
  });

  it("pushes a phase a machine reports, with no new commit to carry it", async () => {
    const token = /\/m\/node01\/(node01\.[A-Za-z0-9_-]+)\//.exec(curlFrom(pair.client, pair.clientIf, "10.77.0.11", work.path, `http://${SERVER}:${PORT}/boot/52-54-00-77-00-01.ipxe`).text)?.[1];
    expect(token).toBeTruthy();
    const r = get(`/m/node01/${token}/events`, ["-X", "POST", "-H", "Content-Type: application/json", "-d", '{"phase":"Installing"}']);
    expect(r.status).toBe(200);
    await waitFor("node01 Installing on the remote's status branch", () => {
      try {
        return /^ {2}phase: Installing$/m.test(git(bare, ["show", "gitrack/status/lab:machines/node01.yaml"])) || undefined;
      } catch {
        return undefined;
      }
    });
  });

  it("restarts on its existing mirror and follows a push on its fetch interval", async () => {
    await daemon.kill("SIGTERM");
    await start(1);
    expect(health().commit).toBe(commits.pushed);
    const doc = readFileSync(join(repo, "machines/node02.yaml"), "utf8").replace("generation: 2", "generation: 3");
    commits.interval = commitFiles(repo, { "machines/node02.yaml": doc }, "node02: reinstall again");
    git(repo, ["push", "-q", "origin", "main"]);
    await waitFor("the pushed commit to be served", () => health().commit === commits.interval);
  });
});
