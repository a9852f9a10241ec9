// IPv4 arithmetic for subnets, ranges and reservations.

export function ipToInt(ip: string): number {
  const p = ip.split(".").map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export interface Network {
  cidr: string;
  network: number;
  prefixLength: number;
  mask: number;
  broadcast: number;
}

export function parseCidr(cidr: string): Network {
  const [addr, len] = cidr.split("/");
  const prefixLength = Number(len);
  const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  const network = (ipToInt(addr!) & mask) >>> 0;
  return { cidr, network, prefixLength, mask, broadcast: (network | (~mask >>> 0)) >>> 0 };
}

export function contains(net: Network, ip: string | number): boolean {
  const n = typeof ip === "number" ? ip : ipToInt(ip);
  return ((n & net.mask) >>> 0) === net.network;
}

export function netmaskOf(net: Network): string {
  return intToIp(net.mask);
}

export function normalizeMac(mac: string): string {
  return mac.toLowerCase();
}
