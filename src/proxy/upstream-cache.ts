/**
 * The cache of one upstream: its client, the fills and manifest fetches in flight (one per
 * object per process), when each tag was last checked, and the manifests fetched but not yet
 * storable because their blobs are still on their way.
 */
import { digestAlgorithm, digestOf, type Digest } from '../core/digest.js';
import { RegistryError, SpecCode } from '../core/errors.js';
import type { BlobInfo, Repository, StoredManifest } from '../core/interfaces.js';
import { MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, parseManifest, type ParsedManifest } from '../core/manifest.js';
import { referenceString, type Reference } from '../core/names.js';
import { fillBlob, UpstreamLied } from './blob-fill.js';
import type { UpstreamConfig } from './config.js';
import { compilePatterns } from './patterns.js';
import { SingleFlight } from './single-flight.js';
import { Spool } from './spool.js';
import { readBytes, UpstreamClient, UpstreamUnavailable } from './upstream.js';

export interface ProxyLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

/** Counts of what the cache did, per upstream (by prefix). */
export interface ProxyObserver {
  proxyHit(upstream: string, kind: 'manifest' | 'blob'): void;
  proxyMiss(upstream: string, kind: 'manifest' | 'blob'): void;
  proxyUpstreamBytes(upstream: string, bytes: number): void;
  proxyStaleServe(upstream: string): void;
  proxyUpstreamError(upstream: string): void;
}

/** A blob fill under way: its size as announced, and the spool clients read along from. */
interface Fill {
  /** Null when the upstream did not say: clients then wait for `done` and read the stored blob. */
  size: number | null;
  spool: Spool;
  /** Resolves once the blob is stored. */
  done: Promise<void>;
}

interface Pending {
  manifest: StoredManifest;
  parsed: ParsedManifest;
  /** Resolves once the manifest and everything it references is stored locally. */
  stored: Promise<void>;
}

/**
 * How long a fetched manifest's background completion waits before it fetches what clients did
 * not ask for yet: the blobs a client asks for first get the upstream's bandwidth first (clients
 * read along from any fill, the background's too).
 */
const BACKGROUND_DELAY_MS = 1000;
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Fetched manifests held while their blobs arrive; a bound on them keeps memory bounded. */
const MAX_PENDING = 1000;
/** Tags whose last check is remembered per upstream. */
const MAX_TAG_CHECKS = 100_000;
const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

export class UpstreamCache {
  readonly client: UpstreamClient;
  readonly allowed: (name: string) => boolean;
  private readonly fills = new Map<string, Promise<Fill | null>>();
  private readonly manifestFetches = new SingleFlight<StoredManifest | null>();
  private readonly tagChecks = new Map<string, number>();
  private readonly pending = new Map<string, Pending>();
  private readonly pendingTags = new Map<string, Digest>();

  constructor(
    readonly config: UpstreamConfig,
    readonly options: {
      logger?: ProxyLogger;
      observer?: ProxyObserver;
      /** Where fills spool the bodies (best on the filesystem of the stored blobs). */
      spoolDir: string;
    },
  ) {
    this.client = new UpstreamClient(config);
    this.allowed = compilePatterns(config.repositories);
  }

  /** The upstream's name of a local repository under the prefix. */
  upstreamName(name: string): string {
    return name.slice(this.config.prefix.length + 1);
  }

  private count(event: 'hit' | 'miss', kind: 'manifest' | 'blob'): void {
    if (event === 'hit') this.options.observer?.proxyHit(this.config.prefix, kind);
    else this.options.observer?.proxyMiss(this.config.prefix, kind);
  }

  /** Maps an upstream failure to what the client sees: 503 (down, slow, 5xx, 429) or 502 (nonsense). */
  private failure(err: unknown, code: typeof SpecCode.MANIFEST_UNKNOWN | typeof SpecCode.BLOB_UNKNOWN, what: string): unknown {
    if (err instanceof RegistryError) return err;
    if (err instanceof UpstreamUnavailable) {
      this.options.observer?.proxyUpstreamError(this.config.prefix);
      this.options.logger?.warn({ upstream: this.config.prefix, what, reason: err.message }, 'upstream unavailable');
      return new RegistryError(503, code, `upstream ${this.config.prefix} unavailable and nothing cached`, { upstream: this.config.prefix, reason: err.message });
    }
    if (err instanceof UpstreamLied) {
      this.options.observer?.proxyUpstreamError(this.config.prefix);
      this.options.logger?.warn({ upstream: this.config.prefix, what, reason: err.message }, 'upstream sent wrong content');
      return new RegistryError(502, code, `upstream ${this.config.prefix} sent wrong content`, { upstream: this.config.prefix, reason: err.message });
    }
    return err;
  }

  // ---- blobs ----

  /** Metadata of a blob the upstream has (HEAD), or null. */
  async statUpstream(name: string, digest: Digest): Promise<BlobInfo | null> {
    try {
      const res = await this.client.fetch('HEAD', this.upstreamName(name), `blobs/${digest}`);
      res.body.resume();
      if (res.status !== 200) return null;
      const size = Number(res.headers['content-length']);
      return Number.isSafeInteger(size) && size >= 0 ? { digest, size } : null;
    } catch (err) {
      throw this.failure(err, SpecCode.BLOB_UNKNOWN, digest);
    }
  }

  /** Starts the fill of a blob, or joins the one running. Null when the upstream has no such blob. */
  async fill(local: Repository, digest: Digest): Promise<Fill | null> {
    const key = `${local.name}@${digest}`;
    const running = this.fills.get(key);
    if (running) return running.catch((err: unknown) => Promise.reject(this.failure(err, SpecCode.BLOB_UNKNOWN, digest)));
    this.count('miss', 'blob');
    // A failed fill leaves at once, before its spool is removed: the next request starts afresh.
    const forget = () => {
      if (this.fills.get(key) === started) this.fills.delete(key);
    };
    const started = this.startFill(local, digest, forget);
    this.fills.set(key, started);
    // The entry lasts until the blob is stored (or the fill failed), so later requests join it.
    started
      .then((fill) => fill?.done)
      .catch(() => undefined)
      .finally(forget);
    return started.catch((err: unknown) => Promise.reject(this.failure(err, SpecCode.BLOB_UNKNOWN, digest)));
  }

  /** Stores a blob nobody reads along (a manifest's blobs, completed in the background). */
  async ensureBlob(local: Repository, digest: Digest): Promise<void> {
    if (await local.blobs.stat(digest)) return;
    const fill = await this.fill(local, digest);
    if (!fill) throw new UpstreamLied(`upstream does not have ${digest}, which a manifest it sent references`);
    await fill.done;
  }

  /** Waits for a fill to end and maps its failure to the client's error. */
  async awaitFill(fill: Fill, digest: Digest): Promise<void> {
    await fill.done.catch((err: unknown) => Promise.reject(this.failure(err, SpecCode.BLOB_UNKNOWN, digest)));
  }

  private async startFill(local: Repository, digest: Digest, onFail: () => void): Promise<Fill | null> {
    const res = await this.client.fetch('GET', this.upstreamName(local.name), `blobs/${digest}`);
    if (res.status === 404 || res.status === 401 || res.status === 403) {
      res.body.resume();
      return null;
    }
    if (res.status !== 200) {
      res.body.resume();
      throw new UpstreamLied(`upstream answered a blob GET with ${res.status}`);
    }
    const length = Number(res.headers['content-length']);
    const size = res.headers['content-length'] !== undefined && Number.isSafeInteger(length) && length >= 0 ? length : null;
    let spool: Spool;
    try {
      spool = await Spool.create(this.options.spoolDir, size ?? Number.MAX_SAFE_INTEGER);
    } catch (err) {
      res.body.destroy();
      throw err;
    }
    const prefix = this.config.prefix;
    const done = fillBlob({
      body: res.body,
      digest,
      size,
      spool,
      store: (path, bytes) => local.uploads.putFile(digest, path, bytes),
      idleMs: this.config.timeoutMs,
      onBytes: (bytes) => this.options.observer?.proxyUpstreamBytes(prefix, bytes),
      onFail,
    });
    done.catch((err: unknown) => this.options.logger?.warn({ upstream: prefix, digest, err: (err as Error).message }, 'blob fill failed: nothing stored'));
    return { size, spool, done };
  }

  // ---- manifests ----

  /**
   * A manifest of `local` by tag or digest: from the cache while it is fresh, else from the
   * upstream (stored as it arrives), else stale from the cache when the upstream is down.
   */
  async manifest(local: Repository, reference: Reference): Promise<StoredManifest | null> {
    if (reference.kind === 'digest') {
      const cached = this.pendingManifest(local.name, reference.digest) ?? (await local.manifests.get(reference));
      if (cached) {
        this.count('hit', 'manifest');
        return cached;
      }
      if (!this.allowed(this.upstreamName(local.name))) return null;
      this.count('miss', 'manifest');
      return this.manifestFetches
        .run(`${local.name}@${reference.digest}`, () => this.fetchManifest(local, reference))
        .catch((err: unknown) => Promise.reject(this.failure(err, SpecCode.MANIFEST_UNKNOWN, reference.digest)));
    }
    const key = `${local.name}:${reference.tag}`;
    const pendingDigest = this.pendingTags.get(key);
    const cached = (pendingDigest && this.pendingManifest(local.name, pendingDigest)) || (await local.manifests.get(reference));
    const checked = this.tagChecks.get(key);
    if (cached && checked !== undefined && Date.now() - checked < this.config.tagTtlMs) {
      this.count('hit', 'manifest');
      return cached;
    }
    if (!this.allowed(this.upstreamName(local.name))) return cached;
    return this.manifestFetches
      .run(key, () => this.revalidate(local, reference, key, cached))
      .catch((err: unknown) => Promise.reject(this.failure(err, SpecCode.MANIFEST_UNKNOWN, reference.tag)));
  }

  /** One HEAD upstream: the same digest keeps the cached copy, another one is fetched. */
  private async revalidate(local: Repository, reference: Reference, key: string, cached: StoredManifest | null): Promise<StoredManifest | null> {
    try {
      if (cached) {
        const head = await this.client.fetch('HEAD', this.upstreamName(local.name), `manifests/${referenceString(reference)}`, { accept: ACCEPT });
        head.body.resume();
        if (head.status === 404 || head.status === 401 || head.status === 403) {
          this.tagChecks.delete(key);
          return null;
        }
        if (head.status === 200 && head.headers['docker-content-digest'] === cached.digest) {
          this.checked(key);
          this.count('hit', 'manifest');
          return cached;
        }
      }
      this.count('miss', 'manifest');
      const fetched = await this.fetchManifest(local, reference);
      if (fetched) this.checked(key);
      else this.tagChecks.delete(key);
      return fetched;
    } catch (err) {
      if (cached && err instanceof UpstreamUnavailable) {
        this.options.observer?.proxyStaleServe(this.config.prefix);
        this.options.observer?.proxyUpstreamError(this.config.prefix);
        this.options.logger?.warn({ upstream: this.config.prefix, repository: local.name, tag: referenceString(reference), reason: err.message }, 'upstream unavailable: serving the cached tag');
        return cached;
      }
      throw err;
    }
  }

  /** Records a tag's check; the oldest entries go past a bound (they are checked again, once). */
  private checked(key: string): void {
    this.tagChecks.delete(key);
    this.tagChecks.set(key, Date.now());
    if (this.tagChecks.size > MAX_TAG_CHECKS) {
      const oldest = this.tagChecks.keys().next().value;
      if (oldest !== undefined) this.tagChecks.delete(oldest);
    }
  }

  private pendingManifest(name: string, digest: Digest): StoredManifest | undefined {
    return this.pending.get(`${name}@${digest}`)?.manifest;
  }

  /** GETs a manifest, checks it is what was asked for, and stores it (at once, or once its blobs arrived). */
  private async fetchManifest(local: Repository, reference: Reference): Promise<StoredManifest | null> {
    const res = await this.client.fetch('GET', this.upstreamName(local.name), `manifests/${referenceString(reference)}`, { accept: ACCEPT });
    if (res.status === 404 || res.status === 401 || res.status === 403) {
      res.body.resume();
      return null;
    }
    if (res.status !== 200) {
      res.body.resume();
      throw new UpstreamLied(`upstream answered a manifest GET with ${res.status}`);
    }
    res.body.setTimeout(this.config.timeoutMs, () => res.body.destroy(new UpstreamUnavailable(`upstream body silent for ${this.config.timeoutMs} ms`)));
    const bytes = await readBytes(res.body, MAX_MANIFEST_BYTES);
    if (!bytes) throw new UpstreamLied('upstream sent a manifest larger than 4 MiB');
    this.options.observer?.proxyUpstreamBytes(this.config.prefix, bytes.length);
    let digest: Digest;
    if (reference.kind === 'digest') {
      digest = digestOf(bytes, digestAlgorithm(reference.digest));
      if (digest !== reference.digest) throw new UpstreamLied(`upstream sent a manifest whose digest is ${digest}, not ${reference.digest}`);
    } else {
      digest = digestOf(bytes);
      const announced = res.headers['docker-content-digest'];
      if (typeof announced === 'string' && announced.startsWith('sha256:') && announced !== digest) {
        throw new UpstreamLied(`upstream announced ${announced} for a manifest whose digest is ${digest}`);
      }
    }
    let parsed: ParsedManifest;
    try {
      parsed = parseManifest(bytes, res.headers['content-type']);
    } catch (err) {
      if (err instanceof RegistryError) throw new UpstreamLied(`upstream sent an invalid manifest: ${err.message}`);
      throw err;
    }
    const manifest: StoredManifest = { digest, mediaType: parsed.mediaType, size: bytes.length, bytes };
    await this.store(local, reference, manifest, parsed);
    return manifest;
  }

  /**
   * Stores a manifest whose references are all here; otherwise holds it in memory, fetches what
   * it references in the background and stores it then (the store never takes a manifest that
   * points at missing blobs).
   */
  private async store(local: Repository, reference: Reference, manifest: StoredManifest, parsed: ParsedManifest): Promise<void> {
    try {
      await local.manifests.put(reference, manifest.bytes, parsed);
      return;
    } catch (err) {
      if (!(err instanceof RegistryError && err.code === SpecCode.MANIFEST_BLOB_UNKNOWN)) throw err;
    }
    const key = `${local.name}@${manifest.digest}`;
    if (reference.kind === 'tag') this.pendingTags.set(`${local.name}:${reference.tag}`, manifest.digest);
    if (this.pending.has(key)) return;
    if (this.pending.size >= MAX_PENDING) {
      const oldest = this.pending.keys().next().value;
      if (oldest !== undefined) this.pending.delete(oldest);
    }
    // Clients get the first chance to start the blob fills they want first.
    const stored = delay(BACKGROUND_DELAY_MS)
      .then(() => this.complete(local, manifest, parsed))
      .then(async () => {
        for (const [tagKey, digest] of this.pendingTags) {
          if (digest === manifest.digest && tagKey.startsWith(`${local.name}:`)) {
            await local.manifests.put({ kind: 'tag', tag: tagKey.slice(local.name.length + 1) }, manifest.bytes, parsed);
            if (this.pendingTags.get(tagKey) === digest) this.pendingTags.delete(tagKey);
          }
        }
      })
      .catch((err: unknown) => {
        this.options.logger?.warn({ upstream: this.config.prefix, repository: local.name, digest: manifest.digest, err: (err as Error).message }, 'manifest not cached: its content could not be fetched');
        for (const [tagKey, digest] of this.pendingTags) {
          if (digest === manifest.digest) {
            this.pendingTags.delete(tagKey);
            this.tagChecks.delete(tagKey);
          }
        }
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, { manifest, parsed, stored });
  }

  /** Fetches what a manifest references (an index: its children, each with its blobs), then stores it by digest. */
  private async complete(local: Repository, manifest: StoredManifest, parsed: ParsedManifest): Promise<void> {
    for (const blob of parsed.blobs) await this.ensureBlob(local, blob);
    for (const child of parsed.children) {
      if (await local.manifests.head({ kind: 'digest', digest: child })) continue;
      const fetched = await this.manifest(local, { kind: 'digest', digest: child });
      if (!fetched) throw new UpstreamLied(`upstream does not have ${child}, which an index it sent references`);
      await this.pending.get(`${local.name}@${child}`)?.stored;
    }
    await local.manifests.put({ kind: 'digest', digest: manifest.digest }, manifest.bytes, parsed);
  }
}
