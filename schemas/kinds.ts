// The kinds and the committed JSON Schema files, without TypeBox: the
// validator reads the files (tested to equal what the TypeBox sources
// produce), so a command's start-up does not build the schemas again.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const API_VERSION = "gitrack/v1";

export const KINDS = ["Site", "Profile", "Machine", "Cluster", "BootEnv"] as const;
export type Kind = (typeof KINDS)[number];

export function isKind(value: unknown): value is Kind {
  return typeof value === "string" && (KINDS as readonly string[]).includes(value);
}

export function schemaFileName(kind: Kind): string {
  return `${kind.toLowerCase()}.schema.json`;
}

/** The folder holding the committed *.schema.json, from schemas/ or dist/schemas/. */
export function schemaDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "schemas", schemaFileName("Machine")))) return join(dir, "schemas");
    if (existsSync(join(dir, schemaFileName("Machine"))) && existsSync(join(dir, "..", "package.json"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("gitrack: cannot find the schemas/*.schema.json files");
    dir = up;
  }
}

export function readSchemaFile(kind: Kind): Record<string, unknown> {
  return JSON.parse(readFileSync(join(schemaDir(), schemaFileName(kind)), "utf8")) as Record<string, unknown>;
}
