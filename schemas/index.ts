// One TypeBox source per kind: the TypeScript types, the validator and the
// committed JSON Schema files (schemas/*.schema.json) all come from here.
import { BootEnvDocument } from "./bootenv.js";
import { ClusterDocument } from "./cluster.js";
import { MachineDocument } from "./machine.js";
import { ProfileDocument } from "./profile.js";
import { SiteDocument } from "./site.js";

export { API_VERSION, KINDS, isKind, schemaFileName, type Kind } from "./kinds.js";
import { KINDS, schemaFileName, type Kind } from "./kinds.js";
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

// Every kind has a TypeBox source, and nothing else is a kind.
const kindsMatch: Record<Kind, unknown> & Record<keyof typeof KIND_SCHEMAS, unknown> = KIND_SCHEMAS;
void kindsMatch;
void KINDS;

/** The JSON Schema text committed as schemas/<kind>.schema.json. */
export function schemaFileContent(kind: Kind): string {
  const schema = { $schema: "https://json-schema.org/draft/2020-12/schema", ...KIND_SCHEMAS[kind] };
  return JSON.stringify(schema, null, 2) + "\n";
}

