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

/**
 * What one file may hold. A commit is written by anyone who can open a pull
 * request, so a file is measured before anything walks it: a 689-byte alias
 * bomb expands to billions of nodes, and a 10,000-deep nesting overflows a
 * recursive parser. Over a bound, the file is rejected like any invalid one.
 */
export const YAML_LIMITS = {
  /** Bytes of one file. */
  maxFileBytes: 4 * 1024 * 1024,
  /** Documents in one file. */
  maxDocuments: 10_000,
  /** Nesting of maps and sequences (js-yaml's own bound, aliases counted through). */
  maxDepth: 100,
  /** Nodes of one file with every alias expanded (a 10,000-machine file has about 400,000). */
  maxNodes: 2_000_000,
} as const;

/** Nesting the positioned parser (`yaml`) is given at most: deeper flow collections exhaust its memory. */
const POSITIONED_MAX_DEPTH = 1000;

export function parseFile(file: SourceFile): ParsedFile {
  const diagnostics: Diagnostic[] = [];
  const fail = (line: number, col: number, message: string): ParsedFile => {
    diagnostics.push({ file: file.path, line, col, message });
    return { file, docs: [], diagnostics };
  };
  const bytes = Buffer.byteLength(file.text, "utf8");
  if (bytes > YAML_LIMITS.maxFileBytes) return fail(1, 1, `file is ${bytes} bytes; a file may hold at most ${YAML_LIMITS.maxFileBytes} (split it)`);
  let raw: unknown[];
  try {
    raw = jsyaml.loadAll(file.text, undefined, { schema: jsyaml.CORE_SCHEMA, json: false });
  } catch (err) {
    const mark = (err as { mark?: { line: number; column: number } }).mark;
    const where = mark ? { line: mark.line + 1, col: mark.column + 1 } : { line: 1, col: 1 };
    if (/maxDepth/.test((err as Error).message ?? "")) return fail(where.line, where.col, `nesting deeper than ${YAML_LIMITS.maxDepth} levels`);
    // js-yaml stops at the first problem; the positioned parser lists them all,
    // unless the text nests so deep that it would exhaust that parser.
    if (roughNestingDepth(file.text) > POSITIONED_MAX_DEPTH) return fail(where.line, where.col, firstLineOf((err as Error).message ?? "not valid YAML"));
    const problems = syntaxProblems(file);
    if (problems.length === 0) problems.push({ ...where, message: "not valid YAML" });
    for (const p of problems) diagnostics.push({ file: file.path, line: p.line, col: p.col, message: p.message });
    return { file, docs: [], diagnostics };
  }
  if (raw.length > YAML_LIMITS.maxDocuments) return fail(1, 1, `file holds ${raw.length} documents; a file may hold at most ${YAML_LIMITS.maxDocuments}`);
  // Aliases are shared objects after js-yaml; walking them expanded is what
  // everything after this does, so that is what is counted, and bounded.
  const over = overExpanded(raw);
  if (over) {
    let pos = { line: 1, col: 1 };
    try {
      pos = positionOf(file, over.index, over.path);
    } catch {
      // the document start it is
    }
    return fail(pos.line, pos.col, over.message);
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

function firstLineOf(message: string): string {
  return (message.split("\n")[0] ?? message).replace(/ \(\d+:\d+\)$/, "");
}

/**
 * An upper bound on how deep the text nests: flow brackets outside quotes
 * and comments, and on each line its indentation plus its `- ` and `? `
 * indicators (each block level needs at least one more column).
 */
function roughNestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let quote = "";
  let lineStart = true;
  let indent = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\n") {
      lineStart = true;
      indent = 0;
      quote = quote === "'" || quote === '"' ? quote : "";
      continue;
    }
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = "";
      continue;
    }
    if (lineStart) {
      if (c === " " || ((c === "-" || c === "?") && text[i + 1] === " ")) {
        indent++;
        if (indent > max) max = indent;
        continue;
      }
      lineStart = false;
    }
    if (c === "#" && (i === 0 || text[i - 1] === " " || text[i - 1] === "\t")) {
      while (i + 1 < text.length && text[i + 1] !== "\n") i++;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[" || c === "{") {
      depth++;
      if (depth + indent > max) max = depth + indent;
    } else if (c === "]" || c === "}") depth = Math.max(0, depth - 1);
  }
  return max;
}

/**
 * The first place where the documents, walked with aliases expanded, pass
 * maxNodes or maxDepth (a cycle passes the depth). undefined when they fit.
 */
function overExpanded(docs: unknown[]): { index: number; path: PathSegment[]; message: string } | undefined {
  interface Step {
    v: unknown;
    depth: number;
    parent?: Step;
    key?: PathSegment;
  }
  const pathOf = (s: Step): PathSegment[] => {
    const out: PathSegment[] = [];
    for (let at: Step | undefined = s; at?.parent; at = at.parent) out.push(at.key!);
    return out.reverse();
  };
  let nodes = 0;
  for (let index = 0; index < docs.length; index++) {
    // Iterative, so a cycle or a deep graph cannot overflow the stack here.
    const stack: Step[] = [{ v: docs[index], depth: 0 }];
    while (stack.length) {
      const step = stack.pop()!;
      const v = step.v;
      if (++nodes > YAML_LIMITS.maxNodes) {
        return { index, path: pathOf(step), message: `more than ${YAML_LIMITS.maxNodes} nodes once aliases are expanded (an alias bomb?); a file may hold at most that many` };
      }
      if (v === null || typeof v !== "object") continue;
      if (step.depth >= YAML_LIMITS.maxDepth) {
        return { index, path: pathOf(step), message: `nesting deeper than ${YAML_LIMITS.maxDepth} levels once aliases are followed (an alias to its own ancestor?)` };
      }
      const depth = step.depth + 1;
      if (Array.isArray(v)) for (let k = v.length - 1; k >= 0; k--) stack.push({ v: v[k], depth, parent: step, key: k });
      else for (const k in v) stack.push({ v: (v as Record<string, unknown>)[k], depth, parent: step, key: k });
    }
  }
  return undefined;
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
