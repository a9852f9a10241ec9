// Deterministic YAML for files gitrack commits: the same object always gives
// the same bytes, so an unchanged status makes an unchanged tree (and no commit).
import { stringify } from "yaml";

/** Plain data: Dates become ISO strings, Maps objects, Sets arrays; undefined is dropped. */
function normalize(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Map) return normalize(Object.fromEntries(value));
  if (value instanceof Set) return [...value].map(normalize);
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : normalize(v)));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = normalize(v);
    return out;
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** YAML 1.2 with keys sorted at every level, no anchors and no line folding. */
export function stableYaml(obj: unknown): string {
  return stringify(normalize(obj), {
    version: "1.2",
    sortMapEntries: true,
    aliasDuplicateObjects: false,
    lineWidth: 0,
  });
}
