/** What one cached upstream is: where it is, how to log in, how long a tag is trusted. */
export interface UpstreamConfig {
  /** Repositories under `<prefix>/` come from this upstream (`docker.io/library/alpine` → `library/alpine`). */
  prefix: string;
  /** Base URL of the upstream registry (`https://registry-1.docker.io`), without `/v2/`. */
  url: string;
  /** For Basic auth, or the token flow with username/password; absent: anonymous (anonymous tokens still work). */
  credentials?: { username: string; password: string };
  /** How long a tag's resolution is served without asking the upstream again (a digest is trusted forever). */
  tagTtlMs: number;
  /** How long to wait for the upstream to answer before serving stale content or failing with 503/502. */
  timeoutMs: number;
  /** Repository patterns (below the prefix; `*` one segment, `**` any) that may be fetched; absent: all. */
  repositories?: string[];
  /** Pushes and deletes under the prefix are refused (405 UNSUPPORTED). */
  readOnly: boolean;
}

export const PROXY_DEFAULTS = { tagTtlMs: 10 * 60_000, timeoutMs: 10_000, readOnly: true } as const;
