// Issue 8, HTTP: guessing tokens, bad event bodies, and discovery reports
// that need only the token any host can get for a MAC of its choosing, sent
// from the client namespace (test/hardening/http-flood.ts), each followed by
// the site-still-served check.
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canUseNetns } from "../lib/netns.js";
import { parseJsonLines } from "../lib/json-log.js";
import { git, hasCommand } from "../daemon/harness.js";
import { TokenIssuer } from "../../reconciler/daemon/tokens.js";
import { ATTACKER, CLIENT, KNOWN, attackFromClient, expectStillServing, startAttackSite, takeBaseline, type AttackSite, type Baseline } from "./harness.js";
import type { HttpFloodResult, HttpRequestSpec } from "./http-flood.js";

const TOOLS = ["busybox", "curl", "git", "tftp"].every(hasCommand);

describe.skipIf(!canUseNetns() || !TOOLS)("HTTP under attack", () => {
  let site: AttackSite;
  let baseline: Baseline;
  let tokens: TokenIssuer;
  let n = 0;

  const flood = (from: string, requests: HttpRequestSpec[], repeat = 1) => {
    const file = join(site.work.path, `requests-${++n}.json`);
    writeFileSync(file, JSON.stringify(requests));
    return attackFromClient<HttpFloodResult>(site, "http-flood.ts", ["--server", site.base, "--bind", from, "--requests", file, "--repeat", String(repeat)]);
  };
  const logLines = (msg: RegExp) => parseJsonLines(site.daemon.log()).filter((l) => msg.test(String(l.msg ?? "")));
  const discoveredCommits = () => {
    try {
      return Number(git(site.repo, ["rev-list", "--count", "refs/heads/gitrack/discovered/lab", "^main"]).trim());
    } catch {
      return 0;
    }
  };

  beforeAll(async () => {
    site = await startAttackSite("http");
    // One TCP connection per fuzzed request: let the client reuse its TIME_WAIT ports.
    site.pair.client.run("sysctl", ["-qw", "net.ipv4.tcp_tw_reuse=1"]);
    // The known machine's own address, for its token-bearing requests.
    site.pair.client.run("ip", ["addr", "add", `${KNOWN.ip}/32`, "dev", site.pair.clientIf]);
    baseline = await takeBaseline(site);
    // The issuer's key is the daemon's (in its state dir): the tokens it hands out, computed here.
    tokens = TokenIssuer.fromStateDir(site.stateDir);
  });
  afterAll(async () => {
    await site?.close();
  });

  it("2,000 random tokens from one address are mostly answered 429, logged once, while the machine's own requests are served", async () => {
    const guesses = Array.from({ length: 2000 }, (): HttpRequestSpec => ({ method: "GET", path: `/m/${KNOWN.name}/${randomBytes(16).toString("hex")}/files/install.cfg` }));
    const r = await flood(ATTACKER, guesses);
    expect(r.sent).toBe(2000);
    expect(r.statuses["429"]).toBeGreaterThanOrEqual(1300);
    expect((r.statuses["401"] ?? 0) + (r.statuses["403"] ?? 0)).toBeLessThanOrEqual(700);
    const own = await flood(KNOWN.ip, [{ method: "GET", path: `/m/${KNOWN.name}/${tokens.forMachine(KNOWN.name, KNOWN.mac, 1)}/files/install.cfg` }]);
    expect(own.first).toEqual([200]);
    expect(logLines(/over its rate limit/).length).toBeLessThanOrEqual(2);
    await expectStillServing(site, baseline);
  }, 120_000);

  it("bad event bodies get 400 with a message, never 500, and no log line carries the token", async () => {
    const token = tokens.forMachine(KNOWN.name, KNOWN.mac, 1);
    const path = `/m/${KNOWN.name}/${token}/events`;
    const bodies = [
      JSON.stringify({ phase: { toString: 1 } }),
      JSON.stringify({ phase: ["Ready"] }),
      JSON.stringify({ phase: "Ready", message: { x: 1 } }),
      JSON.stringify([{ phase: "Ready" }]),
      "42",
      "{not json",
    ];
    const r = await flood(KNOWN.ip, bodies.map((body) => ({ method: "POST", path, body })));
    expect(r.first).toEqual([400, 400, 400, 400, 400, 400]);
    const text = await flood(KNOWN.ip, [{ method: "POST", path, body: JSON.stringify({ phase: { toString: 1 } }), contentType: "text/plain" }]);
    expect(text.first).toEqual([400]);
    expect(site.daemon.log()).not.toContain(token);
    await expectStillServing(site, baseline);
  }, 60_000);

  it("discovery: reports past 64 pending machines are refused, a large report is refused, repeated reports do not commit again", async () => {
    const before = discoveredCommits();
    const report = (mac: string, extra: Record<string, unknown> = {}): HttpRequestSpec => {
      const name = `mac-${mac.replace(/:/g, "")}`;
      return { method: "POST", path: `/m/${name}/${tokens.forUnknown(mac)}/events`, body: JSON.stringify({ phase: "Discovered", serial: "S1", ...extra }) };
    };
    const macs = Array.from({ length: 100 }, (_, i) => `02:79:01:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`);
    const r = await flood(CLIENT, macs.map((m) => report(m)));
    expect(r.statuses["200"]).toBe(64);
    expect(r.statuses["429"]).toBe(36);
    const afterFlood = discoveredCommits();
    expect(afterFlood - before).toBeGreaterThan(0);
    expect(afterFlood - before).toBeLessThanOrEqual(64);
    // About 900 KB in one report: over the event body bound.
    const big = await flood(CLIENT, [report(macs[0]!, { inventory: { blob: "x".repeat(900_000) } }), report(macs[1]!, { inventory: { nested: { a: 1 } } }), report(macs[2]!, { inventory: { macs: ["52:54:00:79:00:02"], cpus: 2 } })]);
    expect(big.first).toEqual([413, 400, 200]);
    // The same 10 machines reporting 10 times each: their records are updated, no new proposal commits.
    const again = await flood(CLIENT, macs.slice(0, 10).map((m) => report(m, { serial: "S2" })), 10);
    expect(again.statuses["200"]).toBe(100);
    expect(discoveredCommits()).toBe(afterFlood);
    expect(logLines(/too many are waiting for review/).length).toBeLessThanOrEqual(2);
    const journal = readFileSync(join(site.stateDir, "state", "discovered-lab.journal.ndjson"), "utf8");
    expect(journal.length).toBeLessThan(1024 * 1024);
    await expectStillServing(site, baseline);
  }, 120_000);

  it("requests whose client resets the connection right after sending are dropped: no error line, nothing answered 500", async () => {
    const paths = ["/boot/02-79-00-00-00-77.ipxe", `/boot/${KNOWN.mac.replace(/:/g, "-")}.ipxe`, "/healthz", "/m/node01/0000/files/install.cfg"];
    const before = logLines(/request failed/).length;
    const r = await attackFromClient<HttpFloodResult>(site, "http-flood.ts", ["--server", site.base, "--bind", ATTACKER, "--hangup", "3000", "--concurrency", "64", "--paths", paths.join(",")], 120_000);
    expect(r.sent).toBe(3000);
    // Before, the rate limiter read the address of a client already gone and threw: a 500 nobody got, one error line each.
    expect(logLines(/request failed/).slice(before)).toEqual([]);
    await expectStillServing(site, baseline);
  }, 150_000);

  // One TCP connection per request runs at about 1,000 a second here: 20,000
  // keeps this under a minute; npm run bench sends 100,000.
  it("20,000 mutated requests to the boot, machine and operations routes leave the daemon serving, and none is answered 500", async () => {
    const r = await attackFromClient<HttpFloodResult>(site, "http-flood.ts", ["--server", site.base, "--bind", ATTACKER, "--fuzz", "20000", "--seed", "8", "--concurrency", "32"], 300_000);
    expect(r.sent).toBe(20_000);
    expect(r.statuses["500"] ?? 0).toBe(0);
    // Nor to a request whose client gave up before the answer.
    expect(logLines(/request failed/)).toEqual([]);
    expect(Object.keys(r.statuses).filter((k) => k !== "0").length).toBeGreaterThan(3);
    // The heap grows under 20,000 connections and V8 keeps it a while: four
    // rounds in a row on one daemon here left its RSS at 129, 125, 158 and
    // 121 MiB against a 94 MiB baseline, not climbing round by round. 128 MiB
    // of slack still catches a leak of about 7 KiB per request or more.
    await expectStillServing(site, baseline, { rssSlackMiB: 128 });
  }, 320_000);
});
