// The offline subcommands: init, validate, render, explain, plan. Each reads
// commits from the object database, never a working tree.
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runGit } from "../source/git.js";
import { TemplateError } from "../../renderers/engine.js";
import { formatDiagnostic, type Diagnostic } from "../model/diagnostics.js";
import { advanceModel, loadModel } from "../model/load.js";
import type { Model, ResolvedMachine } from "../model/model.js";
import { formatPlan, planChange } from "../model/plan.js";
import { renderForMachine } from "../model/render.js";
import { positionOf } from "../model/yaml-source.js";
import { CliError, modelAt, openRepo, resolveRev } from "./repo.js";

type Out = (s: string) => void;

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "site-repo-template"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find site-repo-template/ beside the gitrack package");
    dir = up;
  }
  return dir;
}

export async function runInit(dir: string, branch: string, out: Out): Promise<number> {
  const target = resolve(dir);
  if (existsSync(target) && readdirSync(target).length > 0) throw new CliError(`${dir} exists and is not empty`);
  mkdirSync(target, { recursive: true });
  cpSync(join(packageRoot(), "site-repo-template"), target, { recursive: true });
  mkdirSync(join(target, ".gitrack", "schemas"), { recursive: true });
  const { KINDS, schemaFileContent, schemaFileName } = await import("../../schemas/index.js");
  for (const k of KINDS) writeFileSync(join(target, ".gitrack", "schemas", schemaFileName(k)), schemaFileContent(k));
  await runGit(["init", "-q", "-b", branch], { cwd: target });
  await runGit(["add", "-A"], { cwd: target });
  await runGit(["commit", "-q", "-m", "New gitrack site repository"], { cwd: target });
  const repo = await openRepo(target);
  const model = await loadModel(repo, (await repo.resolve("HEAD"))!);
  await repo.close();
  const problems = model.diagnostics();
  if (problems.length) throw new Error(`the template is not valid:\n${problems.map(formatDiagnostic).join("\n")}`);
  out(`Created a site repository in ${target} (branch ${branch}, ${model.machines.size} machines, valid).\n`);
  out(`Next: cd ${dir} && gitrack validate && gitrack plan --to HEAD\n`);
  return 0;
}

function diagnosticsJson(ds: Diagnostic[]): string {
  return JSON.stringify({ valid: ds.length === 0, problems: ds }, null, 2) + "\n";
}

export async function runValidate(o: { repo: string; rev: string; format: "text" | "json" }, out: Out): Promise<number> {
  const repo = await openRepo(o.repo);
  try {
    const { model } = await modelAt(repo, o.rev);
    const ds = model.diagnostics();
    if (o.format === "json") out(diagnosticsJson(ds));
    else for (const d of ds) out(formatDiagnostic(d) + "\n");
    return ds.length === 0 ? 0 : 1;
  } finally {
    await repo.close();
  }
}

function pickMachine(model: Model, name: string, site: string | undefined): ResolvedMachine {
  const found = model.findMachines(name, site);
  if (found.length === 0) throw new CliError(`no machine named "${name}"${site ? ` in site ${site}` : ""}`);
  if (found.length > 1) throw new CliError(`"${name}" names machines in sites ${found.map((m) => m.site).join(", ")}: add --site`);
  return found[0]!;
}

/** Runs `f` on the model of `o.rev` and the machine `name` in it; the repository is closed after. */
async function withMachine<T>(name: string, o: { repo: string; rev: string; site?: string }, f: (model: Model, m: ResolvedMachine) => T | Promise<T>): Promise<T> {
  const repo = await openRepo(o.repo);
  try {
    const { model } = await modelAt(repo, o.rev);
    return await f(model, pickMachine(model, name, o.site));
  } finally {
    await repo.close();
  }
}

export async function runRender(
  name: string,
  what: string,
  o: { repo: string; rev: string; site?: string; bootEnv?: string },
  out: Out,
): Promise<number> {
  return withMachine(name, o, (model, m) => {
    const envName = o.bootEnv ?? m.bootEnv;
    const env = envName ? model.bootEnv(envName) : undefined;
    if (!env) throw new CliError(`machine ${m.name} has no usable bootEnv${envName ? ` ("${envName}" is not defined)` : ""}`);
    const target = what === "script" || what === "cmdline" ? what : { file: what };
    let text: string | undefined;
    try {
      text = renderForMachine(model, m, env, target, { token: "TOKEN" });
    } catch (e) {
      if (e instanceof TemplateError) throw new CliError(e.message);
      throw e;
    }
    if (text === undefined) {
      const names = (env.templates.files ?? []).map((f) => f.name);
      throw new CliError(`bootEnv ${env.name} has no file "${what}" (it has: script, cmdline${names.length ? ", " + names.join(", ") : ""})`);
    }
    out(text.endsWith("\n") ? text : text + "\n");
    return 0;
  });
}

export async function runExplain(
  name: string,
  param: string | undefined,
  o: { repo: string; rev: string; site?: string; format: "text" | "json" },
  out: Out,
): Promise<number> {
  return withMachine(name, o, (_model, m) => {
    const keys = param ? [param] : Object.keys(m.params).sort();
    if (param && !(param in m.params)) {
      throw new CliError(`param "${param}" is not set for machine ${m.name} (precedence: machine, profiles ${m.profiles.join(", ") || "(none)"}, cluster, site ${m.site}, bootEnv ${m.bootEnv ?? "(none)"})`);
    }
    const rows = keys.map((k) => {
      const src = m.paramSources[k]!;
      const pos = positionOf(src.doc.file, src.doc.index, src.path);
      return { param: k, value: m.params[k], from: `${src.kind} ${src.name}`, file: src.doc.file.path, line: pos.line, col: pos.col };
    });
    if (o.format === "json") {
      out(JSON.stringify({ machine: m.name, site: m.site, precedence: precedenceOf(m), params: rows }, null, 2) + "\n");
      return 0;
    }
    out(`machine ${m.site}/${m.name}; precedence: ${precedenceOf(m).join(" > ")}\n`);
    const width = Math.max(...rows.map((r) => r.param.length), 5);
    for (const r of rows) {
      out(`${r.param.padEnd(width)}  ${JSON.stringify(r.value)}  ← ${r.from} at ${r.file}:${r.line}:${r.col}\n`);
    }
    return 0;
  });
}

function precedenceOf(m: ResolvedMachine): string[] {
  return [
    `machine ${m.name}`,
    ...m.profiles.map((p) => `profile ${p}`),
    ...(m.cluster ? [`cluster ${m.cluster.cluster}`] : []),
    `site ${m.site}`,
    `bootEnv ${m.bootEnv ?? "(none)"}`,
  ];
}

export async function runPlan(o: { repo: string; from?: string; to: string; site?: string; format: "text" | "json" }, out: Out): Promise<number> {
  const repo = await openRepo(o.repo);
  try {
    const to = await resolveRev(repo, o.to);
    let from: string | undefined;
    if (o.from) from = await resolveRev(repo, o.from);
    else from = (await repo.commitInfo(to)).parents[0];
    let fromModel: Model | undefined;
    let toModel: Model;
    let affected: Set<string> | undefined;
    if (from) {
      fromModel = await loadModel(repo, from);
      ({ model: toModel, affected } = await advanceModel(repo, fromModel, from, to));
    } else toModel = await loadModel(repo, to);
    const ds = toModel.diagnostics();
    if (ds.length) {
      if (o.format === "json") out(JSON.stringify({ from: from ?? null, to, valid: false, problems: ds }, null, 2) + "\n");
      else {
        out(`${o.to} is not valid; nothing would be applied:\n`);
        for (const d of ds) out(formatDiagnostic(d) + "\n");
      }
      return 1;
    }
    const plan = planChange(fromModel, toModel, affected);
    if (o.site) {
      plan.actions = plan.actions.filter((a) => a.site === o.site);
      plan.machinesAffected = new Set(plan.actions.filter((a) => a.machine).map((a) => a.machine)).size;
    }
    if (o.format === "json") out(JSON.stringify({ from: from ?? null, to, valid: true, ...plan }, null, 2) + "\n");
    else {
      out(`Plan ${from ? from.slice(0, 12) : "(empty)"} → ${to.slice(0, 12)}\n\n`);
      out(formatPlan(plan));
    }
    return plan.actions.length ? 2 : 0;
  } finally {
    await repo.close();
  }
}
