// What a machine is served: the render context of a resolved machine and the
// rendered boot script, kernel command line and files.
import type { RenderContext } from "../../renderers/context.js";
import { renderBootScript, renderFile, renderKernelCmdline } from "../../renderers/bootscript.js";
import { TemplateError } from "../../renderers/engine.js";
import type { Diagnostic } from "./diagnostics.js";
import type { SubnetSpec } from "../../schemas/site.js";
import type { BootEnvInfo } from "./bootenv.js";
import type { Model, ResolvedMachine } from "./model.js";
import { contains, netmaskOf, parseCidr, intToIp } from "./net.js";
import { artifactUrl, baseUrl, bootScriptUrl, machineEventsUrl, machineFilesUrl } from "./urls.js";

export const DEFAULT_HTTP_PORT = 8080;

export interface RenderOptions {
  /** The machine's token (the daemon's); `render` on the command line shows a placeholder. */
  token: string;
  /** Overrides the site's advertised http://address:port (tests, proxies). */
  base?: string;
}

export function siteBaseUrl(model: Model, site: string, override?: string): string {
  if (override) return override;
  const spec = model.site(site)?.value.spec;
  return baseUrl(spec?.boot.advertise ?? "127.0.0.1", spec?.boot.httpPort ?? DEFAULT_HTTP_PORT);
}

export function subnetContext(subnet: SubnetSpec | undefined): RenderContext["site"]["subnet"] {
  if (!subnet) return { name: "", cidr: "", network: "", prefixLength: 0, netmask: "", dns: [] };
  const net = parseCidr(subnet.cidr);
  return {
    name: subnet.name,
    cidr: subnet.cidr,
    network: intToIp(net.network),
    prefixLength: net.prefixLength,
    netmask: netmaskOf(net),
    gateway: subnet.gateway,
    dns: subnet.dns ?? [],
  };
}

export function renderContext(model: Model, m: ResolvedMachine, env: BootEnvInfo, opts: RenderOptions): RenderContext {
  const base = siteBaseUrl(model, m.site, opts.base);
  const site = model.site(m.site);
  const t = env.templates;
  return {
    machine: {
      name: m.name,
      hostname: m.name,
      site: m.site,
      labels: m.labels,
      annotations: m.annotations,
      mac: m.mac,
      ip: m.ip ?? "",
      macs: m.interfaces.map((i) => i.mac),
      generation: m.generation,
      known: true,
    },
    params: m.params,
    site: {
      name: m.site,
      params: (site?.value.spec.params ?? {}) as Record<string, unknown>,
      advertise: site?.value.spec.boot.advertise ?? "",
      subnet: subnetContext(m.subnet ? model.subnetOf(m.site, m.subnet) : undefined),
    },
    bootEnv: { name: env.name, purpose: env.purpose, kernel: t.kernel, initrds: t.initrds },
    urls: {
      base,
      script: bootScriptUrl(base, m.mac),
      kernel: t.kernel ? artifactUrl(base, t.kernel.sha256, t.kernel.url) : undefined,
      initrds: t.initrds.map((i) => artifactUrl(base, i.sha256, i.url)),
      files: machineFilesUrl(base, m.name, opts.token),
      events: machineEventsUrl(base, m.name, opts.token),
    },
  };
}

export type RenderTarget = "script" | "cmdline" | { file: string };

/** Renders one thing for a machine booting `env`; throws TemplateError on a template problem. */
export function renderForMachine(model: Model, m: ResolvedMachine, env: BootEnvInfo, what: RenderTarget, opts: RenderOptions): string | undefined {
  const ctx = renderContext(model, m, env, opts);
  if (what === "script") return renderBootScript(env.templates, ctx);
  if (what === "cmdline") return renderKernelCmdline(env.templates, ctx);
  return renderFile(env.templates, what.file, ctx)?.body;
}

/**
 * The machine an unknown MAC boots as: the site's unknownBootEnv (default
 * "discovery") with the BootEnv's and the site's params, on the subnet of
 * `ip` (its lease), else the first subnet with a dynamic range.
 */
export function unknownMachineOf(model: Model, site: string, mac: string, ip?: string): { m: ResolvedMachine; env: BootEnvInfo } | undefined {
  const siteDoc = model.site(site);
  if (!siteDoc) return undefined;
  const envName = (siteDoc.value.spec.boot.unknownBootEnv as string | undefined) ?? "discovery";
  const env = model.bootEnv(envName);
  if (!env) return undefined;
  const subnets = siteDoc.value.spec.subnets as SubnetSpec[];
  const subnet = (ip && subnets.find((s) => contains(parseCidr(s.cidr), ip))) || subnets.find((s) => s.range) || subnets[0];
  const name = `mac-${mac.replace(/:/g, "")}`;
  const m = {
    key: `${site}/${name}`,
    name,
    site,
    doc: siteDoc,
    labels: {},
    annotations: {},
    interfaces: [{ mac, ip }],
    mac,
    ip,
    subnet: subnet?.name,
    profiles: [],
    bootEnv: envName,
    bootEnvInfo: env,
    intent: "provisioned",
    generation: 0,
    params: { ...((env.doc.value.spec.params ?? {}) as Record<string, unknown>), ...((siteDoc.value.spec.params ?? {}) as Record<string, unknown>) },
    paramSources: {},
    deps: [],
    diagnostics: [],
  } satisfies ResolvedMachine;
  return { m, env };
}

/**
 * What machines will be served, rendered once at validate time: for each
 * site, every BootEnv in use (its script, command line and files) for the
 * first machine that boots it, and the unknownBootEnv for an unknown MAC.
 * A template that can only fail at boot (a render limit reached, a lookup
 * that is undefined only at run time) is reported at its place instead of
 * answering 500 to the machine. One render per BootEnv and site, not per
 * machine: a template that fails only for some machines' params is found
 * at boot.
 */
export function renderDiagnostics(model: Model, sites: Iterable<string>): Diagnostic[] {
  const out: Diagnostic[] = [];
  const tryRender = (m: ResolvedMachine, env: BootEnvInfo, who: string) => {
    const targets: Array<[string, RenderTarget]> = [
      ["script", "script"],
      ["cmdline", "cmdline"],
      ...(env.templates.files ?? []).map((f): [string, RenderTarget] => [`file ${f.name}`, { file: f.name }]),
    ];
    for (const [label, what] of targets) {
      try {
        renderForMachine(model, m, env, what, { token: "TOKEN" });
      } catch (err) {
        if (!(err instanceof TemplateError)) throw err;
        out.push({ file: err.file, line: err.line, col: err.col, message: `BootEnv ${env.name} ${label}: ${err.reason} (rendered for ${who})`, machine: m.name });
      }
    }
  };
  for (const site of sites) {
    const first = new Map<string, ResolvedMachine>();
    for (const m of model.machinesOfSite(site).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (m.bootEnvInfo && !first.has(m.bootEnvInfo.name)) first.set(m.bootEnvInfo.name, m);
    }
    for (const m of first.values()) tryRender(m, m.bootEnvInfo!, `machine ${m.name}`);
    const unknown = unknownMachineOf(model, site, "02:00:00:00:00:00");
    if (unknown) tryRender(unknown.m, unknown.env, "an unknown machine");
  }
  return out;
}
