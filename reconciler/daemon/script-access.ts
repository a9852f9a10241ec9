// Who may read a machine's iPXE script. The script carries the machine's
// token (in its files and events URLs), and that token opens the machine's
// rendered files, which may hold secrets. iPXE cannot send a token of its own
// on that first fetch, so the script is served only to the machine's own
// addresses (what its DHCP answer gave it), to loopback, and to this host's
// own addresses (an operator on the daemon's host can read the state dir
// anyway). For an unknown MAC the address is the one our DHCP bound to it,
// when there is one. `gitrack serve --no-boot-script-address-check` turns
// this off for networks where machines reach the daemon through NAT.
import { networkInterfaces } from "node:os";

/** The address as fastify reports it, without the IPv4-mapped IPv6 prefix. */
export function plainAddress(remote: string): string {
  return remote.startsWith("::ffff:") && remote.includes(".") ? remote.slice(7) : remote;
}

function isLoopback(address: string): boolean {
  return address === "::1" || address.startsWith("127.");
}

function isOwnAddress(address: string): boolean {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.address === address) return true;
  }
  return false;
}

/** Whether `remote` may read the boot script of a machine with these interface addresses. */
export function mayReadBootScript(machineAddresses: Array<string | undefined>, remote: string): boolean {
  const address = plainAddress(remote);
  if (machineAddresses.includes(address)) return true;
  return isLoopback(address) || isOwnAddress(address);
}
