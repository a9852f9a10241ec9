// A proposed Machine file for hardware that booted unknown and reported what
// it found: an address outside the dynamic range and not used by anyone, the
// inventory as annotations, and comments saying what to review.
import type { Model } from "../model/model.js";
import type { SubnetSpec } from "../../schemas/site.js";
import { contains, intToIp, ipToInt, parseCidr } from "../model/net.js";
import { stableYaml } from "../status/yaml.js";

export interface DiscoveredRecord {
  mac: string;
  firstSeen: string;
  lastSeen?: string;
  lastBoot?: string;
  ip?: string;
  inventory?: Record<string, unknown>;
  proposedName?: string;
  proposedIp?: string;
  proposedAt?: string;
  /** When its proposal was last committed (re-reports commit at most once per DISCOVERY_LIMITS.reproposeMs). */
  lastProposedAt?: string;
}

export const DISCOVERY_LIMITS = {
  /** Unknown MACs recorded and not yet in the repository; a new one past this is refused (429). */
  pendingMachines: 64,
  /** Fields of one report's inventory. */
  inventoryFields: 64,
  /** Characters of one inventory field's name and value. */
  fieldNameChars: 64,
  fieldValueChars: 1024,
  /** A machine's proposal is committed again at most this often. */
  reproposeMs: 60_000,
} as const;

/**
 * The inventory of a discovery report: its `inventory` object and its other
 * top-level fields: strings, numbers, booleans or lists of them; or what is
 * wrong with it.
 */
export function discoveryInventory(body: Record<string, unknown>): Record<string, string | number | boolean | Array<string | number | boolean>> | string {
  const out: Record<string, string | number | boolean | Array<string | number | boolean>> = {};
  const nested = body.inventory;
  if (nested !== undefined && (typeof nested !== "object" || nested === null || Array.isArray(nested))) return "inventory must be an object of fields";
  const fields: Array<[string, unknown]> = [...Object.entries((nested ?? {}) as Record<string, unknown>), ...Object.entries(body).filter(([k]) => k !== "phase" && k !== "inventory")];
  for (const [k, v] of fields) {
    if (Object.keys(out).length >= DISCOVERY_LIMITS.inventoryFields) return `a report may hold at most ${DISCOVERY_LIMITS.inventoryFields} fields`;
    if (k.length > DISCOVERY_LIMITS.fieldNameChars || !/^[A-Za-z0-9_.-]+$/.test(k)) return `field name "${k.slice(0, DISCOVERY_LIMITS.fieldNameChars)}" is not a name (letters, digits, _ . -; at most ${DISCOVERY_LIMITS.fieldNameChars})`;
    const scalar = (x: unknown) => typeof x === "string" || typeof x === "number" || typeof x === "boolean";
    if (!scalar(v) && !(Array.isArray(v) && v.every(scalar))) return `field ${k} must be a string, a number, a boolean or a list of them`;
    const length = typeof v === "string" ? v.length : JSON.stringify(v).length;
    if (length > DISCOVERY_LIMITS.fieldValueChars) return `field ${k} is longer than ${DISCOVERY_LIMITS.fieldValueChars} characters`;
    out[k] = v as string | number | boolean | Array<string | number | boolean>;
  }
  return out;
}

export function discoveredName(mac: string): string {
  return `discovered-${mac.replace(/:/g, "")}`;
}

/** The first free address of the subnet the machine was seen on (or the first served one). */
function freeAddress(model: Model, site: string, seenIp: string | undefined, taken: Set<string>): string | undefined {
  const subnets = (model.site(site)?.value.spec.subnets ?? []) as SubnetSpec[];
  const boot = model.site(site)?.value.spec.boot.advertise as string | undefined;
  const used = new Set<string>(taken);
  for (const m of model.machinesOfSite(site)) for (const i of m.interfaces) if (i.ip) used.add(i.ip);
  const away = (s: SubnetSpec) => Number(!(seenIp && contains(parseCidr(s.cidr), seenIp)));
  const ordered = [...subnets].sort((a, b) => away(a) - away(b));
  for (const s of ordered) {
    if ((s.dhcp ?? "serve") === "off") continue;
    const net = parseCidr(s.cidr);
    const r = s.range ? [ipToInt(s.range.start), ipToInt(s.range.end)] : undefined;
    for (let n = net.network + 1; n < net.broadcast; n++) {
      const ip = intToIp(n);
      if (used.has(ip) || ip === s.gateway || ip === boot || (s.dns ?? []).includes(ip)) continue;
      if (r && n >= r[0]! && n <= r[1]!) continue;
      return ip;
    }
  }
  return undefined;
}

export function discoveredMachineFile(
  model: Model,
  site: string,
  rec: DiscoveredRecord,
  takenByProposals: Set<string>,
): { name: string; ip: string; path: string; content: string } | undefined {
  const name = rec.proposedName ?? discoveredName(rec.mac);
  const ip = rec.proposedIp ?? freeAddress(model, site, rec.ip, takenByProposals);
  if (!ip) return undefined;
  const inventory: Record<string, string> = {};
  for (const [k, v] of Object.entries(rec.inventory ?? {})) {
    if (v === undefined || v === null || v === "") continue;
    inventory[`discovered.gitrack.io/${k.replace(/[^A-Za-z0-9._-]/g, "_")}`] = typeof v === "string" ? v : JSON.stringify(v);
  }
  const doc = {
    apiVersion: "gitrack/v1",
    kind: "Machine",
    metadata: { name, labels: { "gitrack.io/discovered": "true" }, annotations: { "discovered.gitrack.io/first-seen": rec.firstSeen, ...inventory } },
    spec: {
      site,
      interfaces: [{ mac: rec.mac, ip }],
      bootEnv: "local",
      intent: "provisioned",
      generation: 1,
    },
  };
  const content = [
    `# Proposed by gitrack: ${rec.mac} booted on site ${site} with no Machine file`,
    "# and reported the inventory below. Review it: rename the machine, choose",
    "# its profiles and bootEnv (it boots from its local disk as proposed), add",
    "# power, then merge this branch to make the machine known.",
    stableYaml(doc),
  ].join("\n");
  return { name, ip, path: `machines/discovered/${name}.yaml`, content };
}
