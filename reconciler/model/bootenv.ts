// A BootEnv document prepared for rendering: its templates positioned in
// their YAML file, the params they read, and the problems in them (syntax
// errors, names templates cannot see). Computed once per document.
import { createHash } from "node:crypto";
import { TemplateError, parseTemplate, templateParamRefs, templateUnknownRefs, type TemplateSource } from "../../renderers/engine.js";
import type { BootEnvTemplates } from "../../renderers/bootscript.js";
import type { Diagnostic } from "./diagnostics.js";
import type { SourceDoc } from "./parse.js";
import { positioned, scalarTextStart, type PathSegment } from "./yaml-source.js";
import { isScalar } from "yaml";

export interface BootEnvParamRef {
  param: string;
  optional: boolean;
  file: string;
  line: number;
  col: number;
  /** e.g. `BootEnv debian-12 file preseed.cfg` */
  template: string;
}

export interface BootEnvInfo {
  doc: SourceDoc;
  name: string;
  purpose: "install" | "discovery" | "local" | "live";
  templates: BootEnvTemplates;
  paramRefs: BootEnvParamRef[];
  diagnostics: Diagnostic[];
  /** Changes whenever anything a machine is served from this BootEnv changes. */
  fingerprint: string;
}

export function bootEnvTemplates(doc: SourceDoc): BootEnvInfo {
  const spec = doc.value.spec as {
    purpose?: BootEnvInfo["purpose"];
    kernel?: { url: string; sha256: string };
    initrds?: Array<{ url: string; sha256: string }>;
    cmdline?: string;
    script?: string;
    files?: Array<{ name: string; template: string; contentType?: string }>;
  };
  const purpose = spec.purpose ?? "install";
  const paths = new Map<TemplateSource, PathSegment[]>();
  const tpl = (source: string, path: PathSegment[]): TemplateSource => {
    const pos = scalarTextStart(doc.file, doc.index, path);
    const t = { source, file: doc.file.path, line: pos.line, col: pos.col };
    paths.set(t, path);
    return t;
  };
  const templates: BootEnvTemplates = {
    name: doc.name,
    purpose,
    kernel: spec.kernel,
    initrds: spec.initrds ?? [],
    cmdline: spec.cmdline !== undefined ? tpl(spec.cmdline, ["spec", "cmdline"]) : undefined,
    script: spec.script !== undefined ? tpl(spec.script, ["spec", "script"]) : undefined,
    files: spec.files?.map((f, i) => ({ name: f.name, contentType: f.contentType, template: tpl(f.template, ["spec", "files", i, "template"]) })),
  };
  const diagnostics: Diagnostic[] = [];
  const paramRefs: BootEnvParamRef[] = [];
  const all: Array<[string, TemplateSource]> = [];
  if (templates.cmdline) all.push([`BootEnv ${doc.name} cmdline`, templates.cmdline]);
  if (templates.script) all.push([`BootEnv ${doc.name} script`, templates.script]);
  for (const f of templates.files ?? []) all.push([`BootEnv ${doc.name} file ${f.name}`, f.template]);
  const fileNames = new Set<string>();
  (spec.files ?? []).forEach((f) => {
    if (fileNames.has(f.name)) {
      const pos = scalarTextStart(doc.file, doc.index, ["spec", "files", [...fileNames].length, "name"]);
      diagnostics.push({ file: doc.file.path, line: pos.line, col: pos.col, message: `BootEnv ${doc.name}: two files are named "${f.name}"` });
    }
    fileNames.add(f.name);
  });
  if ((purpose === "install" || purpose === "live") && !spec.kernel && spec.script === undefined) {
    const pos = scalarTextStart(doc.file, doc.index, ["spec"]);
    diagnostics.push({ file: doc.file.path, line: pos.line, col: pos.col, message: `BootEnv ${doc.name}: purpose ${purpose} needs a kernel (or a custom script)` });
  }
  for (const [label, t] of all) {
    const fix = foldedPositions(doc, t, paths.get(t)!);
    try {
      parseTemplate(t);
      for (const r of templateParamRefs(t)) paramRefs.push({ param: r.param, optional: r.optional, file: t.file, ...fix(r.line, r.col), template: label });
      for (const u of templateUnknownRefs(t)) {
        diagnostics.push({ file: t.file, ...fix(u.line, u.col), message: `${label}: "${u.root}" is not something templates can see (machine, params, site, bootEnv, urls)` });
      }
    } catch (err) {
      if (err instanceof TemplateError) diagnostics.push({ file: err.file, ...fix(err.line, err.col), message: `${label}: ${err.reason}` });
      else throw err;
    }
  }
  const fingerprint = createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 16);
  return { doc, name: doc.name, purpose, templates, paramRefs, diagnostics, fingerprint };
}

/**
 * Folding (`>`) joins a block scalar's lines, so a template position counted
 * in its value is not the position in the file. This maps one to the other by
 * matching the value's non-blank characters with the source's, which folding
 * keeps in order. Other scalars are returned as they are.
 */
function foldedPositions(doc: SourceDoc, t: TemplateSource, path: PathSegment[]): (line: number, col: number) => { line: number; col: number } {
  const same = (line: number, col: number) => ({ line, col });
  const { docs, lineCounter } = positioned(doc.file);
  const node = docs[doc.index]?.getIn(path, true);
  if (!isScalar(node) || node.type !== "BLOCK_FOLDED" || !node.range) return same;
  const text = doc.file.text;
  const sourceOffsets: number[] = [];
  for (let i = text.indexOf("\n", node.range[0]) + 1; i > 0 && i < node.range[1]; i++) if (!/\s/.test(text[i]!)) sourceOffsets.push(i);
  const lineStarts = [0];
  for (let i = 0; i < t.source.length; i++) if (t.source[i] === "\n") lineStarts.push(i + 1);
  return (line, col) => {
    const start = lineStarts[line - t.line];
    if (start === undefined) return same(line, col);
    const offset = start + (col - t.col);
    let k = 0;
    for (let i = 0; i < offset && i < t.source.length; i++) if (!/\s/.test(t.source[i]!)) k++;
    const at = sourceOffsets[k];
    return at === undefined ? same(line, col) : lineCounter.linePos(at);
  };
}
