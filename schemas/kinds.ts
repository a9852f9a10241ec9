// The kinds, without TypeBox: what start-up needs to know of them costs
// nothing to import (the validators are generated: schemas/validators.ts).

export const API_VERSION = "gitrack/v1";

export const KINDS = ["Site", "Profile", "Machine", "Cluster", "BootEnv"] as const;
export type Kind = (typeof KINDS)[number];

export function isKind(value: unknown): value is Kind {
  return typeof value === "string" && (KINDS as readonly string[]).includes(value);
}

export function schemaFileName(kind: Kind): string {
  return `${kind.toLowerCase()}.schema.json`;
}
