/**
 * A concurrent registry workload for the stress and crash tests. Clients push images that share
 * layers, push indexes over children they re-push just before, re-tag older (often untagged)
 * manifests, re-push identical manifests by digest and by tag, move tags back and forth, delete
 * manifests and tags, and mount across repositories — while recording exactly what the registry
 * acknowledged, so that it can be verified afterwards.
 *
 * The promise checked: every tag whose last write by the test was answered 201, and that the test
 * did not later move or delete, resolves to that digest; the manifest it names (and, for an
 * index, each child) pulls intact with all its blobs. Nothing is demanded of untagged manifests:
 * with `--gc-delete-untagged` the registry may collect them at once.
 *
 * Each client writes only its own two repositories, one operation at a time, so the ledger
 * knows the order of every write to a tag.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { blob, image, index, sha256, type Blob } from './oci.js';

/** A manifest the registry acknowledged once (201); it may have been deleted or collected since. */
export interface Pushed {
  repo: string;
  digest: string;
  mediaType: string;
  manifest: Buffer;
  /** Config and layers; none for an index. */
  blobs: Blob[];
  /** An index's children, in the same repository; none for an image. */
  children: Pushed[];
}

export class Ledger {
  /** Every manifest the registry acknowledged, by repo@digest: its bytes, not a claim that it exists. */
  readonly pushed = new Map<string, Pushed>();
  /** The digest each tag was last acknowledged with, by repo:tag; dropped before the test moves or deletes the tag. */
  readonly tags = new Map<string, string>();
  /**
   * One image per repository under the tag `anchor`, never moved or deleted: its blobs stay
   * linked, so manifests made from them (variants, new images over its layers) can be pushed
   * without racing the collection of fresh uploads, which a zero grace period makes a gamble.
   */
  readonly anchors = new Map<string, Pushed>();
  /** Acknowledged tags found gone or moved while the workload ran. */
  readonly lost: string[] = [];
  /** Responses with status >= 500, as "METHOD path → status". */
  readonly serverErrors: string[] = [];
  readonly counts: Record<string, number> = {};

  count(what: string, n = 1): void {
    this.counts[what] = (this.counts[what] ?? 0) + n;
  }

  /** What the registry must keep: each tagged manifest and, for an index, its children. */
  required(): Map<string, Pushed> {
    const out = new Map<string, Pushed>();
    const add = (p: Pushed) => {
      out.set(`${p.repo}@${p.digest}`, p);
      for (const c of p.children) add(c);
    };
    for (const [key, digest] of this.tags) add(this.pushed.get(`${repoOf(key)}@${digest}`)!);
    return out;
  }
}

export interface WorkloadOptions {
  /** Base URLs of the live replicas; each request picks one. The caller removes a URL before killing its server. */
  urls: string[];
  clients: number;
  /** Operations per client at most. */
  operations: number;
  /** Stop starting new operations at this time (ms since the epoch). */
  deadline?: number;
  prefix: string;
  ledger: Ledger;
  /** Stop early (e.g. when every server is about to be killed). */
  stopped?: () => boolean;
  /**
   * Processes behind a live URL may be killed (the workers of `serve --workers`): a request that
   * fails on its connection then has an unknown outcome, like one to a killed server.
   */
  workersDie?: boolean;
}

/** A request cut off because its server was killed: the operation is abandoned, its outcome unknown. */
class Interrupted extends Error {}

const SHARED_LAYERS: Blob[] = Array.from({ length: 6 }, (_, i) => blob(randomBytes(2048 + i * 1024)));

export async function runWorkload(options: WorkloadOptions): Promise<void> {
  await Promise.all(Array.from({ length: options.clients }, (_, i) => new Client(options, i).work()));
}

/**
 * Pushes every client's anchors, best before collection runs (a zero grace period may take
 * fresh blobs before their manifest arrives, again and again under load).
 */
export async function pushAnchors(options: WorkloadOptions): Promise<void> {
  await Promise.all(Array.from({ length: options.clients }, (_, i) => new Client(options, i).pushAnchors()));
  assert.equal(options.ledger.anchors.size, options.clients * 2, 'not every anchor was pushed');
}

function repoOf(key: string): string {
  return key.slice(0, key.lastIndexOf(':'));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Client {
  private readonly repos: string[];
  /** Manifests this client pushed and has not deleted; many are untagged, some already collected. */
  private readonly mine: Pushed[] = [];
  /** Tags are unique across runs of the workload on the same repositories. */
  private readonly run = randomBytes(3).toString('hex');
  private tagCounter = 0;

  constructor(
    private readonly o: WorkloadOptions,
    private readonly id: number,
  ) {
    this.repos = [`${o.prefix}/c${id}/a`, `${o.prefix}/c${id}/b`];
  }

  private get ledger(): Ledger {
    return this.o.ledger;
  }

  private async request(method: string, path: string, init: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Response> {
    const url = this.o.urls[randomInt(this.o.urls.length)];
    if (url === undefined || this.o.stopped?.()) throw new Interrupted('no live server');
    let res: Response;
    for (let attempt = 0; ; attempt++) {
      try {
        // node:cluster's primary keeps a connection it was handing to a worker that died open, unanswered: give up on it.
        const signal = this.o.workersDie ? AbortSignal.timeout(10_000) : undefined;
        res = await fetch(`${url}${path}`, { method, headers: init.headers, body: init.body, signal });
      } catch (err) {
        if (!this.o.urls.includes(url) || this.o.stopped?.()) throw new Interrupted(`server ${url} killed`);
        if (this.o.workersDie) {
          this.ledger.count('cut by a killed worker');
          throw new Interrupted(`a worker of ${url} killed`);
        }
        throw err;
      }
      // Too many requests in flight from this address (the clients share one): wait, as clients do.
      if (res.status !== 429 || attempt >= 20) break;
      await res.body?.cancel();
      this.ledger.count('throttled (429)');
      await sleep(20 + randomInt(80));
    }
    if (res.status >= 500) this.ledger.serverErrors.push(`${method} ${path} → ${res.status} ${await res.clone().text()}`);
    return res;
  }

  /** Pushes this client's anchors, unless an earlier run did; false if stopped first. */
  async pushAnchors(): Promise<boolean> {
    try {
      for (const repo of this.repos) {
        const p = this.newImage(repo);
        while (!this.ledger.anchors.has(repo)) {
          if (this.o.stopped?.() || Date.now() >= (this.o.deadline ?? Infinity)) return false;
          await this.restore(p);
          if (await this.put(p, 'anchor')) this.ledger.anchors.set(repo, p);
        }
      }
      return true;
    } catch (err) {
      if (err instanceof Interrupted || this.o.stopped?.()) return false;
      throw err;
    }
  }

  async work(): Promise<void> {
    if (!(await this.pushAnchors())) return;
    for (const repo of this.repos) if (!this.mine.includes(this.ledger.anchors.get(repo)!)) this.mine.push(this.ledger.anchors.get(repo)!);
    for (let i = 0; i < this.o.operations && !this.o.stopped?.() && Date.now() < (this.o.deadline ?? Infinity); i++) {
      const roll = randomInt(100);
      try {
        if (roll < 15) await this.pushNew();
        else if (roll < 27) await this.retag();
        else if (roll < 34) await this.repushIdentical();
        else if (roll < 60) await this.pingPong();
        else if (roll < 68) await this.pushIndex();
        else if (roll < 76) await this.deleteManifest();
        else if (roll < 83) await this.deleteTag();
        else if (roll < 93) await this.mountAndPush();
        else await this.audit();
      } catch (err) {
        // A server killed mid-request (crash test) leaves the operation's outcome unknown; the
        // ledger already forgot whatever it could have changed.
        if (err instanceof Interrupted) continue;
        if (!this.o.stopped?.()) throw err;
      }
    }
  }

  private repo(): string {
    return this.repos[randomInt(this.repos.length)]!;
  }

  /** A tag no one wrote yet; its first letter names the operation that wrote it, for reports. */
  private newTag(kind: 't' | 'r' | 'p' | 'i'): string {
    return `${kind}${this.id}-${this.run}-${this.tagCounter++}`;
  }

  private tagsOf(p: Pushed): string[] {
    return [...this.ledger.tags].filter(([key, digest]) => digest === p.digest && repoOf(key) === p.repo).map(([key]) => key);
  }

  /** This client's tags in the ledger (in one repository), anchors left out unless asked for. */
  private myTags(repo?: string, withAnchors = false): string[] {
    return [...this.ledger.tags.keys()].filter(
      (k) => (repo ? repoOf(k) === repo : this.repos.includes(repoOf(k))) && (withAnchors || !k.endsWith(':anchor')),
    );
  }

  private pick<T>(list: T[]): T | undefined {
    return list[randomInt(Math.max(list.length, 1))];
  }

  /** True when the registry promises to keep `p`: it is tagged, or a child of a tagged index. */
  private isRequired(p: Pushed): boolean {
    return this.ledger.required().has(`${p.repo}@${p.digest}`);
  }

  /**
   * PUTs a manifest by tag or by digest until the registry takes it: a refusal because
   * collection took a blob or child in between (the safe outcome, as a zero grace period and
   * delete-untagged allow) is answered as a client would, by pushing what is missing again.
   */
  private async put(p: Pushed, tag?: string): Promise<boolean> {
    const key = tag === undefined ? undefined : `${p.repo}:${tag}`;
    const before = key === undefined ? undefined : this.ledger.tags.get(key);
    // A move's outcome is unknown until acknowledged: forget the old target first. Re-pushing
    // the same manifest under the same tag leaves the promise as it was.
    if (key !== undefined && before !== p.digest) this.ledger.tags.delete(key);
    for (let attempt = 0; attempt < 8; attempt++) {
      const res = await this.request('PUT', `/v2/${p.repo}/manifests/${tag ?? p.digest}`, { body: p.manifest, headers: { 'content-type': p.mediaType } });
      if (res.status === 201) {
        assert.equal(res.headers.get('docker-content-digest'), p.digest);
        this.ledger.pushed.set(`${p.repo}@${p.digest}`, p);
        if (key !== undefined) this.ledger.tags.set(key, p.digest);
        if (!this.mine.includes(p)) this.mine.push(p);
        this.ledger.count(p.children.length ? 'index accepted' : 'manifest accepted');
        return true;
      }
      const text = await res.text();
      assert.equal(res.status, 400, `PUT ${p.repo}:${tag ?? p.digest} → ${res.status} ${text}`);
      const code = (JSON.parse(text) as { errors: { code: string }[] }).errors[0]?.code;
      assert.equal(code, 'MANIFEST_BLOB_UNKNOWN', text);
      this.ledger.count(p.children.length ? 'index refused: child collected' : 'manifest refused: blob collected');
      await this.restore(p);
    }
    // Refused every time: the registry changed nothing, so the tag still names what it named.
    if (key !== undefined && before !== undefined) this.ledger.tags.set(key, before);
    return false;
  }

  /**
   * Pushes again whatever blobs or children of `p` the registry no longer has, all at once as
   * docker does: collection with a zero grace period takes an unreferenced blob at its next
   * pass, so the manifest must follow its blobs quickly.
   */
  private async restore(p: Pushed): Promise<void> {
    await Promise.all([
      ...p.blobs.map(async (b) => {
        const head = await this.request('HEAD', `/v2/${p.repo}/blobs/${b.digest}`);
        if (head.status !== 200) await this.upload(p.repo, b);
      }),
      ...p.children.map(async (c) => {
        const head = await this.request('HEAD', `/v2/${p.repo}/manifests/${c.digest}`);
        if (head.status !== 200) await this.put(c);
      }),
    ]);
  }

  private async upload(repo: string, b: Blob): Promise<void> {
    if (randomInt(4) > 0) {
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

  /** A new image over a new config, a new layer and shared layers (the anchor's, once there is one). */
  private newImage(repo: string, layers?: Blob[]): Pushed {
    const shared = this.ledger.anchors.get(repo)?.blobs.slice(1) ?? SHARED_LAYERS;
    const img = image({ layers: layers ?? [shared[randomInt(shared.length)]!, shared[randomInt(shared.length)]!, blob(randomBytes(1024))].filter((b, i, all) => all.indexOf(b) === i) });
    return { repo, digest: img.digest, mediaType: img.mediaType, manifest: img.manifest, blobs: [img.config, ...img.layers], children: [] };
  }

  /** Another manifest over the same blobs (an annotation differs): cheap to push, no upload. */
  private variant(p: Pushed): Pushed {
    const body = JSON.parse(p.manifest.toString()) as Record<string, unknown>;
    body.annotations = { 'org.example.variant': randomBytes(6).toString('hex') };
    const manifest = Buffer.from(JSON.stringify(body));
    return { ...p, manifest, digest: sha256(manifest) };
  }

  /** Docker's flow: HEAD each blob, upload the missing ones, PUT the manifest (mostly under a tag). */
  private async pushNew(repo = this.repo(), layers?: Blob[]): Promise<void> {
    const p = this.newImage(repo, layers);
    await this.restore(p);
    await this.put(p, randomInt(5) === 0 ? undefined : this.newTag('t'));
  }

  /** PUTs an older manifest of this client, preferably an untagged one, under a new tag or one of its existing tags. */
  private async retag(): Promise<void> {
    const untagged = this.mine.filter((p) => this.tagsOf(p).length === 0);
    const p = randomInt(10) < 7 && untagged.length ? this.pick(untagged)! : this.pick(this.mine)!;
    const moving = randomInt(2) === 0 ? this.pick(this.myTags(p.repo)) : undefined;
    if (await this.put(p, moving ? moving.slice(moving.lastIndexOf(':') + 1) : this.newTag('r'))) this.ledger.count(moving ? 'tag moved' : 're-tagged');
  }

  /** PUTs a tagged manifest again, identical, by digest and then by its tag. */
  private async repushIdentical(): Promise<void> {
    const key = this.pick(this.myTags(undefined, true));
    if (!key) return;
    const p = this.ledger.pushed.get(`${repoOf(key)}@${this.ledger.tags.get(key)!}`)!;
    if ((await this.put(p)) && (await this.put(p, key.slice(key.lastIndexOf(':') + 1)))) this.ledger.count('re-pushed identical');
  }

  /**
   * Moves one tag back and forth between two manifests over the same blobs, pausing less than a
   * collection interval: each PUT re-tags a manifest that became untagged a moment before and
   * that a collector may be deleting right then.
   */
  private async pingPong(): Promise<void> {
    const base = this.ledger.anchors.get(this.repo())!;
    const pair = [this.variant(base), this.variant(base)];
    const tag = this.newTag('p');
    for (let step = 0, n = 4 + randomInt(6); step < n; step++) {
      if (!(await this.put(pair[step % 2]!, tag))) return;
      this.ledger.count('ping-pong re-tag');
      await sleep(randomInt(120));
    }
  }

  /** Re-pushes two images by digest, then an index over them under a tag. */
  private async pushIndex(): Promise<void> {
    const repo = this.repo();
    const images = this.mine.filter((p) => p.repo === repo && p.blobs.length);
    const children: Pushed[] = [];
    for (let i = 0; i < 2; i++) {
      const child = randomInt(3) > 0 ? this.pick(images) : undefined;
      if (child && !children.includes(child)) children.push(child);
      else children.push(this.newImage(repo));
    }
    for (const c of children) {
      await this.restore(c);
      if (!(await this.put(c))) return;
    }
    const idx = index(children.map((c) => ({ digest: c.digest, size: c.manifest.length, mediaType: c.mediaType })));
    await this.put({ repo, digest: idx.digest, mediaType: idx.mediaType, manifest: idx.manifest, blobs: [], children }, this.newTag('i'));
  }

  private async deleteManifest(): Promise<void> {
    const anchors = [...this.ledger.anchors.values()];
    const candidates = this.mine.filter((m) => !anchors.includes(m));
    // Mostly tagged ones: an untagged one is often collected already.
    const tagged = candidates.filter((m) => this.tagsOf(m).length > 0);
    const p = this.pick(randomInt(10) < 7 && tagged.length ? tagged : candidates);
    if (!p) return;
    const required = this.isRequired(p);
    // Forget its tags before asking: if the server dies mid-request, the outcome is unknown.
    const tags = this.tagsOf(p);
    for (const key of tags) this.ledger.tags.delete(key);
    const res = await this.request('DELETE', `/v2/${p.repo}/manifests/${p.digest}`);
    if (res.status === 409) {
      // An index in the repository still holds it: nothing changed.
      for (const key of tags) this.ledger.tags.set(key, p.digest);
      this.ledger.count('delete refused: in an index');
      return;
    }
    this.mine.splice(this.mine.indexOf(p), 1);
    if (res.status === 404) {
      if (required) this.ledger.lost.push(`DELETE ${p.repo}@${p.digest} (tags ${tags.join(', ') || 'none'}, or in a tagged index) → 404`);
      else this.ledger.count('delete: already collected');
      return;
    }
    assert.equal(res.status, 202, `delete manifest ${p.repo}@${p.digest}: ${res.status}`);
    this.ledger.count('manifest deleted');
  }

  private async deleteTag(): Promise<void> {
    const key = this.pick(this.myTags());
    if (!key) return;
    const digest = this.ledger.tags.get(key)!;
    this.ledger.tags.delete(key);
    const res = await this.request('DELETE', `/v2/${repoOf(key)}/manifests/${key.slice(key.lastIndexOf(':') + 1)}`);
    if (res.status === 404) this.ledger.lost.push(`tag ${key} → ${digest}: DELETE found no tag`);
    else assert.equal(res.status, 202, `delete tag ${key}: ${res.status}`);
    this.ledger.count('tag deleted');
  }

  /** Mount another client's layers, then push an image that uses them. */
  private async mountAndPush(): Promise<void> {
    const others = [...this.ledger.tags]
      .filter(([key]) => !this.repos.includes(repoOf(key)))
      .map(([key, digest]) => this.ledger.pushed.get(`${repoOf(key)}@${digest}`)!)
      .filter((p) => p.blobs.length);
    const source = this.pick(others);
    if (!source) return this.pushNew();
    const repo = this.repo();
    const layers: Blob[] = [];
    for (const layer of source.blobs.slice(1)) {
      const res = await this.request('POST', `/v2/${repo}/blobs/uploads/?mount=${layer.digest}&from=${source.repo}`);
      if (res.status === 201) {
        layers.push(layer);
        this.ledger.count('mounted');
      } else {
        assert.equal(res.status, 202, `mount: ${res.status}`);
        // The source lost it (untagged or deleted, then collected): abandon the session it offered.
        await this.request('DELETE', res.headers.get('location')!);
        this.ledger.count('mount fell back to upload');
      }
    }
    await this.pushNew(repo, layers.length ? layers : undefined);
  }

  /** Records an acknowledged tag found lost, once: the ledger stops demanding it. */
  private lose(key: string, how: string): void {
    this.ledger.lost.push(`tag ${key} → ${this.ledger.tags.get(key)}: ${how}`);
    this.ledger.tags.delete(key);
  }

  /** Every tag this client holds must still name what it was last acknowledged with. */
  private async audit(): Promise<void> {
    for (const key of this.myTags(undefined, true)) {
      const digest = this.ledger.tags.get(key)!;
      const res = await this.request('HEAD', `/v2/${repoOf(key)}/manifests/${key.slice(key.lastIndexOf(':') + 1)}`);
      const got = res.status === 200 ? res.headers.get('docker-content-digest') : `status ${res.status}`;
      if (got !== digest) this.lose(key, `audit found ${got}`);
    }
    this.ledger.count('audits');
  }
}

/** Runs `work` over `items`, `width` at a time. */
async function pool<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

/**
 * Checks the promise: no tag was found lost during the run, every tag resolves (GET) to the
 * manifest it was last acknowledged with, and every tagged manifest and tagged index's child
 * pulls intact with all its blobs.
 */
export async function verifyLedger(url: string, ledger: Ledger): Promise<{ tags: number; manifests: number; blobs: number }> {
  assert.deepEqual(ledger.lost, [], 'acknowledged tags were lost while the workload ran');
  await pool([...ledger.tags], 8, async ([key, digest]) => {
    const res = await fetch(`${url}/v2/${repoOf(key)}/manifests/${key.slice(key.lastIndexOf(':') + 1)}`);
    assert.equal(res.status, 200, `tag ${key} (acknowledged → ${digest}) is gone`);
    assert.equal(res.headers.get('docker-content-digest'), digest, `tag ${key} moved`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), ledger.pushed.get(`${repoOf(key)}@${digest}`)!.manifest, `tag ${key}: bytes changed`);
  });
  const required = [...ledger.required()];
  const links = new Map<string, { repo: string; blob: Blob }>();
  await pool(required, 8, async ([key, p]) => {
    const res = await fetch(`${url}/v2/${p.repo}/manifests/${p.digest}`);
    assert.equal(res.status, 200, `manifest ${key}, tagged or in a tagged index, is gone`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), p.manifest, `manifest ${key} bytes changed`);
    for (const b of p.blobs) links.set(`${p.repo}@${b.digest}`, { repo: p.repo, blob: b });
  });
  await pool([...links], 8, async ([key, { repo, blob: b }]) => {
    const got = await fetch(`${url}/v2/${repo}/blobs/${b.digest}`);
    assert.equal(got.status, 200, `blob ${key} of a tagged manifest is missing`);
    assert.equal(sha256(Buffer.from(await got.arrayBuffer())), b.digest, `blob ${key} bytes are corrupt`);
  });
  return { tags: ledger.tags.size, manifests: required.length, blobs: links.size };
}
