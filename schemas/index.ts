// One TypeBox source per kind: the TypeScript types, the validator and the
// committed JSON Schema files (schemas/*.schema.json) all come from here.
import { BootEnvDocument } from "./bootenv.js";
import { ClusterDocument } from "./cluster.js";
import { MachineDocument } from "./machine.js";
import { ProfileDocument } from "./profile.js";
import { SiteDocument } from "./site.js";

export { API_VERSION } from "./common.js";
export type { SiteDoc, SubnetSpec } from "./site.js";
export type { ProfileDoc } from "./profile.js";
export type { MachineDoc, PowerSpecT } from "./machine.js";
export type { ClusterDoc, ClusterRoleSpec } from "./cluster.js";
export type { BootEnvDoc, ArtifactSpec } from "./bootenv.js";

export const KIND_SCHEMAS = {
  Site: SiteDocument,
  Profile: ProfileDocument,
  Machine: MachineDocument,
  Cluster: ClusterDocument,
  BootEnv: BootEnvDocument,
} as const;

export type Kind = keyof typeof KIND_SCHEMAS;
export const KINDS = Object.keys(KIND_SCHEMAS) as Kind[];

export function isKind(value: unknown): value is Kind {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(KIND_SCHEMAS, value);
}

/** The JSON Schema text committed as schemas/<kind>.schema.json. */
export function schemaFileContent(kind: Kind): string {
  const schema = { $schema: "https://json-schema.org/draft/2020-12/schema", ...KIND_SCHEMAS[kind] };
  return JSON.stringify(schema, null, 2) + "\n";
}

export function schemaFileName(kind: Kind): string {
  return `${kind.toLowerCase()}.schema.json`;
}
