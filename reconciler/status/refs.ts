// The refs gitrack writes for a site. Only these, never HEAD or a user's branch.

const SITE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function checkSiteName(site: string): void {
  if (!SITE_NAME.test(site)) {
    throw new Error(`site name ${JSON.stringify(site)} is not a DNS label (lowercase letters, digits and '-')`);
  }
}

export function statusRef(site: string): string {
  checkSiteName(site);
  return `refs/heads/gitrack/status/${site}`;
}

export function notesRef(site: string): string {
  checkSiteName(site);
  return `refs/notes/gitrack/${site}`;
}

export function discoveredRef(site: string): string {
  checkSiteName(site);
  return `refs/heads/gitrack/discovered/${site}`;
}

export const DESIRED_COMMIT_TRAILER = "Gitrack-Desired-Commit";
