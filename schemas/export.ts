// Writes schemas/<kind>.schema.json from the TypeBox sources (npm run schemas).
// A test fails when the committed files differ from what this would write.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KINDS, schemaFileContent, schemaFileName } from "./index.js";

const here = dirname(fileURLToPath(import.meta.url));
for (const kind of KINDS) {
  writeFileSync(join(here, schemaFileName(kind)), schemaFileContent(kind));
  console.log(`wrote schemas/${schemaFileName(kind)}`);
}
