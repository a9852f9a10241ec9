// The DHCP server against real clients (busybox udhcpc, ISC dhclient, Kea's
// perfdhcp) and hand-made packets, in network namespaces joined by a veth.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { canUseNetns, createVethPair, type Netns, type VethPair } from "../lib/netns.js";
import {
  MessageType,
  Opt,
  enc,
  macToChaddr,
  parseMessage,
  parseSubOptions,
  serializeMessage,
  type DhcpMessage,
} from "../../reconciler/services/dhcp/codec.js";
import { REPO, bootInfo, hasCommand, startServer, tempDir, udhcpc, type ServerProcess, type SpecConfig } from "./harness.js";

const PROBE = join(REPO, "test/dhcp/probe.mjs");
// busybox (udhcpc) is needed throughout; dhclient and perfdhcp for their own tests.
const haveTools = hasCommand("busybox");
const SERVER = "10.77.0.1";
const RESERVED_MAC = "52:54:00:aa:00:01";

function config(over: Partial<SpecConfig> = {}): SpecConfig {
  return {
    serverId: SERVER,
    subnets: [
      { name: "prov", cidr: "10.77.0.0/24", gateway: "10.77.0.254", dns: ["10.77.0.1"], mode: "serve", range: { start: "10.77.0.100", end: "10.77.0.149" }, leaseSeconds: 600, domain: "lab.example" },
      { name: "relayed", cidr: "10.78.0.0/16", gateway: "10.78.0.2", dns: [], mode: "serve", relayed: true, range: { start: "10.78.1.1", end: "10.78.1.250" }, leaseSeconds: 600 },
    ],
    reservations: [{ mac: RESERVED_MAC, ip: "10.77.0.10", hostname: "n01", subnet: "prov" }],
    boot: bootInfo(SERVER),
    ...over,
  };
}

interface Packet {
  type: number;
  mac: string;
  xid?: number;
  ciaddr?: string;
  giaddr?: string;
  flags?: number;
  options?: Array<[number, Buffer]>;
}

function packet(p: Packet): string {
  return serializeMessage({
    op: 1,
    xid: p.xid ?? Math.floor(Math.random() * 0xffffffff),
    flags: p.flags ?? 0,
    ciaddr: p.ciaddr,
    giaddr: p.giaddr,
    chaddr: macToChaddr(p.mac),
    options: [[Opt.MESSAGE_TYPE, enc.u8(p.type)], ...(p.options ?? [])],
  }).toString("hex");
}

/** Sends packets from the client namespace and returns the decoded replies. */
function probe(ns: Netns, packets: string[], opts: { to?: string; port?: number; wait?: number; garbage?: number; expect?: number } = {}): Array<DhcpMessage & { from: string; fromPort: number }> {
  const args = [PROBE, "--to", opts.to ?? `${SERVER}:67`, "--port", String(opts.port ?? 68), "--wait", String(opts.wait ?? 800)];
  if (opts.garbage) args.push("--garbage", String(opts.garbage));
  if (opts.expect) args.push("--expect", String(opts.expect));
  const out = ns.run(process.execPath, [...args, ...packets], { timeoutMs: 30_000 });
  return out
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { from: string; port: number; hex: string })
    .map((r) => ({ ...parseMessage(Buffer.from(r.hex, "hex")), from: r.from, fromPort: r.port }));
}

const type = (m: DhcpMessage): number | undefined => m.options.get(Opt.MESSAGE_TYPE)?.[0];
const ipOpt = (m: DhcpMessage, code: number): string | undefined => {
  const v = m.options.get(code);
  return v ? [...v.subarray(0, 4)].join(".") : undefined;
};

function setMac(ns: Netns, ifname: string, mac: string): void {
  ns.run("ip", ["link", "set", "dev", ifname, "address", mac]);
}

describe.skipIf(!canUseNetns() || !haveTools)("DHCP server with real clients", () => {
  let pair: VethPair;
  let work: ReturnType<typeof tempDir>;
  let srv: ServerProcess;

  beforeAll(async () => {
    work = tempDir("dhcp");
    pair = createVethPair("dh", { serverAddr: `${SERVER}/24`, clientAddr: "10.77.0.250/24" });
    // The relayed network: perfdhcp relays from 10.78.0.2 (giaddr).
    pair.server.run("ip", ["addr", "add", "10.78.0.1/16", "dev", pair.serverIf]);
    pair.client.run("ip", ["addr", "add", "10.78.0.2/16", "dev", pair.clientIf]);
    srv = await startServer(pair.server, { options: { stateDir: join(work.path, "state") }, config: config(), logLevel: "debug" }, work.path);
  });

  afterAll(async () => {
    await srv?.stop();
    await pair?.destroy();
    work?.remove();
  });

  it("gives a known MAC its reserved address, hostname and subnet options (udhcpc)", () => {
    setMac(pair.client, pair.clientIf, RESERVED_MAC);
    const lease = udhcpc(pair.client, pair.clientIf, work.path);
    expect(lease).not.toBeNull();
    expect(lease).toMatchObject({ ip: "10.77.0.10", hostname: "n01", subnet: "255.255.255.0", router: "10.77.0.254", dns: "10.77.0.1", domain: "lab.example", serverid: SERVER, lease: "600" });
  });

  it("gives an unknown MAC an address from the subnet's range (udhcpc)", async () => {
    setMac(pair.client, pair.clientIf, "52:54:00:bb:00:01");
    const lease = udhcpc(pair.client, pair.clientIf, work.path);
    expect(lease?.ip).toMatch(/^10\.77\.0\.(1[0-4]\d)$/);
    const leases = await srv.leases();
    expect(leases.find((l) => l.mac === "52:54:00:bb:00:01")).toMatchObject({ ip: lease!.ip, state: "bound", subnet: "prov" });
  });

  it.skipIf(!hasCommand("dhclient"))("leases an address to ISC dhclient", () => {
    setMac(pair.client, pair.clientIf, "52:54:00:bb:00:02");
    const lf = join(work.path, "dhclient.leases");
    const pf = join(work.path, "dhclient.pid");
    pair.client.run("dhclient", ["-4", "-1", "-sf", "/bin/true", "-lf", lf, "-pf", pf, pair.clientIf], { timeoutMs: 30_000 });
    try {
      expect(readFileSync(lf, "utf8")).toMatch(/fixed-address 10\.77\.0\.1[0-4]\d;/);
    } finally {
      if (existsSync(pf)) pair.client.run("kill", [readFileSync(pf, "utf8").trim()]);
    }
  });

  it.skipIf(!hasCommand("perfdhcp"))("answers relayed requests at the relay's address (perfdhcp as the relay)", () => {
    let out = "";
    try {
      out = pair.client.run("perfdhcp", ["-4", "-r", "10", "-R", "20", "-p", "3", "-l", "10.78.0.2", SERVER], { timeoutMs: 30_000 });
    } catch (err) {
      // exit code 3: some exchanges were not completed; the counts decide
      out = (err as { stdout?: string }).stdout ?? "";
    }
    const stat = (section: string, field: string): number => {
      const m = new RegExp(`Statistics for: ${section}[\\s\\S]*?${field}: (\\d+)`).exec(out);
      return m ? Number(m[1]) : -1;
    };
    expect(stat("DISCOVER-OFFER", "sent packets")).toBeGreaterThan(10);
    expect(stat("DISCOVER-OFFER", "received packets")).toBe(stat("DISCOVER-OFFER", "sent packets"));
    expect(stat("REQUEST-ACK", "received packets")).toBe(stat("REQUEST-ACK", "sent packets"));
  });

  it("offers a relayed client an address from the subnet of giaddr and echoes option 82", () => {
    const agent = Buffer.from([1, 4, 0x70, 0x6f, 0x72, 0x74]);
    const replies = probe(pair.client, [packet({ type: MessageType.DISCOVER, mac: "52:54:00:cc:00:01", giaddr: "10.78.0.2", options: [[Opt.RELAY_AGENT, agent]] })], { port: 67, to: `${SERVER}:67`, expect: 1 });
    expect(replies).toHaveLength(1);
    expect(replies[0].yiaddr).toMatch(/^10\.78\.1\./);
    expect(replies[0].options.get(Opt.RELAY_AGENT)).toEqual(agent);
    expect([...replies[0].options.keys()].at(-1)).toBe(Opt.RELAY_AGENT);
  });

  it("sends PXE firmware the binary for its architecture, with next-server", () => {
    const pxe = (mac: string, arch: number): string =>
      packet({ type: MessageType.DISCOVER, mac, options: [[Opt.VENDOR_CLASS, enc.str(`PXEClient:Arch:${String(arch).padStart(5, "0")}:UNDI:003016`)], [Opt.CLIENT_ARCH, enc.u16(arch)]] });
    const files = (mac: string, arch: number): DhcpMessage => probe(pair.client, [pxe(mac, arch)], { expect: 1 })[0];
    const bios = files("52:54:00:dd:00:00", 0);
    expect(bios.file).toBe("undionly.kpxe");
    expect(bios.siaddr).toBe(SERVER);
    expect(files("52:54:00:dd:00:07", 7).file).toBe("ipxe.efi");
    expect(files("52:54:00:dd:00:09", 9).file).toBe("ipxe.efi");
    expect(files("52:54:00:dd:00:0b", 11).file).toBe("ipxe-arm64.efi");
  });

  it("sends iPXE its script URL and option 175 with no-pxedhcp (176) = 1", () => {
    const [offer] = probe(pair.client, [packet({ type: MessageType.DISCOVER, mac: RESERVED_MAC, options: [[Opt.USER_CLASS, enc.str("iPXE")], [Opt.CLIENT_ARCH, enc.u16(7)], [Opt.VENDOR_CLASS, enc.str("PXEClient:Arch:00007:UNDI:003016")]] })], { expect: 1 });
    expect(type(offer)).toBe(MessageType.OFFER);
    expect(offer.yiaddr).toBe("10.77.0.10");
    expect(offer.file).toBe(`http://${SERVER}:8080/boot/${RESERVED_MAC}.ipxe`);
    expect(parseSubOptions(offer.options.get(Opt.IPXE_ENCAP)!).get(176)).toEqual(Buffer.from([1]));
  });

  it("NAKs a request for the wrong address and ACKs the right one (INIT-REBOOT)", () => {
    const [nak] = probe(pair.client, [packet({ type: MessageType.REQUEST, mac: RESERVED_MAC, options: [[Opt.REQUESTED_IP, enc.ip("10.77.0.99")]] })], { expect: 1 });
    expect(type(nak)).toBe(MessageType.NAK);
    expect(nak.yiaddr).toBe("0.0.0.0");
    const [ack] = probe(pair.client, [packet({ type: MessageType.REQUEST, mac: RESERVED_MAC, options: [[Opt.REQUESTED_IP, enc.ip("10.77.0.10")]] })], { expect: 1 });
    expect(type(ack)).toBe(MessageType.ACK);
    expect(ack.yiaddr).toBe("10.77.0.10");
  });

  it("NAKs a client asking for another client's address", () => {
    const [nak] = probe(pair.client, [packet({ type: MessageType.REQUEST, mac: "52:54:00:ee:00:01", options: [[Opt.REQUESTED_IP, enc.ip("10.77.0.10")]] })], { expect: 1 });
    expect(type(nak)).toBe(MessageType.NAK);
  });

  it("stays silent when a REQUEST names another server", () => {
    const replies = probe(pair.client, [
      packet({ type: MessageType.REQUEST, mac: RESERVED_MAC, options: [[Opt.REQUESTED_IP, enc.ip("10.77.0.10")], [Opt.SERVER_ID, enc.ip("10.77.0.9")]] }),
    ]);
    expect(replies).toEqual([]);
  });

  it("renews a bound lease by unicast to ciaddr and NAKs a renewal of someone else's address (RENEWING)", () => {
    const mac = "52:54:00:ee:00:02";
    const [offer] = probe(pair.client, [packet({ type: MessageType.DISCOVER, mac })], { expect: 1 });
    const ip = offer.yiaddr;
    const [ack] = probe(pair.client, [packet({ type: MessageType.REQUEST, mac, options: [[Opt.REQUESTED_IP, enc.ip(ip)], [Opt.SERVER_ID, enc.ip(SERVER)]] })], { expect: 1 });
    expect(type(ack)).toBe(MessageType.ACK);
    // The client now uses its address and renews it: no server id, no
    // requested address, ciaddr set; the ACK comes by unicast to ciaddr.
    pair.client.run("ip", ["addr", "add", `${ip}/24`, "dev", pair.clientIf]);
    try {
      const [renewed] = probe(pair.client, [packet({ type: MessageType.REQUEST, mac, ciaddr: ip })], { expect: 1 });
      expect(type(renewed)).toBe(MessageType.ACK);
      expect(renewed.ciaddr).toBe(ip);
      expect(renewed.yiaddr).toBe(ip);
      expect(renewed.options.get(Opt.LEASE_TIME)?.readUInt32BE(0)).toBe(600);
      const [nak] = probe(pair.client, [packet({ type: MessageType.REQUEST, mac: "52:54:00:ee:00:09", ciaddr: ip })], { expect: 1 });
      expect(type(nak)).toBe(MessageType.NAK);
    } finally {
      pair.client.run("ip", ["addr", "del", `${ip}/24`, "dev", pair.clientIf]);
    }
  });

  it("quarantines a declined address and releases a released one", async () => {
    const mac = "52:54:00:ee:00:03";
    const [offer] = probe(pair.client, [packet({ type: MessageType.DISCOVER, mac })], { expect: 1 });
    const ip = offer.yiaddr;
    probe(pair.client, [packet({ type: MessageType.REQUEST, mac, options: [[Opt.REQUESTED_IP, enc.ip(ip)], [Opt.SERVER_ID, enc.ip(SERVER)]] })], { expect: 1 });
    probe(pair.client, [packet({ type: MessageType.DECLINE, mac, options: [[Opt.REQUESTED_IP, enc.ip(ip)], [Opt.SERVER_ID, enc.ip(SERVER)]] })], { wait: 200 });
    expect((await srv.leases()).find((l) => l.ip === ip)?.state).toBe("declined");
    const [again] = probe(pair.client, [packet({ type: MessageType.DISCOVER, mac, options: [[Opt.REQUESTED_IP, enc.ip(ip)]] })], { expect: 1 });
    expect(again.yiaddr).not.toBe(ip);
    probe(pair.client, [packet({ type: MessageType.REQUEST, mac, options: [[Opt.REQUESTED_IP, enc.ip(again.yiaddr)], [Opt.SERVER_ID, enc.ip(SERVER)]] })], { expect: 1 });
    probe(pair.client, [packet({ type: MessageType.RELEASE, mac, ciaddr: again.yiaddr, options: [[Opt.SERVER_ID, enc.ip(SERVER)]] })], { wait: 200 });
    expect((await srv.leases()).find((l) => l.ip === again.yiaddr)?.state).toBe("released");
  });

  it("answers DHCPINFORM with configuration and no address or lease time", () => {
    const [ack] = probe(pair.client, [packet({ type: MessageType.INFORM, mac: "52:54:00:ee:00:04", ciaddr: "10.77.0.250" })], { expect: 1 });
    expect(type(ack)).toBe(MessageType.ACK);
    expect(ack.yiaddr).toBe("0.0.0.0");
    expect(ack.options.has(Opt.LEASE_TIME)).toBe(false);
    expect(ipOpt(ack, Opt.ROUTER)).toBe("10.77.0.254");
    expect(ack.from).toBe(SERVER);
  });

  it("does not answer an unknown MAC on a subnet without a range, and logs it once", async () => {
    const cfg = config();
    cfg.subnets = cfg.subnets.map((s) => (s.name === "prov" ? { ...s, range: undefined } : s));
    await srv.setConfig(cfg);
    try {
      const before = await srv.stats();
      const replies = probe(pair.client, [packet({ type: MessageType.DISCOVER, mac: "52:54:00:ff:00:01" }), packet({ type: MessageType.DISCOVER, mac: "52:54:00:ff:00:01" })]);
      expect(replies).toEqual([]);
      expect((await srv.stats()).dropped_no_address - before.dropped_no_address).toBe(2);
      await srv.waitForLog(/52:54:00:ff:00:01.*without a dynamic range/);
      expect(srv.stderr.match(/52:54:00:ff:00:01.*without a dynamic range/g)).toHaveLength(1);
      // the reserved machine is still served
      const [offer] = probe(pair.client, [packet({ type: MessageType.DISCOVER, mac: RESERVED_MAC })], { expect: 1 });
      expect(offer.yiaddr).toBe("10.77.0.10");
    } finally {
      await srv.setConfig(config());
    }
  });

  it("keeps answering after a burst of malformed packets", async () => {
    const before = await srv.stats();
    const xid = 777;
    const replies = probe(pair.client, [packet({ type: MessageType.DISCOVER, mac: "52:54:00:ee:00:05", xid })], { garbage: 1500, wait: 1500 });
    expect(replies.some((r) => r.xid === xid && type(r) === MessageType.OFFER)).toBe(true);
    const after = await srv.stats();
    // How many of the 1,500 the kernel queues depends on the receive buffer
    // and on how busy the machine is; those that arrive are counted.
    expect(after.dropped_malformed - before.dropped_malformed).toBeGreaterThan(100);
    expect(after.errors).toBe(0);
    setMac(pair.client, pair.clientIf, "52:54:00:ee:00:06");
    expect(udhcpc(pair.client, pair.clientIf, work.path)?.ip).toMatch(/^10\.77\.0\./);
  });

  it("reports every client it sees through onClientSeen", async () => {
    const seen = srv.events.filter((e) => e.event === "seen");
    expect(seen.some((e) => e.mac === RESERVED_MAC && e.type === "discover" && e.ipxe === true && e.arch === 7)).toBe(true);
    expect(seen.some((e) => e.type === "request")).toBe(true);
  });
});

describe.skipIf(!canUseNetns() || !haveTools)("DHCP server in proxy mode", () => {
  let pair: VethPair;
  let work: ReturnType<typeof tempDir>;
  let srv: ServerProcess;

  beforeAll(async () => {
    work = tempDir("dhcp-proxy");
    pair = createVethPair("dp", { serverAddr: `${SERVER}/24`, clientAddr: "10.77.0.250/24" });
    const cfg = config();
    cfg.subnets = [{ name: "prov", cidr: "10.77.0.0/24", dns: [], mode: "proxy", leaseSeconds: 600 }];
    cfg.reservations = [];
    srv = await startServer(pair.server, { options: { stateDir: join(work.path, "state") }, config: cfg }, work.path);
  });

  afterAll(async () => {
    await srv?.stop();
    await pair?.destroy();
    work?.remove();
  });

  const pxeOptions: Array<[number, Buffer]> = [
    [Opt.VENDOR_CLASS, enc.str("PXEClient:Arch:00000:UNDI:002001")],
    [Opt.CLIENT_ARCH, enc.u16(0)],
    [Opt.CLIENT_MACHINE_ID, Buffer.from([0, ...Array.from({ length: 16 }, (_, i) => i)])],
  ];

  it("offers boot information and no address to a PXE client", () => {
    const [offer] = probe(pair.client, [packet({ type: MessageType.DISCOVER, mac: "52:54:00:11:00:01", options: pxeOptions })], { expect: 1 });
    expect(type(offer)).toBe(MessageType.OFFER);
    expect(offer.yiaddr).toBe("0.0.0.0");
    expect(offer.options.get(Opt.VENDOR_CLASS)?.toString()).toBe("PXEClient");
    expect(offer.file).toBe("undionly.kpxe");
    expect(offer.siaddr).toBe(SERVER);
    expect(offer.options.get(Opt.CLIENT_MACHINE_ID)).toEqual(pxeOptions[2][1]);
    expect(offer.options.has(Opt.LEASE_TIME)).toBe(false);
  });

  it("answers the boot server REQUEST on port 4011 by unicast", () => {
    const [ack] = probe(pair.client, [packet({ type: MessageType.REQUEST, mac: "52:54:00:11:00:01", ciaddr: "10.77.0.250", options: pxeOptions })], { to: `${SERVER}:4011`, port: 4011, expect: 1 });
    expect(type(ack)).toBe(MessageType.ACK);
    expect(ack.file).toBe("undionly.kpxe");
    expect(ack.yiaddr).toBe("0.0.0.0");
    expect(ack.fromPort).toBe(4011);
  });

  it("ignores clients that are not PXE", () => {
    expect(probe(pair.client, [packet({ type: MessageType.DISCOVER, mac: "52:54:00:11:00:02" })])).toEqual([]);
  });
});

describe.skipIf(!canUseNetns() || !haveTools)("DHCP leases are durable", () => {
  let pair: VethPair;
  let work: ReturnType<typeof tempDir>;
  const spec = () => ({ options: { stateDir: join(work.path, "state") }, config: config() });

  beforeAll(() => {
    work = tempDir("dhcp-durable");
    pair = createVethPair("dd", { serverAddr: `${SERVER}/24` });
  });

  afterAll(async () => {
    await pair?.destroy();
    work?.remove();
  });

  it("keeps leases across a stop and start", async () => {
    let srv = await startServer(pair.server, spec(), work.path);
    setMac(pair.client, pair.clientIf, "52:54:00:22:00:01");
    const first = udhcpc(pair.client, pair.clientIf, work.path)!.ip;
    await srv.stop();
    srv = await startServer(pair.server, spec(), work.path);
    try {
      expect((await srv.leases()).find((l) => l.ip === first)).toMatchObject({ mac: "52:54:00:22:00:01", state: "bound" });
      setMac(pair.client, pair.clientIf, "52:54:00:22:00:02");
      expect(udhcpc(pair.client, pair.clientIf, work.path)!.ip).not.toBe(first);
      setMac(pair.client, pair.clientIf, "52:54:00:22:00:01");
      expect(udhcpc(pair.client, pair.clientIf, work.path)!.ip).toBe(first);
    } finally {
      await srv.stop();
    }
  });

  it("keeps every ACKed lease when the server is killed with SIGKILL", async () => {
    let srv = await startServer(pair.server, spec(), work.path);
    const got: Array<[string, string]> = [];
    for (let i = 0; i < 5; i++) {
      const mac = `52:54:00:33:00:0${i}`;
      setMac(pair.client, pair.clientIf, mac);
      got.push([mac, udhcpc(pair.client, pair.clientIf, work.path)!.ip]);
    }
    await srv.kill9();
    srv = await startServer(pair.server, spec(), work.path);
    try {
      const leases = await srv.leases();
      for (const [mac, ip] of got) expect(leases.find((l) => l.ip === ip)).toMatchObject({ mac, state: "bound" });
      // and those addresses are refused to anyone else
      setMac(pair.client, pair.clientIf, "52:54:00:33:00:ff");
      expect(got.map(([, ip]) => ip)).not.toContain(udhcpc(pair.client, pair.clientIf, work.path)!.ip);
    } finally {
      await srv.stop();
    }
  });
});

describe.skipIf(!canUseNetns() || !haveTools)("DHCP broadcast replies without a route for 255.255.255.255", () => {
  for (const serverAddressSocket of [true, false]) {
    it(`reach the client ${serverAddressSocket ? "through the socket bound to serverId" : "as a subnet-directed broadcast"}`, async () => {
      const work = tempDir("dhcp-bcast");
      const pair = createVethPair("db", { serverAddr: `${SERVER}/24` });
      try {
        pair.server.run("ip", ["route", "del", "broadcast", "255.255.255.255", "dev", pair.serverIf, "table", "main"]);
        const srv = await startServer(pair.server, { options: { stateDir: join(work.path, "state"), serverAddressSocket }, config: config() }, work.path);
        try {
          setMac(pair.client, pair.clientIf, "52:54:00:44:00:01");
          expect(udhcpc(pair.client, pair.clientIf, work.path)?.ip).toBe("10.77.0.100");
          const s = await srv.stats();
          expect(s.broadcast_fallbacks).toBe(serverAddressSocket ? 0 : 2);
          expect(s.send_errors).toBe(0);
        } finally {
          await srv.stop();
        }
      } finally {
        await pair.destroy();
        work.remove();
      }
    });
  }
});
