// `gitrack serve` settings: flags, each also readable from a GITRACK_*
// environment variable (12-factor: no config file needed).
export interface ServeConfig {
  repo: string; // a local path or a URL
  site: string;
  stateDir: string;
  branch: string;
  listen: string;
  httpPort: number;
  tftpPort: number;
  dhcpPort: number;
  proxyDhcpPort: number | false;
  dhcp: boolean;
  tftp: boolean;
  /** Folder the TFTP server serves (default: Debian's ipxe package files). */
  tftpRoot?: string;
  /**
   * Serve a known machine's iPXE script (which carries its token) only to the
   * machine's own addresses, loopback and this host (default true).
   */
  bootScriptAddressCheck?: boolean;
  /** TFTP busy-poll window in microseconds after each window sent (0: off); see services/tftp/busy-poll.ts. */
  tftpBusyPollUs?: number;
  /** Seconds between safety-net fetches of a remote repository. */
  fetchIntervalSec: number;
  /** Seconds a machine may spend Booting/Installing before it is Failed. */
  installTimeoutSec: number;
  /** Minimum seconds between two status commits. */
  statusIntervalSec: number;
  /** HMAC secret of POST /api/v1/hooks/git (GitHub's X-Hub-Signature-256). */
  webhookSecret?: string;
  /** Bearer token of the read-only API; generated into the state dir when unset. */
  apiToken?: string;
  /** The HTTP base machines are told to use; default http://<site advertise>:<httpPort>. */
  advertiseUrl?: string;
  logLevel: string;
}

export const SERVE_ENV: Record<string, keyof ServeConfig> = {
  GITRACK_REPO: "repo",
  GITRACK_SITE: "site",
  GITRACK_STATE_DIR: "stateDir",
  GITRACK_BRANCH: "branch",
  GITRACK_LISTEN: "listen",
  GITRACK_HTTP_PORT: "httpPort",
  GITRACK_TFTP_PORT: "tftpPort",
  GITRACK_DHCP_PORT: "dhcpPort",
  GITRACK_TFTP_ROOT: "tftpRoot",
  GITRACK_TFTP_BUSY_POLL_US: "tftpBusyPollUs",
  GITRACK_NO_BOOT_SCRIPT_ADDRESS_CHECK: "bootScriptAddressCheck",
  GITRACK_FETCH_INTERVAL: "fetchIntervalSec",
  GITRACK_INSTALL_TIMEOUT: "installTimeoutSec",
  GITRACK_STATUS_INTERVAL: "statusIntervalSec",
  GITRACK_WEBHOOK_SECRET: "webhookSecret",
  GITRACK_API_TOKEN: "apiToken",
  GITRACK_ADVERTISE_URL: "advertiseUrl",
  GITRACK_LOG_LEVEL: "logLevel",
};

export function isRemoteUrl(repo: string): boolean {
  return /^(https?|ssh|file|git):\/\//.test(repo) || /^[^/]+@[^/:]+:/.test(repo);
}
