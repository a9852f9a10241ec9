// The committed JSON Schemas and the validators generated from them come from
// the TypeBox sources (npm run schemas); a stale file fails here.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { KINDS, schemaFileContent, schemaFileName } from "../../schemas/index.js";
import * as generated from "../../schemas/validators.generated.js";
import { VALIDATORS_FILE, validatorsFileContent } from "../../schemas/validators.js";

const schemasDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "schemas");

describe("schemas/*.schema.json", () => {
  for (const kind of KINDS) {
    it(`${schemaFileName(kind)} equals what npm run schemas writes for ${kind}`, () => {
      expect(readFileSync(join(schemasDir, schemaFileName(kind)), "utf8")).toBe(schemaFileContent(kind));
    });
  }

  it("exist for every kind and no other", () => {
    const files = readdirSync(schemasDir).filter((f) => f.endsWith(".schema.json")).sort();
    expect(files).toEqual(KINDS.map(schemaFileName).sort());
  });
});

describe("schemas/validators.generated.ts", () => {
  it("equals what npm run schemas writes from the JSON Schemas", () => {
    expect(readFileSync(join(schemasDir, VALIDATORS_FILE), "utf8")).toBe(validatorsFileContent());
  });

  it("exports one validate function per kind", () => {
    expect(Object.keys(generated).sort()).toEqual([...KINDS].sort());
  });
});
