// What a machine is served: the render context of a resolved machine and the
// rendered boot script, kernel command line and files.
import type { RenderContext } from "../../renderers/context.js";
import { renderBootScript, renderFile, renderKernelCmdline } from "../../renderers/bootscript.js";
import type { SubnetSpec } from "../../schemas/site.js";
import type { BootEnvInfo } from "./bootenv.js";
import type { Model, ResolvedMachine } from "./model.js";
import { netmaskOf, parseCidr, intToIp } from "./net.js";
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
