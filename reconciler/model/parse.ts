// Turns the YAML files of one commit into documents, checked against the
// schema of their kind. Each file is handled alone, so a commit that changes
// one file re-parses one file.
import jsyaml from "js-yaml";
import type { ErrorObject, ValidateFunction } from "ajv";
import { API_VERSION, KINDS, isKind, type Kind } from "../../schemas/kinds.js";
import * as generatedValidators from "../../schemas/validators.generated.js";
import type { Diagnostic } from "./diagnostics.js";
import { positionOf, syntaxProblems, type PathSegment } from "./yaml-source.js";

/** The text of one file and where it came from. Kept for lazy positions. */
export interface SourceFile {
  path: string;
  oid: string;
  text: string;
}

export interface SourceDoc {
  file: SourceFile;
  index: number; // document index within the file
  kind: Kind;
  name: string;
  // The validated document. Its shape is its kind's schema type.
  value: { apiVersion: string; kind: Kind; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec: any };
}

/** A document that failed its schema but says what it is: its name still counts for references. */
export interface RejectedDoc {
  kind: Kind;
  name: string;
  site?: string;
  labels?: Record<string, string>;
}

export interface ParsedFile {
  file: SourceFile;
  docs: SourceDoc[];
  diagnostics: Diagnostic[];
  /** Documents whose own errors are reported; references to them are not reported again. */
  rejected?: RejectedDoc[];
}

// The validators are generated ahead of time from the committed JSON Schema
// files (schemas/validators.ts; a test keeps them current), so start-up does
// not load ajv's compiler.
const validators = new Map<Kind, ValidateFunction>(
  Object.entries(generatedValidators as Record<Kind, ValidateFunction>) as [Kind, ValidateFunction][],
);

export function parseFile(file: SourceFile): ParsedFile {
  const diagnostics: Diagnostic[] = [];
  let raw: unknown[];
  try {
    raw = jsyaml.loadAll(file.text, undefined, { schema: jsyaml.CORE_SCHEMA, json: false });
  } catch {
    // js-yaml stops at the first problem; the positioned parser lists them all.
    const problems = syntaxProblems(file);
    if (problems.length === 0) problems.push({ line: 1, col: 1, message: "not valid YAML" });
    for (const p of problems) diagnostics.push({ file: file.path, line: p.line, col: p.col, message: p.message });
    return { file, docs: [], diagnostics };
  }
  const docs: SourceDoc[] = [];
  const rejected: RejectedDoc[] = [];
  raw.forEach((value, index) => {
    if (value === null || value === undefined) return; // an empty document (e.g. a trailing ---)
    const at = (path: PathSegment[], key = false) => ({ file: file.path, ...positionOf(file, index, path, { key }) });
    if (typeof value !== "object" || Array.isArray(value)) {
      diagnostics.push({ ...at([]), message: "a document must be a map with apiVersion, kind, metadata and spec" });
      return;
    }
    const v = value as Record<string, unknown>;
    if (v.apiVersion !== API_VERSION) {
      diagnostics.push({
        ...at(v.apiVersion === undefined ? [] : ["apiVersion"]),
        message: v.apiVersion === undefined ? `missing apiVersion (expected "${API_VERSION}")` : `apiVersion must be "${API_VERSION}"`,
      });
      return;
    }
    if (!isKind(v.kind)) {
      diagnostics.push({
        ...at(v.kind === undefined ? [] : ["kind"]),
        message: v.kind === undefined ? `missing kind (one of ${KINDS.join(", ")})` : `unknown kind "${String(v.kind)}" (expected one of ${KINDS.join(", ")})`,
      });
      return;
    }
    const validate = validators.get(v.kind)!;
    if (!validate(v)) {
      for (const d of schemaDiagnostics(validate.errors ?? [], v)) diagnostics.push({ ...at(d.path, d.key), message: d.message });
      const doc = value as { kind: Kind; metadata?: { name?: unknown; labels?: unknown }; spec?: { site?: unknown } };
      const meta = doc.metadata;
      if (typeof meta?.name === "string") {
        const spec = doc.spec;
        const labels = meta.labels && typeof meta.labels === "object" ? (meta.labels as Record<string, string>) : undefined;
        rejected.push({ kind: doc.kind, name: meta.name, site: typeof spec?.site === "string" ? spec.site : undefined, labels });
      }
      return;
    }
    docs.push({ file, index, kind: v.kind, name: (v.metadata as { name: string }).name, value: v as SourceDoc["value"] });
  });
  return rejected.length ? { file, docs, diagnostics, rejected } : { file, docs, diagnostics };
}

function decodePointer(pointer: string): PathSegment[] {
  if (!pointer) return [];
  return pointer
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function fieldName(path: PathSegment[]): string {
  return path.reduce<string>((acc, seg) => (typeof seg === "number" ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), "");
}

/**
 * ajv errors turned into messages on the offending key or value. Variants of
 * a union that failed only because another variant applied are left out.
 */
function schemaDiagnostics(errors: ErrorObject[], doc: unknown): Array<{ path: PathSegment[]; key: boolean; message: string }> {
  const out: Array<{ path: PathSegment[]; key: boolean; message: string }> = [];
  const seen = new Set<string>();
  for (const e of errors) {
    // The branches of an anyOf (e.g. an integer or a percentage) fail
    // together; the anyOf error itself says what is wanted.
    if (e.schemaPath.includes("/anyOf/")) continue;
    let path = decodePointer(e.instancePath);
    let key = false;
    let message: string;
    const field = () => fieldName(path) || "document";
    switch (e.keyword) {
      case "additionalProperties": {
        const prop = String((e.params as { additionalProperty: string }).additionalProperty);
        message = `${field()}: unknown field "${prop}"`;
        path = [...path, prop];
        key = true;
        break;
      }
      case "required": {
        const prop = String((e.params as { missingProperty: string }).missingProperty);
        message = `${fieldName(path) || "document"}: missing required field "${prop}"`;
        break;
      }
      case "pattern":
      case "format":
        message = `${field()}: ${JSON.stringify(valueAt(doc, path))} is not ${describe(e)}`;
        break;
      case "const":
        message = `${field()}: must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
        break;
      case "anyOf":
        message = `${field()}: ${JSON.stringify(valueAt(doc, path))} is not one of the allowed forms${allowedConsts(e)}`;
        break;
      case "discriminator": {
        const p = e.params as { tag: string; tagValue: unknown };
        if (valueAt(doc, [...path, p.tag]) !== undefined) path = [...path, p.tag];
        message = `${field()}: ${p.tagValue === undefined ? `missing "${p.tag}"` : `unknown ${p.tag} ${JSON.stringify(p.tagValue)}`} (expected one of ${discriminatorValues(e)})`;
        break;
      }
      case "type":
        message = `${field()}: must be ${(e.params as { type: string }).type}`;
        break;
      case "minItems":
        message = `${field()}: needs at least ${(e.params as { limit: number }).limit} item(s)`;
        break;
      default:
        message = `${field()}: ${e.message ?? e.keyword}`;
    }
    const k = `${path.join("/")}|${message}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ path, key, message });
  }
  return out;
}

function valueAt(doc: unknown, path: PathSegment[]): unknown {
  let cur: any = doc;
  for (const seg of path) cur = cur?.[seg];
  return cur;
}

function describe(e: ErrorObject): string {
  const d = (e.parentSchema as { description?: string } | undefined)?.description;
  if (d) return d;
  if (e.keyword === "format") return `a valid ${(e.params as { format: string }).format}`;
  return `matching ${(e.params as { pattern: string }).pattern}`;
}

function allowedConsts(e: ErrorObject): string {
  const branches = (e.schema as Array<{ const?: unknown }> | undefined) ?? [];
  const consts = branches.map((b) => b.const).filter((c) => c !== undefined);
  return consts.length ? ` (${consts.map((c) => JSON.stringify(c)).join(", ")})` : "";
}

function discriminatorValues(e: ErrorObject): string {
  const branches = ((e.parentSchema as { oneOf?: Array<{ properties?: Record<string, { const?: unknown }> }> })?.oneOf) ?? [];
  const tag = (e.params as { tag: string }).tag;
  return branches.map((b) => JSON.stringify(b.properties?.[tag]?.const)).join(", ");
}
