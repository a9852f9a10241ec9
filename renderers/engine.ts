/**
 * The one place templates from a site repository are parsed and rendered.
 *
 * Templates are untrusted input: liquidjs is configured so they cannot read
 * files, reach JavaScript prototypes, or run without bound (see README.md,
 * "Limits"). Parse results and static analysis are cached by source text,
 * because the daemon renders the same template for thousands of machines.
 */
import { IfTag, Liquid, Output, UnlessTag, analyzeSync } from "liquidjs";
import type { FS, Template, Value } from "liquidjs";
import { RENDER_CONTEXT_ROOTS, type RenderContext } from "./context.js";

/** A template's text and where it starts in its YAML file (1-based). */
export interface TemplateSource {
  source: string;
  file: string;
  /** Line in the file where the template text starts. */
  line: number;
  /** Column in the file where the template text starts; for a block scalar, its indent column. */
  col: number;
}

/** A template that failed to parse or render, positioned in its YAML file. */
export class TemplateError extends Error {
  override readonly name = "TemplateError";
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    /** The reason alone, without the position. */
    readonly reason: string,
  ) {
    super(`${file}:${line}:${col}: ${reason}`);
  }
}

/**
 * Limits, each far above what a real boot file needs (a kickstart renders
 * in about a millisecond). The memory bound is what stops a range loop
 * early: liquidjs builds `(1..N)` as an array of N before its time check
 * first runs (10^7 took 0.9 s to stop at a 250 ms limit).
 */
export const TEMPLATE_LIMITS = {
  /** Characters of template source. */
  parseLimit: 256 * 1024,
  /** Milliseconds of rendering for one template. */
  renderLimit: 100,
  /** liquidjs's estimate of memory for one render (output and string lengths, range and array sizes). */
  memoryLimit: 2 * 1024 * 1024,
} as const;

/** Tags that would read another template from a file system: refused when a template is parsed. */
const FILE_TAGS = ["include", "render", "layout"] as const;

/**
 * A file system that holds nothing, so `include`, `render` and `layout`
 * always fail to find their file and can never read one from the daemon.
 */
const emptyFs: FS = {
  exists: async () => false,
  existsSync: () => false,
  readFile: async (file: string) => {
    throw new Error(`templates cannot read files (${file})`);
  },
  readFileSync: (file: string) => {
    throw new Error(`templates cannot read files (${file})`);
  },
  resolve: (_dir: string, file: string) => file,
  contains: async () => false,
  containsSync: () => false,
  sep: "/",
  dirname: () => "",
  fallback: () => undefined,
};

/**
 * Quote a value for a POSIX shell: single quotes, with each embedded
 * single quote written as '\''. For late_command, %post and similar.
 */
function shellQuote(value: unknown): string {
  const s = value === undefined || value === null ? "" : String(value);
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A liquidjs instance configured for untrusted site-repository templates. */
export function createTemplateEngine(): Liquid {
  const engine = new Liquid({
    fs: emptyFs,
    root: [],
    partials: [],
    layouts: [],
    relativeReference: false,
    dynamicPartials: true,
    strictVariables: true,
    strictFilters: true,
    ownPropertyOnly: true,
    // `{% if params.x %}` with no x is simply false; everything else is strict.
    lenientIf: true,
    jsTruthy: false,
    cache: false,
    outputEscape: undefined,
    parseLimit: TEMPLATE_LIMITS.parseLimit,
    renderLimit: TEMPLATE_LIMITS.renderLimit,
    memoryLimit: TEMPLATE_LIMITS.memoryLimit,
    timezoneOffset: 0,
  });
  engine.registerFilter("shellquote", shellQuote);
  for (const name of FILE_TAGS) {
    engine.registerTag(name, {
      parse() {
        throw new Error(`{% ${name} %} is not available: templates cannot read files (write the text into the template)`);
      },
      render() {
        return "";
      },
    });
  }
  return engine;
}

const engine = createTemplateEngine();

/** Bounded cache: parse results by source text, least recently used dropped first. */
class SourceCache<T> {
  private readonly map = new Map<string, T>();
  constructor(private readonly max: number) {}
  get(key: string, make: () => T): T {
    const hit = this.map.get(key);
    if (hit !== undefined) {
      this.map.delete(key);
      this.map.set(key, hit);
      return hit;
    }
    const made = make();
    this.map.set(key, made);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
    return made;
  }
}

const parsed = new SourceCache<Template[]>(2048);
const analysed = new SourceCache<TemplateRef[]>(2048);

/** Template line/col (1-based) to file line/col. */
function mapPosition(tpl: TemplateSource, row: number, col: number): { line: number; col: number } {
  // Every line of a block scalar is indented to tpl.col, so the same column
  // offset applies to all lines; for a one-line scalar it is exact too.
  return { line: tpl.line + row - 1, col: tpl.col + col - 1 };
}

interface PositionedToken {
  getPosition(): [number, number];
}

function toTemplateError(tpl: TemplateSource, err: unknown): TemplateError {
  const e = err as { message?: string; token?: PositionedToken; originalError?: { message?: string } };
  let reason = String(e?.message ?? err);
  // liquidjs appends ", line:N, col:M" and sometimes the source excerpt; we give our own position.
  reason = reason.replace(/, (file:\S+, )?line:\d+, col:\d+$/s, "").split("\n")[0] ?? reason;
  let pos = { line: tpl.line, col: tpl.col };
  if (e?.token && typeof e.token.getPosition === "function") {
    const [row, col] = e.token.getPosition();
    pos = mapPosition(tpl, row, col);
  }
  return new TemplateError(tpl.file, pos.line, pos.col, reason);
}

function parse(tpl: TemplateSource): Template[] {
  try {
    return parsed.get(tpl.source, () => engine.parse(tpl.source));
  } catch (err) {
    throw toTemplateError(tpl, err);
  }
}

/**
 * Render one template for one machine. Throws TemplateError positioned in the
 * YAML file for a syntax error, an undefined variable or filter, a missing
 * partial, or a limit reached.
 */
export function renderTemplate(tpl: TemplateSource, ctx: RenderContext): string {
  const templates = parse(tpl);
  try {
    const out: unknown = engine.renderSync(templates, ctx);
    return String(out);
  } catch (err) {
    throw toTemplateError(tpl, err);
  }
}

/** Check that a template parses; throws TemplateError if not. */
export function parseTemplate(tpl: TemplateSource): void {
  parse(tpl);
}

/** One use of a name the template expects from its context. */
export interface TemplateRef {
  /** Top-level name: "params", "machine", ... or an unknown one like "foo". */
  root: string;
  /** Dotted path as written, e.g. "params.ntp.server" (a dynamic index shows as [..]). */
  path: string;
  /** Position in the YAML file. */
  line: number;
  col: number;
  /**
   * true when the template copes with the value being absent: the use is an
   * `if`/`unless`/`elsif` condition, is filtered by `default`, or sits inside
   * an `if`/`elsif` branch whose condition tests the same path or a prefix of
   * it (and the condition has no `or`).
   */
  optional: boolean;
}

/** Every use of a context name in a template, in source order. */
export function templateRefs(tpl: TemplateSource): TemplateRef[] {
  const templates = parse(tpl);
  const relative = analysed.get(tpl.source, () => analyseRefs(templates));
  return relative.map((r) => ({ ...r, ...mapPosition(tpl, r.line, r.col) }));
}

/** The params a template uses: `param` is the first segment after `params`. */
export function templateParamRefs(
  tpl: TemplateSource,
): Array<{ param: string; path: string; line: number; col: number; optional: boolean }> {
  const out: Array<{ param: string; path: string; line: number; col: number; optional: boolean }> = [];
  for (const r of templateRefs(tpl)) {
    if (r.root !== "params") continue;
    const param = r.path.slice("params".length).match(/^\.([^.[]+)|^\["([^"]+)"\]/);
    if (!param) continue; // `params` as a whole or a dynamic key: nothing to check by name
    out.push({ param: param[1] ?? param[2] ?? "", path: r.path, line: r.line, col: r.col, optional: r.optional });
  }
  return out;
}

/** Uses of top-level names that are not part of RenderContext (likely typos). */
export function templateUnknownRefs(tpl: TemplateSource): TemplateRef[] {
  const known = new Set<string>(RENDER_CONTEXT_ROOTS);
  return templateRefs(tpl).filter((r) => !known.has(r.root));
}

// --- static analysis -------------------------------------------------------

interface AnalysedVariable {
  segments: Array<string | number | unknown>;
  location: { row: number; col: number };
  toString(): string;
}

function key(v: AnalysedVariable): string {
  return `${v.location.row}:${v.location.col}:${v.toString()}`;
}

function segmentsOf(v: AnalysedVariable): string[] {
  return v.segments.map((s) => (typeof s === "string" || typeof s === "number" ? String(s) : "[..]"));
}

function isPrefix(prefix: string[], path: string[]): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => s === path[i]);
}

/** Variables (with location) used in a list of templates, all of them, scoping ignored. */
function variablesIn(templates: Template[]): AnalysedVariable[] {
  const analysis = analyzeSync(templates, { partials: false });
  return Object.values(analysis.variables).flat() as unknown as AnalysedVariable[];
}

/** Variables used in one filtered value; `initialOnly` leaves out filter arguments. */
function variablesOfValue(value: Value, initialOnly: boolean): AnalysedVariable[] {
  const probe = initialOnly
    ? ({ arguments: function* () { yield* value.initial.postfix; } } as unknown as Template)
    : ({ arguments: function* () { yield value; } } as unknown as Template);
  return variablesIn([probe]);
}

function childrenOf(t: Template): Template[] {
  const withChildren = t as Template & { children?: (partials: boolean, sync: boolean) => Generator<unknown, Template[]> };
  if (typeof withChildren.children !== "function") return [];
  const gen = withChildren.children(false, true);
  // Static children generators of the built-in tags return without yielding.
  let step = gen.next();
  while (!step.done) step = gen.next(step.value);
  return step.value ?? [];
}

function conditionText(value: Value): string {
  const token = (value as unknown as { initial?: { postfix?: Array<{ getText?: () => string }> } }).initial;
  return (token?.postfix ?? []).map((t) => (typeof t.getText === "function" ? t.getText() : "")).join(" ");
}

function analyseRefs(templates: Template[]): TemplateRef[] {
  const globals = Object.values(analyzeSync(templates, { partials: false }).globals).flat() as unknown as AnalysedVariable[];
  const optional = new Set<string>();

  const guardBody = (cond: Value, body: Template[]): void => {
    const condVars = variablesOfValue(cond, false);
    for (const v of condVars) optional.add(key(v));
    if (/\bor\b/.test(conditionText(cond))) return;
    const guards = condVars.map(segmentsOf);
    for (const v of variablesIn(body)) {
      if (guards.some((g) => isPrefix(g, segmentsOf(v)))) optional.add(key(v));
    }
  };

  const walk = (list: Template[]): void => {
    for (const t of list) {
      if (t instanceof IfTag) {
        for (const b of t.branches) {
          guardBody(b.value, b.templates);
          walk(b.templates);
        }
        walk(t.elseTemplates ?? []);
      } else if (t instanceof UnlessTag) {
        for (const b of t.branches) {
          for (const v of variablesOfValue(b.value, false)) optional.add(key(v));
          walk(b.templates);
        }
        walk(t.elseTemplates ?? []);
      } else if (t instanceof Output) {
        if (t.value.filters.some((f) => f.name === "default")) {
          for (const v of variablesOfValue(t.value, true)) optional.add(key(v));
        }
      } else {
        walk(childrenOf(t));
      }
    }
  };
  walk(templates);

  return globals
    .map((v) => {
      const segs = segmentsOf(v);
      return {
        root: segs[0] ?? "",
        path: v.toString(),
        line: v.location.row,
        col: v.location.col,
        optional: optional.has(key(v)),
      };
    })
    .sort((a, b) => a.line - b.line || a.col - b.col);
}
