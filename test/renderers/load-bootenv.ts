/**
 * Reads a BootEnv YAML file the way the model hands it to the renderers:
 * templates with the file position where their text starts. (The model has
 * its own loader; this one is only for testing the built-ins.)
 */
import { readFileSync } from "node:fs";
import { LineCounter, Scalar, parseDocument, isMap, isSeq } from "yaml";
import type { BootEnvTemplates } from "../../renderers/bootscript.js";
import type { TemplateSource } from "../../renderers/engine.js";

export interface LoadedBootEnv {
  templates: BootEnvTemplates;
  params: Record<string, unknown>;
  doc: { apiVersion: string; kind: string; metadata: { name: string }; spec: Record<string, unknown> };
}

export function loadBootEnvFile(file: string): LoadedBootEnv {
  const text = readFileSync(file, "utf8");
  const lines = text.split("\n");
  const lc = new LineCounter();
  const document = parseDocument(text, { lineCounter: lc, uniqueKeys: true });
  if (document.errors.length) throw document.errors[0];

  const tpl = (node: unknown): TemplateSource | undefined => {
    if (!(node instanceof Scalar) || typeof node.value !== "string" || !node.range) return undefined;
    const start = lc.linePos(node.range[0]);
    if (node.type === Scalar.BLOCK_LITERAL || node.type === Scalar.BLOCK_FOLDED) {
      const line = start.line + 1;
      const indent = (lines[line - 1] ?? "").match(/^ */)?.[0].length ?? 0;
      return { source: node.value, file, line, col: indent + 1 };
    }
    const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE;
    return { source: node.value, file, line: start.line, col: start.col + (quoted ? 1 : 0) };
  };

  const spec = document.get("spec", true);
  if (!isMap(spec)) throw new Error(`${file}: no spec`);
  const js = document.toJS() as LoadedBootEnv["doc"];
  const s = js.spec as {
    purpose?: string;
    kernel?: { url: string; sha256: string };
    initrds?: Array<{ url: string; sha256: string }>;
    params?: Record<string, unknown>;
  };
  const filesNode = spec.get("files", true);
  const files = isSeq(filesNode)
    ? filesNode.items.map((item) => {
        if (!isMap(item)) throw new Error(`${file}: bad file entry`);
        return {
          name: String(item.get("name")),
          template: tpl(item.get("template", true)) as TemplateSource,
          contentType: item.get("contentType") as string | undefined,
        };
      })
    : [];
  return {
    doc: js,
    params: s.params ?? {},
    templates: {
      name: js.metadata.name,
      purpose: s.purpose ?? "install",
      kernel: s.kernel,
      initrds: s.initrds ?? [],
      cmdline: tpl(spec.get("cmdline", true)),
      script: tpl(spec.get("script", true)),
      files,
    },
  };
}
