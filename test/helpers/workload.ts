/**
 * A concurrent registry workload for the stress and crash tests: clients push images that
 * share layers, retag, delete manifests and tags, and mount across repositories, while
 * recording exactly what the registry acknowledged so it can be verified afterwards.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { blob, image, sha256, type Blob, type Image } from './oci.js';

export interface Accepted {
  repo: string;
  image: Image;
}

export class Ledger {
  /** Manifests the registry accepted (201) and that no acknowledged delete removed, by repo@digest. */
  readonly manifests = new Map<string, Accepted>();
  /** Tags whose last acknowledged write pointed at a digest, by repo:tag (only the owning client writes them). */
  readonly tags = new Map<string, string>();
  /** Responses with status >= 500, as "METHOD path → status". */
  readonly serverErrors: string[] = [];
  readonly counts: Record<string, number> = {};

  count(what: string): void {
    this.counts[what] = (this.counts[what] ?? 0) + 1;
  }
}

export interface WorkloadOptions {
  /** Base URLs of the replicas; each request picks one at random. */
  urls: string[];
  clients: number;
  /** Operations per client (or until `until` returns true). */
  operations: number;
  prefix: string;
  ledger: Ledger;
  /** Stop early (e.g. when the server is about to be killed). */
  stopped?: () => boolean;
}

const SHARED_LAYERS: Blob[] = Array.from({ length: 6 }, (_, i) => blob(randomBytes(2048 + i * 1024)));

export async function runWorkload(options: WorkloadOptions): Promise<void> {
  await Promise.all(Array.from({ length: options.clients }, (_, i) => new Client(options, i).run()));
}

class Client {
  private readonly repos: string[];
  private readonly mine: Accepted[] = [];
  private tagCounter = 0;

  constructor(
    private readonly o: WorkloadOptions,
    private readonly id: number,
  ) {
    this.repos = [`${o.prefix}/c${id}/a`, `${o.prefix}/c${id}/b`];
  }

  private url(): string {
    return this.o.urls[randomInt(this.o.urls.length)]!;
  }

  private async request(method: string, path: string, init: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Response> {
    const res = await fetch(`${this.url()}${path}`, { method, headers: init.headers, body: init.body });
    if (res.status >= 500) this.o.ledger.serverErrors.push(`${method} ${path} → ${res.status} ${await res.clone().text()}`);
    return res;
  }

  async run(): Promise<void> {
    for (let i = 0; i < this.o.operations && !this.o.stopped?.(); i++) {
      const roll = randomInt(100);
      try {
        if (roll < 45 || this.mine.length === 0) await this.push();
        else if (roll < 60) await this.retag();
        else if (roll < 72) await this.deleteManifest();
        else if (roll < 82) await this.deleteTag();
        else await this.mountAndPush();
      } catch (err) {
        // A connection cut by a killed server is expected in the crash test; anything else is not.
        if (!this.o.stopped?.()) throw err;
      }
    }
  }

  private repo(): string {
    return this.repos[randomInt(this.repos.length)]!;
  }

  /** Docker's flow: HEAD each blob, upload the missing ones, PUT the manifest under a tag. */
  private async push(repo = this.repo(), layers?: Blob[]): Promise<void> {
    const img = image({ layers: layers ?? [SHARED_LAYERS[randomInt(6)]!, SHARED_LAYERS[randomInt(6)]!, blob(randomBytes(1024))].filter((b, i, all) => all.indexOf(b) === i) });
    const tag = `t${this.id}-${this.tagCounter++}`;
    // A refused manifest (collection took a blob in between) is retried, as clients do.
    for (let attempt = 0; attempt < 8; attempt++) {
      for (const b of [img.config, ...img.layers]) {
        const head = await this.request('HEAD', `/v2/${repo}/blobs/${b.digest}`);
        if (head.status === 200) continue;
        await this.upload(repo, b);
      }
      if (await this.putManifest(repo, img, tag)) return;
    }
  }

  private async upload(repo: string, b: Blob): Promise<void> {
    if (randomInt(2) === 0) {
      const res = await this.request('POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, { body: b.bytes, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(res.status, 201, `single-request upload: ${res.status}`);
      return;
    }
    const post = await this.request('POST', `/v2/${repo}/blobs/uploads/`);
    assert.equal(post.status, 202);
    const location = post.headers.get('location')!;
    const half = b.bytes.length >> 1;
    const patch = await this.request('PATCH', location, { body: b.bytes.subarray(0, half), headers: { 'content-range': `0-${half - 1}` } });
    assert.equal(patch.status, 202);
    const put = await this.request('PUT', `${location}?digest=${b.digest}`, { body: b.bytes.subarray(half), headers: { 'content-range': `${half}-${b.bytes.length - 1}` } });
    assert.equal(put.status, 201);
  }

  private async putManifest(repo: string, img: Image, tag: string): Promise<boolean> {
    const res = await this.request('PUT', `/v2/${repo}/manifests/${tag}`, { body: img.manifest, headers: { 'content-type': img.mediaType } });
    if (res.status === 201) {
      assert.equal(res.headers.get('docker-content-digest'), img.digest);
      const accepted = { repo, image: img };
      this.o.ledger.manifests.set(`${repo}@${img.digest}`, accepted);
      this.o.ledger.tags.set(`${repo}:${tag}`, img.digest);
      if (!this.mine.some((m) => m.repo === repo && m.image.digest === img.digest)) this.mine.push(accepted);
      this.o.ledger.count('manifest accepted');
      return true;
    }
    // With a zero grace period, collection may take a just-uploaded blob before the manifest
    // arrives: the registry must then refuse the manifest, which is the safe outcome.
    const body = (await res.json()) as { errors: { code: string }[] };
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(body.errors[0]?.code, 'MANIFEST_BLOB_UNKNOWN');
    this.o.ledger.count('manifest refused: blob collected');
    return false;
  }

  private pick(): Accepted | undefined {
    return this.mine[randomInt(this.mine.length)];
  }

  private async retag(): Promise<void> {
    const a = this.pick();
    if (!a) return;
    await this.putManifest(a.repo, a.image, `t${this.id}-${this.tagCounter++}`);
  }

  private async deleteManifest(): Promise<void> {
    const a = this.pick();
    if (!a) return;
    // Forget it before asking: if the server dies mid-request, the outcome is unknown.
    this.mine.splice(this.mine.indexOf(a), 1);
    this.o.ledger.manifests.delete(`${a.repo}@${a.image.digest}`);
    for (const [key, digest] of this.o.ledger.tags) if (digest === a.image.digest && key.startsWith(`${a.repo}:`)) this.o.ledger.tags.delete(key);
    const res = await this.request('DELETE', `/v2/${a.repo}/manifests/${a.image.digest}`);
    assert.equal(res.status, 202, `delete manifest ${a.repo}@${a.image.digest}`);
    this.o.ledger.count('manifest deleted');
  }

  private async deleteTag(): Promise<void> {
    const tags = [...this.o.ledger.tags.keys()].filter((k) => this.repos.some((r) => k.startsWith(`${r}:`)));
    const key = tags[randomInt(Math.max(tags.length, 1))];
    if (!key) return;
    const [repo, tag] = key.split(':') as [string, string];
    this.o.ledger.tags.delete(key);
    const res = await this.request('DELETE', `/v2/${repo}/manifests/${tag}`);
    assert.equal(res.status, 202, `delete tag ${key}`);
    this.o.ledger.count('tag deleted');
  }

  /** Mount another client's layers, then push an image that uses them. */
  private async mountAndPush(): Promise<void> {
    const others = [...this.o.ledger.manifests.values()].filter((a) => !this.repos.includes(a.repo));
    const source = others[randomInt(Math.max(others.length, 1))];
    if (!source) return this.push();
    const repo = this.repo();
    const layers: Blob[] = [];
    for (const layer of source.image.layers) {
      const res = await this.request('POST', `/v2/${repo}/blobs/uploads/?mount=${layer.digest}&from=${source.repo}`);
      if (res.status === 201) {
        layers.push(layer);
        this.o.ledger.count('mounted');
      } else {
        assert.equal(res.status, 202, `mount: ${res.status}`);
        // The source lost it (deleted and collected): abandon the session it offered.
        await this.request('DELETE', res.headers.get('location')!);
        this.o.ledger.count('mount fell back to upload');
      }
    }
    await this.push(repo, layers.length ? layers : undefined);
  }
}

/** Pulls every manifest and tag the ledger holds and checks the bytes of everything they reference. */
export async function verifyLedger(url: string, ledger: Ledger): Promise<{ manifests: number; blobs: number }> {
  let blobs = 0;
  const checked = new Set<string>();
  for (const [key, { repo, image: img }] of ledger.manifests) {
    const res = await fetch(`${url}/v2/${repo}/manifests/${img.digest}`);
    assert.equal(res.status, 200, `accepted manifest ${key} is gone`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), img.manifest, `manifest ${key} bytes changed`);
    for (const b of [img.config, ...img.layers]) {
      const id = `${repo}@${b.digest}`;
      if (checked.has(id)) continue;
      checked.add(id);
      const got = await fetch(`${url}/v2/${repo}/blobs/${b.digest}`);
      assert.equal(got.status, 200, `blob ${b.digest} of committed manifest ${key} is missing`);
      assert.equal(sha256(Buffer.from(await got.arrayBuffer())), b.digest, `blob ${b.digest} bytes are corrupt`);
      blobs++;
    }
  }
  for (const [key, digest] of ledger.tags) {
    const i = key.lastIndexOf(':');
    const res = await fetch(`${url}/v2/${key.slice(0, i)}/manifests/${key.slice(i + 1)}`, { method: 'HEAD' });
    assert.equal(res.status, 200, `tag ${key} is gone`);
    assert.equal(res.headers.get('docker-content-digest'), digest, `tag ${key} moved`);
  }
  return { manifests: ledger.manifests.size, blobs };
}
