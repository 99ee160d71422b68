/** The JSON view of a manifest or index for the API: what the web interface's detail page shows. */
import type { ManifestDetail } from '../../core/browse.js';

type Json = Record<string, unknown>;

export interface ConfigView {
  digest: string;
  mediaType: string;
  size: number;
  /** False when the config blob is not kept in the database (larger than the inline size): its fields are then empty. */
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
}

export interface ManifestView {
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
  config: ConfigView | null;
  layers: { digest: string; mediaType: string; size: number; annotations: Record<string, string> }[];
  referrers: { artifactType: string; items: { digest: string; mediaType: string; size: number; annotations: Record<string, string> }[] }[];
}

export const CONFIG_MEDIA_TYPES = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

export function manifestView(repository: string, detail: ManifestDetail, config: Buffer | null): ManifestView {
  const m = parse(detail.content) ?? {};
  const isIndex = Array.isArray(m.manifests);
  const configDesc = obj(m.config);
  const configType = str(configDesc?.mediaType);
  const kind = isIndex ? 'index' : configType && CONFIG_MEDIA_TYPES.has(configType) ? 'image' : 'artifact';
  // The database records an image's config type as its artifact type (the referrers API's rule); an image has none of its own.
  const declared = detail.artifactType ?? str(m.artifactType);
  const artifactType = kind === 'image' && declared === configType && !str(m.artifactType) ? null : declared;
  const groups = new Map<string, ManifestView['referrers'][number]['items']>();
  for (const r of detail.referrers) {
    const type = r.artifactType ?? 'unknown';
    const items = groups.get(type) ?? [];
    items.push({ digest: r.digest, mediaType: r.mediaType, size: r.size, annotations: r.annotations ?? {} });
    groups.set(type, items);
  }
  return {
    repository,
    digest: detail.digest,
    mediaType: detail.mediaType,
    artifactType,
    kind,
    size: detail.size,
    pushedAt: new Date(detail.pushedAt).toISOString(),
    tags: detail.tags,
    annotations: strings(m.annotations),
    subject: str(obj(m.subject)?.digest),
    manifests: isIndex
      ? (m.manifests as unknown[]).map(obj).filter((d): d is Json => d !== null).map((d) => ({
          digest: str(d.digest) ?? '',
          mediaType: str(d.mediaType) ?? '',
          size: num(d.size),
          platform: platformName(d.platform),
          artifactType: str(d.artifactType),
        }))
      : [],
    config: configDesc && kind === 'image' ? configView(configDesc, config) : null,
    layers: Array.isArray(m.layers)
      ? (m.layers as unknown[]).map(obj).filter((d): d is Json => d !== null).map((d) => ({
          digest: str(d.digest) ?? '',
          mediaType: str(d.mediaType) ?? '',
          size: num(d.size),
          annotations: strings(d.annotations),
        }))
      : [],
    referrers: [...groups].map(([type, items]) => ({ artifactType: type, items })).sort((a, b) => (a.artifactType < b.artifactType ? -1 : 1)),
  };
}

function configView(desc: Json, bytes: Buffer | null): ConfigView {
  const c = bytes ? parse(bytes) : null;
  const inner = obj(c?.config);
  return {
    digest: str(desc.digest) ?? '',
    mediaType: str(desc.mediaType) ?? '',
    size: num(desc.size),
    shown: bytes !== null,
    platform: platformName(c),
    created: str(c?.created),
    user: str(inner?.User) || null,
    workingDir: str(inner?.WorkingDir) || null,
    entrypoint: stringList(inner?.Entrypoint),
    cmd: stringList(inner?.Cmd),
    env: stringList(inner?.Env) ?? [],
    labels: strings(inner?.Labels),
    exposedPorts: Object.keys(obj(inner?.ExposedPorts) ?? {}),
    history: Array.isArray(c?.history)
      ? (c.history as unknown[]).map(obj).filter((h): h is Json => h !== null).map((h) => ({
          created: str(h.created),
          createdBy: str(h.created_by),
          comment: str(h.comment),
          emptyLayer: h.empty_layer === true,
        }))
      : [],
  };
}

export function configDigestOf(content: Buffer): string | null {
  return str(obj(parse(content)?.config)?.digest);
}

function platformName(p: unknown): string | null {
  const o = obj(p);
  if (!o || typeof o.os !== 'string' || typeof o.architecture !== 'string') return null;
  return [o.os, o.architecture, ...(typeof o.variant === 'string' && o.variant ? [o.variant] : [])].join('/');
}

function parse(bytes: Buffer): Json | null {
  try {
    return obj(JSON.parse(bytes.toString('utf8')));
  } catch {
    return null;
  }
}

function obj(v: unknown): Json | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null;
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function stringList(v: unknown): string[] | null {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : null;
}

function strings(v: unknown): Record<string, string> {
  const o = obj(v);
  if (!o) return {};
  return Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => typeof e[1] === 'string'));
}
