// The DHCP server's configuration as the daemon hands it over, and its
// compiled form: subnets parsed to integers, reservations indexed by MAC and
// by address. Compiling 10,000 reservations takes a few milliseconds, so the
// daemon can call setConfig() for every applied commit.
import { ipToInt, isIPv4 } from "./codec.js";
import type { LeasePool } from "./leases.js";

export interface DhcpSubnet {
  name: string;
  cidr: string;
  gateway?: string;
  dns: string[];
  mode: "serve" | "proxy" | "off";
  range?: { start: string; end: string };
  leaseSeconds: number;
  domain?: string;
  /**
   * Reached through DHCP relays: a relayed request (giaddr set) is answered
   * only for a subnet that says so, never for a giaddr inside a subnet
   * served on the local wire (README.md, "Relays").
   */
  relayed?: boolean;
  /** The relays' addresses (giaddr); when given, only these are answered. */
  relays?: string[];
}

export interface DhcpReservation {
  /** Lower-case aa:bb:cc:dd:ee:ff. */
  mac: string;
  ip: string;
  hostname: string;
  /** A DhcpSubnet name. */
  subnet: string;
}

export interface DhcpBootInfo {
  /** The address machines use for TFTP/HTTP (siaddr, option 66). */
  nextServer: string;
  /** Option 93 = 0, BIOS: "undionly.kpxe". */
  biosFile: string;
  /** Option 93 = 7 or 9, UEFI x86-64: "ipxe.efi". */
  uefiX64File: string;
  /** Option 93 = 11, UEFI arm64: "ipxe-arm64.efi". */
  uefiArm64File: string;
  /** The boot file for iPXE (user class "iPXE"): its script URL. */
  ipxeScriptUrl(mac: string): string;
}

export interface DhcpConfig {
  /** Our address on the provisioning network (option 54, the reply source). */
  serverId: string;
  subnets: DhcpSubnet[];
  reservations: DhcpReservation[];
  boot: DhcpBootInfo;
}

export interface CompiledSubnet extends LeasePool {
  def: DhcpSubnet;
  prefix: number;
  broadcast: number;
  maskIp: string;
  broadcastIp: string;
  /** Configured relay addresses, when the subnet lists them. */
  relays?: ReadonlySet<number>;
  /** Size of the dynamic range (0 without one). */
  rangeSize: number;
}

export interface CompiledConfig {
  source: DhcpConfig;
  serverId: string;
  serverIdInt: number;
  subnets: CompiledSubnet[];
  subnetByName: Map<string, CompiledSubnet>;
  byMac: Map<string, DhcpReservation>;
  byIp: Map<string, DhcpReservation>;
  /** The subnet containing serverId, else the only subnet that is not off. */
  local?: CompiledSubnet;
}

export class DhcpConfigError extends Error {
  override readonly name = "DhcpConfigError";
}

/** The widest served subnet; the model allows /8../30. */
export const MIN_PREFIX = 8;
/** The largest dynamic range (the model's bound). */
export const MAX_RANGE = 65_536;

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function parseCidr(cidr: string): { network: number; mask: number; prefix: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr);
  if (!m || !isIPv4(m[1]) || +m[2] > 32) throw new DhcpConfigError(`bad CIDR ${JSON.stringify(cidr)}`);
  const prefix = +m[2];
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { network: (ipToInt(m[1]) & mask) >>> 0, mask, prefix };
}

function ipStr(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Validates and indexes a configuration. Throws DhcpConfigError. */
export function compileConfig(cfg: DhcpConfig): CompiledConfig {
  if (!isIPv4(cfg.serverId)) throw new DhcpConfigError(`serverId ${JSON.stringify(cfg.serverId)} is not an IPv4 address`);
  const serverIdInt = ipToInt(cfg.serverId);
  const subnets: CompiledSubnet[] = [];
  const subnetByName = new Map<string, CompiledSubnet>();
  for (const s of cfg.subnets) {
    if (subnetByName.has(s.name)) throw new DhcpConfigError(`subnet ${s.name}: name used twice`);
    const { network, mask, prefix } = parseCidr(s.cidr);
    // A served subnet wider than /8 (a /0 offers the mask 0.0.0.0) is a mistake.
    if (s.mode !== "off" && prefix < MIN_PREFIX) throw new DhcpConfigError(`subnet ${s.name}: ${s.cidr} is wider than /${MIN_PREFIX}`);
    const broadcast = (network | ~mask) >>> 0;
    const inside = (ip: string, what: string): number => {
      if (!isIPv4(ip)) throw new DhcpConfigError(`subnet ${s.name}: ${what} ${JSON.stringify(ip)} is not an IPv4 address`);
      const n = ipToInt(ip);
      if (((n & mask) >>> 0) !== network) throw new DhcpConfigError(`subnet ${s.name}: ${what} ${ip} is outside ${s.cidr}`);
      return n;
    };
    const excluded = new Set<number>();
    if (((serverIdInt & mask) >>> 0) === network) excluded.add(serverIdInt);
    if (s.gateway) excluded.add(inside(s.gateway, "gateway"));
    for (const d of s.dns) if (!isIPv4(d)) throw new DhcpConfigError(`subnet ${s.name}: DNS server ${JSON.stringify(d)} is not an IPv4 address`);
    let rangeStart: number | undefined;
    let rangeEnd: number | undefined;
    if (s.range) {
      rangeStart = inside(s.range.start, "range start");
      rangeEnd = inside(s.range.end, "range end");
      if (rangeEnd < rangeStart) throw new DhcpConfigError(`subnet ${s.name}: range ends before it starts`);
      if (rangeEnd - rangeStart + 1 > MAX_RANGE) throw new DhcpConfigError(`subnet ${s.name}: range holds more than ${MAX_RANGE} addresses`);
    }
    let relays: Set<number> | undefined;
    if (s.relays && s.relays.length > 0) {
      if (!s.relayed) throw new DhcpConfigError(`subnet ${s.name}: relays listed but the subnet is not relayed`);
      relays = new Set(s.relays.map((r) => inside(r, "relay")));
    }
    if (!(s.leaseSeconds > 0)) throw new DhcpConfigError(`subnet ${s.name}: leaseSeconds must be positive`);
    const c: CompiledSubnet = {
      def: s,
      name: s.name,
      network,
      mask,
      prefix,
      broadcast,
      maskIp: ipStr(mask),
      broadcastIp: ipStr(broadcast),
      rangeStart,
      rangeEnd,
      rangeSize: rangeStart === undefined || rangeEnd === undefined ? 0 : rangeEnd - rangeStart + 1,
      excluded,
      ...(relays ? { relays } : {}),
    };
    subnets.push(c);
    subnetByName.set(s.name, c);
  }
  const byMac = new Map<string, DhcpReservation>();
  const byIp = new Map<string, DhcpReservation>();
  for (const r of cfg.reservations) {
    const mac = r.mac.toLowerCase();
    if (!MAC_RE.test(mac)) throw new DhcpConfigError(`reservation ${r.hostname}: bad MAC ${JSON.stringify(r.mac)}`);
    const sub = subnetByName.get(r.subnet);
    if (!sub) throw new DhcpConfigError(`reservation ${r.hostname}: unknown subnet ${JSON.stringify(r.subnet)}`);
    if (!isIPv4(r.ip) || ((ipToInt(r.ip) & sub.mask) >>> 0) !== sub.network) {
      throw new DhcpConfigError(`reservation ${r.hostname}: ${r.ip} is not inside subnet ${sub.name} (${sub.def.cidr})`);
    }
    if (byMac.has(mac)) throw new DhcpConfigError(`reservation ${r.hostname}: MAC ${mac} reserved twice`);
    if (byIp.has(r.ip)) throw new DhcpConfigError(`reservation ${r.hostname}: ${r.ip} already reserved for ${byIp.get(r.ip)!.mac}`);
    const norm = mac === r.mac ? r : { ...r, mac };
    byMac.set(mac, norm);
    byIp.set(r.ip, norm);
  }
  const active = subnets.filter((s) => s.def.mode !== "off");
  const local = active.find((s) => ((serverIdInt & s.mask) >>> 0) === s.network) ?? (active.length === 1 ? active[0] : undefined);
  return { source: cfg, serverId: cfg.serverId, serverIdInt, subnets, subnetByName, byMac, byIp, local };
}

/** The subnet containing ip (most specific first), if any. */
export function subnetContaining(cfg: CompiledConfig, ip: number): CompiledSubnet | undefined {
  let best: CompiledSubnet | undefined;
  for (const s of cfg.subnets) {
    if (((ip & s.mask) >>> 0) === s.network && (!best || s.prefix > best.prefix)) best = s;
  }
  return best;
}
