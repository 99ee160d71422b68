/**
 * Copies repositories from an ImageSource into a Registry through its ordinary write paths: blobs
 * through an upload session (the backend verifies the digest before the blob becomes visible),
 * manifests through `put` once everything they reference is in, and tags last, so a repository
 * is never tagged before its images are whole. What is already there is skipped, so an
 * interrupted import re-run carries on where it stopped.
 */
import { Transform } from 'node:stream';
import { digestAlgorithm, digestOf, type Digest } from '../../core/digest.js';
import type { Registry, Repository } from '../../core/interfaces.js';
import { parseManifest, type ParsedManifest } from '../../core/manifest.js';
import { parseRepositoryName } from '../../core/names.js';
import type { Progress } from './progress.js';
import type { ImageSource, SourceManifest, SourceRepository } from './source.js';

export interface ImportSummary {
  repositories: number;
  manifests: { copied: number; skipped: number };
  tags: { set: number; skipped: number };
  blobs: { copied: number; skipped: number };
  bytes: { copied: number; skipped: number };
  errors: string[];
}

export function emptySummary(): ImportSummary {
  return { repositories: 0, manifests: { copied: 0, skipped: 0 }, tags: { set: 0, skipped: 0 }, blobs: { copied: 0, skipped: 0 }, bytes: { copied: 0, skipped: 0 }, errors: [] };
}

export interface ImportOptions {
  /** Blobs copied at once. */
  concurrency: number;
  progress?: Progress;
}

export async function importSource(registry: Registry, source: ImageSource, options: ImportOptions, summary = emptySummary()): Promise<ImportSummary> {
  const total = { bytes: 0 };
  for await (const repository of source.repositories()) {
    await new RepositoryImport(registry, repository, options, summary, total).run();
  }
  return summary;
}

class RepositoryImport {
  private readonly target: Repository;
  private readonly manifests = new Map<Digest, Promise<void>>();
  private readonly blobs = new Map<Digest, Promise<void>>();
  /** Manifests imported (or found present) whose referrers the source has yet to be asked for. */
  private readonly withReferrers: Digest[] = [];
  private readonly slots: Semaphore;
  /** Source manifests read so far (small: at most 4 MiB each, most a few KiB). */
  private readonly sourceManifests = new Map<Digest, Promise<SourceManifest>>();

  constructor(
    registry: Registry,
    private readonly source: SourceRepository,
    private readonly options: ImportOptions,
    private readonly summary: ImportSummary,
    /** Bytes the repositories planned so far reach, for the progress total. */
    private readonly total: { bytes: number },
  ) {
    this.target = registry.repository(parseRepositoryName(source.name));
    this.slots = new Semaphore(Math.max(1, options.concurrency));
  }

  async run(): Promise<void> {
    this.summary.repositories++;
    const failed = new Set<Digest>();
    const roots = [...new Set([...this.source.tags.map((t) => t.digest), ...this.source.manifests])];
    if (this.options.progress) await this.plan(roots).catch(() => undefined);
    for (const digest of roots) {
      try {
        await this.manifest(digest);
      } catch (err) {
        failed.add(digest);
        this.fail(`${this.source.name}@${digest}`, err);
      }
    }
    await this.referrers();
    for (const { tag, digest } of this.source.tags) {
      if (failed.has(digest)) {
        this.summary.errors.push(`${this.source.name}:${tag}: not tagged, ${digest} did not import`);
        continue;
      }
      try {
        await this.tag(tag, digest);
      } catch (err) {
        this.fail(`${this.source.name}:${tag}`, err);
      }
    }
  }

  private fail(subject: string, err: unknown): void {
    const message = `${subject}: ${err instanceof Error ? err.message : String(err)}`;
    this.summary.errors.push(message);
    this.options.progress?.log(`error: ${message}`);
  }

  private manifest(digest: Digest): Promise<void> {
    let pending = this.manifests.get(digest);
    if (!pending) {
      this.manifests.set(digest, (pending = this.copyManifest(digest)));
      if (this.source.referrers) void pending.then(() => this.withReferrers.push(digest), () => undefined);
    }
    return pending;
  }

  /**
   * Brings in the manifests the source lists as referrers of those imported, and theirs in turn
   * (after the copies, not inside them: a referrer may be an index of its own subject). A failed
   * one is an error of its own.
   */
  private async referrers(): Promise<void> {
    const list = this.source.referrers?.bind(this.source);
    if (!list) return;
    for (let digest = this.withReferrers.shift(); digest; digest = this.withReferrers.shift()) {
      let referrers: Digest[];
      try {
        referrers = await list(digest);
      } catch (err) {
        this.fail(`${this.source.name}@${digest} (listing its referrers)`, err);
        continue;
      }
      for (const referrer of referrers) {
        // Once copied, it is queued for its own referrers (manifest() registered that first).
        await this.manifest(referrer).catch((err: unknown) => this.fail(`${this.source.name}@${referrer} (referrer of ${digest})`, err));
      }
    }
  }

  private async copyManifest(digest: Digest): Promise<void> {
    if (await this.target.manifests.head({ kind: 'digest', digest })) {
      this.summary.manifests.skipped++;
      this.options.progress?.item();
      return;
    }
    const { bytes, parsed } = await this.read(digest);
    // Every reference settles before the first failure is reported: nothing keeps writing behind a failed manifest.
    const settled = await Promise.allSettled([...parsed.children.map((child) => this.manifest(child)), ...parsed.blobs.map((blob) => this.blob(blob))]);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    await this.target.manifests.put({ kind: 'digest', digest }, bytes, parsed);
    this.summary.manifests.copied++;
    this.options.progress?.item();
  }

  /**
   * Adds the bytes the roots reach to the progress total (for the time left), reading their
   * manifests once (kept for the copy). Failures are left to the copy to report.
   */
  private async plan(roots: Digest[]): Promise<void> {
    const seenManifests = new Set<Digest>();
    const sizes = new Map<string, number>();
    const visit = async (digest: Digest): Promise<void> => {
      if (seenManifests.has(digest)) return;
      seenManifests.add(digest);
      const json = JSON.parse((await this.sourceManifest(digest)).bytes.toString('utf8')) as {
        config?: { digest: string; size: number };
        layers?: { digest: string; size: number; urls?: string[] }[];
        manifests?: { digest: string }[];
      };
      for (const d of [...(json.config ? [json.config] : []), ...(json.layers ?? []).filter((l) => !l.urls?.length)]) sizes.set(d.digest, d.size);
      for (const child of json.manifests ?? []) await visit(child.digest as Digest);
    };
    for (const root of roots) await visit(root).catch(() => undefined);
    this.total.bytes += [...sizes.values()].reduce((n, size) => n + (Number.isSafeInteger(size) ? size : 0), 0);
    this.options.progress?.expect(this.total.bytes);
  }

  private sourceManifest(digest: Digest): Promise<SourceManifest> {
    let pending = this.sourceManifests.get(digest);
    if (!pending) {
      this.sourceManifests.set(digest, (pending = this.source.manifest(digest)));
      pending.catch(() => this.sourceManifests.delete(digest));
    }
    return pending;
  }

  /** A source manifest, its digest checked and its references parsed as a push would be. */
  private async read(digest: Digest): Promise<{ bytes: Buffer; parsed: ParsedManifest }> {
    const { bytes, mediaType } = await this.sourceManifest(digest);
    if (digestOf(bytes, digestAlgorithm(digest)) !== digest) throw new Error(`manifest bytes do not match ${digest}`);
    return { bytes, parsed: parseManifest(bytes, mediaType) };
  }

  private blob(digest: Digest): Promise<void> {
    let pending = this.blobs.get(digest);
    if (!pending) this.blobs.set(digest, (pending = this.slots.run(() => this.copyBlob(digest))));
    return pending;
  }

  private async copyBlob(digest: Digest): Promise<void> {
    const present = (await this.target.blobs.stat(digest)) ?? (await this.target.blobs.mount(digest, null));
    if (present) {
      this.summary.blobs.skipped++;
      this.summary.bytes.skipped += present.size;
      this.options.progress?.skipped(present.size);
      return;
    }
    const blob = await this.source.blob(digest);
    if (!blob) throw new Error(`blob ${digest} is missing from the source`);
    const { stream, size } = blob;
    let upload;
    try {
      upload = await this.target.uploads.start();
    } catch (err) {
      stream.destroy();
      throw err;
    }
    try {
      const progress = this.options.progress;
      const counted = progress ? stream.pipe(new Transform({ transform: (chunk: Buffer, _e, done) => (progress.bytes(chunk.length), done(null, chunk)) })) : stream;
      if (counted !== stream) stream.once('error', (err) => counted.destroy(err));
      await this.target.uploads.complete(upload.id, digest, counted, { length: size });
    } catch (err) {
      stream.destroy();
      await this.target.uploads.cancel(upload.id).catch(() => undefined);
      throw err;
    }
    this.summary.blobs.copied++;
    this.summary.bytes.copied += size;
  }

  private async tag(tag: string, digest: Digest): Promise<void> {
    const current = await this.target.manifests.head({ kind: 'tag', tag });
    if (current?.digest === digest) {
      this.summary.tags.skipped++;
      return;
    }
    const { bytes, parsed } = await this.read(digest);
    await this.target.manifests.put({ kind: 'tag', tag }, bytes, parsed);
    this.summary.tags.set++;
  }
}

/** At most `limit` tasks at once. */
class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
