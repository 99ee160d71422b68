/** The registry's JSON API (docs/api.openapi.yaml), as the interface calls it. */

const BASE = '/_portfolio/api/v1';

export interface SessionInfo {
  authEnabled: boolean;
  canLogin: boolean;
  user: string | null;
  admin: boolean;
  canBrowse: boolean;
  csrf: string | null;
}

export interface RepositorySummary {
  name: string;
  tags: number;
  manifests: number;
  bytes: number;
  lastPush: string | null;
}

export interface Repository extends RepositorySummary {
  can: { delete: boolean; deleteRepository: boolean };
}

export interface Tag {
  name: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  size: number;
  platforms: string[];
  pushedAt: string;
  /** Recorded in batches: a pull shows up within seconds. */
  lastPulledAt: string | null;
  /** The immutable-tag rule that protects it. */
  immutable: { repositories: string; tags: string } | null;
}

export interface Descriptor {
  digest: string;
  mediaType: string;
  size: number;
  annotations: Record<string, string>;
}

export interface Manifest {
  repository: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  kind: 'index' | 'image' | 'artifact';
  size: number;
  pushedAt: string;
  tags: string[];
  annotations: Record<string, string>;
  subject: string | null;
  manifests: { digest: string; mediaType: string; size: number; platform: string | null; artifactType: string | null }[];
  config: {
    digest: string;
    size: number;
    /** False when the config is not kept in the database: its fields are then empty. */
    shown: boolean;
    platform: string | null;
    created: string | null;
    user: string | null;
    workingDir: string | null;
    entrypoint: string[] | null;
    cmd: string[] | null;
    env: string[];
    labels: Record<string, string>;
    exposedPorts: string[];
    history: { created: string | null; createdBy: string | null; comment: string | null; emptyLayer: boolean }[];
  } | null;
  layers: Descriptor[];
  referrers: { artifactType: string; items: Descriptor[] }[];
  can: { delete: boolean };
}

export interface Usage {
  storedBytes: number;
  blobs: number;
  repositoryCount: number;
  events: { sink: string; pending: number; failed: number; oldestPendingAt: string | null }[];
  quotas: { scope: string; used: number; limit: number }[];
  gc: { at: string; report?: { manifestsDeleted: number; blobsDeleted: number; bytesFreed: number; durationMs: number }; error?: string } | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The CSRF token of the session, from its cookie (double submit). */
function csrf(): string {
  const m = /(?:^|;\s*)portfolio_csrf=([^;]*)/.exec(document.cookie);
  return m?.[1] ?? '';
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers['x-portfolio-csrf'] = csrf();
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(BASE + path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  if (!res.ok) {
    const message = (json as { errors?: { message?: string }[] } | null)?.errors?.[0]?.message ?? `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, message);
  }
  return json as T;
}

const enc = (name: string) => name.split('/').map(encodeURIComponent).join('/');
const query = (params: Record<string, string | number | null | undefined>) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
};

export const api = {
  session: () => request<SessionInfo>('GET', '/session'),
  login: (username: string, password: string) => request<SessionInfo>('POST', '/session', { username, password }),
  logout: () => request<void>('DELETE', '/session'),
  repositories: (q: string, match: string, cursor: string | null, limit = 25) =>
    request<{ repositories: RepositorySummary[]; next: string | null }>('GET', `/repositories${query({ q, match, cursor, limit })}`),
  repository: (name: string) => request<Repository>('GET', `/repositories/${enc(name)}`),
  deleteRepository: (name: string) => request<void>('DELETE', `/repositories/${enc(name)}`),
  tags: (name: string, sort: string, cursor: string | null, limit = 25) =>
    request<{ tags: Tag[]; next: string | null }>('GET', `/repositories/${enc(name)}/tags${query({ sort, cursor, limit })}`),
  deleteTag: (name: string, tag: string) => request<void>('DELETE', `/repositories/${enc(name)}/tags/${encodeURIComponent(tag)}`),
  manifest: (name: string, reference: string) => request<Manifest>('GET', `/repositories/${enc(name)}/manifests/${encodeURIComponent(reference)}`),
  deleteManifest: (name: string, digest: string) => request<void>('DELETE', `/repositories/${enc(name)}/manifests/${encodeURIComponent(digest)}`),
  usage: (cursor: string | null, limit = 25) => request<Usage & { repositories: RepositorySummary[]; next: string | null }>('GET', `/usage${query({ cursor, limit })}`),
};
