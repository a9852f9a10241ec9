/**
 * What every template sees. The model builds one RenderContext per machine
 * (and per unknown MAC for discovery); README.md documents each field for
 * people writing templates, so change both together.
 */
export interface RenderContext {
  machine: {
    name: string;
    hostname: string;
    site: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    /** The MAC this boot request came from, lower-case colon form. */
    mac: string;
    ip: string;
    macs: string[];
    generation: number;
    /** false for an unknown MAC (discovery). */
    known: boolean;
  };
  /** Merged params: machine > profiles > cluster > site > bootEnv defaults. */
  params: Record<string, unknown>;
  site: {
    name: string;
    params: Record<string, unknown>;
    advertise: string;
    subnet: {
      name: string;
      cidr: string;
      network: string;
      prefixLength: number;
      netmask: string;
      gateway?: string;
      dns: string[];
    };
  };
  bootEnv: {
    name: string;
    purpose: string;
    kernel?: { url: string; sha256: string };
    initrds: Array<{ url: string; sha256: string }>;
  };
  urls: {
    base: string;
    script: string;
    kernel?: string;
    initrds: string[];
    /** Ends with "/": a file named NAME is at `${files}NAME`. */
    files: string;
    events: string;
  };
}

/** The top-level names a template may use; anything else is a mistake. */
export const RENDER_CONTEXT_ROOTS = ["machine", "params", "site", "bootEnv", "urls"] as const;
