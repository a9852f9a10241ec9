// The HTTP paths machines are told to use. The boot script path carries no
// token (firmware cannot), so it exposes nothing secret; everything else a
// machine fetches or posts carries its token in the path.

export const BOOT_SCRIPT_PREFIX = "/boot/";
export const CACHE_PREFIX = "/cache/";
export const MACHINE_PREFIX = "/m/";

export function baseUrl(advertise: string, port: number): string {
  return `http://${advertise}${port === 80 ? "" : `:${port}`}`;
}

/** `52:54:00:aa:bb:cc` → `52-54-00-aa-bb-cc`, safe in a path and in iPXE's ${mac:hexhyp}. */
export function macPath(mac: string): string {
  return mac.toLowerCase().replace(/:/g, "-");
}

export function bootScriptUrl(base: string, mac: string): string {
  return `${base}${BOOT_SCRIPT_PREFIX}${macPath(mac)}.ipxe`;
}

export function artifactUrl(base: string, sha256: string, url: string): string {
  const name = url.replace(/[?#].*$/, "").split("/").pop() || "blob";
  return `${base}${CACHE_PREFIX}${sha256}/${encodeURIComponent(name)}`;
}

/** `/m/<machine>/<token>/files/`: the machine is named apart from its token, so another machine's token is told apart (403) from none (401). */
export function machineFilesUrl(base: string, machine: string, token: string): string {
  return `${base}${MACHINE_PREFIX}${machine}/${token}/files/`;
}

export function machineEventsUrl(base: string, machine: string, token: string): string {
  return `${base}${MACHINE_PREFIX}${machine}/${token}/events`;
}
