// A BootEnv document prepared for rendering: its templates positioned in
// their YAML file, the params they read, and the problems in them (syntax
// errors, names templates cannot see). Computed once per document.
import { createHash } from "node:crypto";
import { TemplateError, parseTemplate, templateParamRefs, templateUnknownRefs, type TemplateSource } from "../../renderers/engine.js";
import type { BootEnvTemplates } from "../../renderers/bootscript.js";
import type { Diagnostic } from "./diagnostics.js";
import type { SourceDoc } from "./parse.js";
import { scalarTextStart, type PathSegment } from "./yaml-source.js";

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
  const tpl = (source: string, path: PathSegment[]): TemplateSource => {
    const pos = scalarTextStart(doc.file, doc.index, path);
    return { source, file: doc.file.path, line: pos.line, col: pos.col };
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
    try {
      parseTemplate(t);
      for (const r of templateParamRefs(t)) paramRefs.push({ param: r.param, optional: r.optional, file: t.file, line: r.line, col: r.col, template: label });
      for (const u of templateUnknownRefs(t)) {
        diagnostics.push({ file: t.file, line: u.line, col: u.col, message: `${label}: "${u.root}" is not something templates can see (machine, params, site, bootEnv, urls)` });
      }
    } catch (err) {
      if (err instanceof TemplateError) diagnostics.push({ file: err.file, line: err.line, col: err.col, message: `${label}: ${err.reason}` });
      else throw err;
    }
  }
  const fingerprint = createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 16);
  return { doc, name: doc.name, purpose, templates, paramRefs, diagnostics, fingerprint };
}
