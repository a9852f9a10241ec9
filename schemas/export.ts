// Writes schemas/<kind>.schema.json from the TypeBox sources, and the
// validators generated from them (npm run schemas). A test fails when the
// committed files differ from what this would write.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KINDS, schemaFileContent, schemaFileName } from "./index.js";
import { VALIDATORS_FILE, validatorsFileContent } from "./validators.js";

const here = dirname(fileURLToPath(import.meta.url));
for (const kind of KINDS) {
  writeFileSync(join(here, schemaFileName(kind)), schemaFileContent(kind));
  console.log(`wrote schemas/${schemaFileName(kind)}`);
}
writeFileSync(join(here, VALIDATORS_FILE), validatorsFileContent());
console.log(`wrote schemas/${VALIDATORS_FILE}`);
