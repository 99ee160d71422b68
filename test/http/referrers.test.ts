/** Conformance: the referrers API (GET /v2/<name>/referrers/<digest>) and OCI-Subject. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { image, sha256, OCI_MANIFEST, OCI_INDEX, type Image } from '../helpers/oci.js';
import { http, pushImageOk, putManifest, expectStatus, expectError, header, json, nextLink, repoName, describeRes, type Res, useRegistry } from './util.js';

let base: string;
useRegistry({}, (url) => (base = url));

const SBOM = 'application/vnd.example.sbom.v1';
const SIG = 'application/vnd.example.signature.v1';
const SIG_CONFIG = 'application/vnd.example.signature.config.v1+json';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}
interface Doc {
  manifest: Buffer;
  digest: string;
  mediaType: string;
}

const referrersUrl = (repo: string, digest: string, query = '') => `${base}/v2/${repo}/referrers/${digest}${query}`;

function subjectOf(doc: Doc): { mediaType: string; digest: string; size: number } {
  return { mediaType: doc.mediaType, digest: doc.digest, size: doc.manifest.length };
}

function expectIndex(res: Res): Descriptor[] {
  expectStatus(res, 200);
  assert.equal(header(res, 'content-type'), OCI_INDEX);
  const body = json<{ schemaVersion: number; mediaType: string; manifests: Descriptor[] }>(res);
  assert.equal(body.schemaVersion, 2);
  assert.equal(body.mediaType, OCI_INDEX);
  assert.ok(Array.isArray(body.manifests), `manifests must be an array:\n${describeRes(res)}`);
  return body.manifests;
}

async function referrers(repo: string, digest: string, query = ''): Promise<Descriptor[]> {
  return expectIndex(await http(referrersUrl(repo, digest, query)));
}

function digests(list: Descriptor[]): string[] {
  return list.map((d) => d.digest).sort();
}

/** Pushes a referrer and checks the 201 and its OCI-Subject header. */
async function pushReferrer(repo: string, img: Image, subject: string, reference?: string): Promise<void> {
  const res = await pushImageOk(base, repo, img, reference);
  assert.equal(header(res, 'oci-subject'), subject);
}

/** An OCI index with a subject (its children must already be in the repository). */
function subjectIndex(children: Doc[], subject: Doc, artifactType?: string, annotations?: Record<string, string>): Doc {
  const body = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    ...(artifactType ? { artifactType } : {}),
    manifests: children.map((c) => ({ mediaType: c.mediaType, digest: c.digest, size: c.manifest.length })),
    subject: subjectOf(subject),
    ...(annotations ? { annotations } : {}),
  };
  const manifest = Buffer.from(JSON.stringify(body));
  return { manifest, digest: sha256(manifest), mediaType: OCI_INDEX };
}

function find(list: Descriptor[], digest: string): Descriptor {
  const matches = list.filter((d) => d.digest === digest);
  assert.equal(matches.length, 1, `expected ${digest} exactly once in ${JSON.stringify(list)}`);
  return matches[0]!;
}

describe('referrers listing', () => {
  test('a subject without referrers → 200 with an empty OCI index', async () => {
    const repo = repoName('ref-empty');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    assert.deepEqual(await referrers(repo, subject.digest), []);
  });

  test('an unknown digest in a known repository → 200 with an empty list', async () => {
    const repo = repoName('ref-unknown-digest');
    await pushImageOk(base, repo, image(), 'v1');
    assert.deepEqual(await referrers(repo, sha256('never pushed')), []);
  });

  test('lists descriptors (mediaType, digest, size, artifactType, annotations) of manifests whose subject is the digest', async () => {
    const repo = repoName('ref-list');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const sbom = image({ subject: subjectOf(subject), artifactType: SBOM, annotations: { 'org.example.kind': 'sbom', 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' } });
    const sig = image({ subject: subjectOf(subject), artifactType: SIG, annotations: { 'org.example.kind': 'sig' } });
    await pushReferrer(repo, sbom, subject.digest);
    await pushReferrer(repo, sig, subject.digest);
    // An unrelated manifest (no subject) and a referrer of another subject are not listed.
    await pushImageOk(base, repo, image(), 'other');
    const otherSubject = image();
    await pushImageOk(base, repo, otherSubject, 'v2');
    await pushReferrer(repo, image({ subject: subjectOf(otherSubject), artifactType: SBOM }), otherSubject.digest);

    const list = await referrers(repo, subject.digest);
    assert.deepEqual(digests(list), [sbom.digest, sig.digest].sort());
    for (const [img, type, annotations] of [
      [sbom, SBOM, { 'org.example.kind': 'sbom', 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' }],
      [sig, SIG, { 'org.example.kind': 'sig' }],
    ] as const) {
      const d = find(list, img.digest);
      assert.equal(d.mediaType, OCI_MANIFEST);
      assert.equal(d.size, img.manifest.length);
      assert.equal(d.artifactType, type);
      assert.deepEqual(d.annotations, annotations);
    }
  });

  test('artifactType falls back to config.mediaType when the manifest has none', async () => {
    const repo = repoName('ref-fallback');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const sig = image({ subject: subjectOf(subject), configMediaType: SIG_CONFIG });
    await pushReferrer(repo, sig, subject.digest);
    const d = find(await referrers(repo, subject.digest), sig.digest);
    assert.equal(d.artifactType, SIG_CONFIG);
  });

  test('an index referrer carries its artifactType, or none when it has none', async () => {
    const repo = repoName('ref-index');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const child = image();
    await pushImageOk(base, repo, child);
    const typed = subjectIndex([child], subject, SBOM, { 'org.example.idx': 'yes' });
    const untyped = subjectIndex([child], subject);
    for (const idx of [typed, untyped]) {
      const res = await putManifest(base, repo, idx.digest, idx.manifest, idx.mediaType);
      expectStatus(res, 201);
      assert.equal(header(res, 'oci-subject'), subject.digest);
    }
    const list = await referrers(repo, subject.digest);
    assert.deepEqual(digests(list), [typed.digest, untyped.digest].sort());
    const t = find(list, typed.digest);
    assert.equal(t.mediaType, OCI_INDEX);
    assert.equal(t.size, typed.manifest.length);
    assert.equal(t.artifactType, SBOM);
    assert.deepEqual(t.annotations, { 'org.example.idx': 'yes' });
    const u = find(list, untyped.digest);
    assert.equal(u.mediaType, OCI_INDEX);
    assert.ok(!('artifactType' in u) || u.artifactType === undefined, `an index without artifactType must have none: ${JSON.stringify(u)}`);
  });

  test('a referrer pushed by tag is listed once, also after retagging', async () => {
    const repo = repoName('ref-tagged');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const sig = image({ subject: subjectOf(subject), artifactType: SIG });
    await pushReferrer(repo, sig, subject.digest, 'sig1');
    await pushReferrer(repo, sig, subject.digest, 'sig2');
    const list = await referrers(repo, subject.digest);
    assert.deepEqual(digests(list), [sig.digest]);
  });

  test('a referrer of a referrer is listed under its own subject only', async () => {
    const repo = repoName('ref-chain');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const sbom = image({ subject: subjectOf(subject), artifactType: SBOM });
    await pushReferrer(repo, sbom, subject.digest);
    const sigOfSbom = image({ subject: subjectOf(sbom), artifactType: SIG });
    await pushReferrer(repo, sigOfSbom, sbom.digest);
    assert.deepEqual(digests(await referrers(repo, subject.digest)), [sbom.digest]);
    assert.deepEqual(digests(await referrers(repo, sbom.digest)), [sigOfSbom.digest]);
  });
});

describe('artifactType filter', () => {
  test('?artifactType= filters and the response has OCI-Filters-Applied: artifactType', async () => {
    const repo = repoName('ref-filter');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const sbom = image({ subject: subjectOf(subject), artifactType: SBOM });
    const sig1 = image({ subject: subjectOf(subject), artifactType: SIG });
    const sig2 = image({ subject: subjectOf(subject), configMediaType: SIG }); // by fallback
    for (const r of [sbom, sig1, sig2]) await pushReferrer(repo, r, subject.digest);

    const res = await http(referrersUrl(repo, subject.digest, `?artifactType=${encodeURIComponent(SIG)}`));
    const list = expectIndex(res);
    assert.equal(header(res, 'oci-filters-applied'), 'artifactType');
    assert.deepEqual(digests(list), [sig1.digest, sig2.digest].sort());
    for (const d of list) assert.equal(d.artifactType, SIG);

    const all = await http(referrersUrl(repo, subject.digest));
    assert.equal(expectIndex(all).length, 3);
    assert.equal(all.headers.get('oci-filters-applied'), null, 'no filter header without a filter');
  });

  test('a filter value containing "+" (percent-encoded) matches exactly', async () => {
    const repo = repoName('ref-filter-plus');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const plus = image({ subject: subjectOf(subject), artifactType: 'application/vnd.example.attestation+json' });
    await pushReferrer(repo, plus, subject.digest);
    await pushReferrer(repo, image({ subject: subjectOf(subject), artifactType: SBOM }), subject.digest);
    const res = await http(referrersUrl(repo, subject.digest, `?artifactType=${encodeURIComponent('application/vnd.example.attestation+json')}`));
    assert.deepEqual(digests(expectIndex(res)), [plus.digest]);
    assert.equal(header(res, 'oci-filters-applied'), 'artifactType');
  });

  test('a filter that matches nothing → empty list, still with OCI-Filters-Applied', async () => {
    const repo = repoName('ref-filter-none');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    await pushReferrer(repo, image({ subject: subjectOf(subject), artifactType: SBOM }), subject.digest);
    const res = await http(referrersUrl(repo, subject.digest, `?artifactType=${encodeURIComponent('application/vnd.example.none')}`));
    assert.deepEqual(expectIndex(res), []);
    assert.equal(header(res, 'oci-filters-applied'), 'artifactType');
  });

  test('a filter that is no media type (a NUL byte, spaces) matches nothing → empty list, never a 500', async () => {
    const repo = repoName('ref-filter-odd');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    await pushReferrer(repo, image({ subject: subjectOf(subject), artifactType: SBOM }), subject.digest);
    for (const odd of ['%00', `${encodeURIComponent(SBOM)}%00`, 'a%20b']) {
      const res = await http(referrersUrl(repo, subject.digest, `?artifactType=${odd}`));
      assert.deepEqual(expectIndex(res), [], odd);
    }
  });
});

describe('referrers lifecycle', () => {
  test('a referrer pushed before its subject is listed before and after the subject is pushed', async () => {
    const repo = repoName('ref-early');
    const subject = image();
    const sig = image({ subject: subjectOf(subject), artifactType: SIG });
    await pushReferrer(repo, sig, subject.digest);
    assert.deepEqual(digests(await referrers(repo, subject.digest)), [sig.digest]);
    await pushImageOk(base, repo, subject, 'v1');
    const list = await referrers(repo, subject.digest);
    assert.deepEqual(digests(list), [sig.digest]);
    assert.equal(find(list, sig.digest).artifactType, SIG);
  });

  test('deleting a referrer removes it from the list', async () => {
    const repo = repoName('ref-delete');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const keep = image({ subject: subjectOf(subject), artifactType: SBOM });
    const drop = image({ subject: subjectOf(subject), artifactType: SIG });
    await pushReferrer(repo, keep, subject.digest);
    await pushReferrer(repo, drop, subject.digest);
    expectStatus(await http(`${base}/v2/${repo}/manifests/${drop.digest}`, { method: 'DELETE' }), 202);
    assert.deepEqual(digests(await referrers(repo, subject.digest)), [keep.digest]);
  });

  test('deleting only a referrer’s tag keeps it listed (the manifest still exists)', async () => {
    const repo = repoName('ref-delete-tag');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const sig = image({ subject: subjectOf(subject), artifactType: SIG });
    await pushReferrer(repo, sig, subject.digest, 'sig');
    expectStatus(await http(`${base}/v2/${repo}/manifests/sig`, { method: 'DELETE' }), 202);
    assert.deepEqual(digests(await referrers(repo, subject.digest)), [sig.digest]);
  });

  test('referrers are scoped to their repository', async () => {
    const a = repoName('ref-scope-a');
    const b = repoName('ref-scope-b');
    const subject = image();
    await pushImageOk(base, a, subject, 'v1');
    await pushImageOk(base, b, subject, 'v1');
    const sig = image({ subject: subjectOf(subject), artifactType: SIG });
    await pushReferrer(a, sig, subject.digest);
    assert.deepEqual(digests(await referrers(a, subject.digest)), [sig.digest]);
    assert.deepEqual(await referrers(b, subject.digest), []);
  });

  test('multi-segment repository names work', async () => {
    const repo = `${repoName('ref-org')}/team/app`;
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const sig = image({ subject: subjectOf(subject), artifactType: SIG });
    await pushReferrer(repo, sig, subject.digest);
    assert.deepEqual(digests(await referrers(repo, subject.digest)), [sig.digest]);
  });
});

describe('referrers errors', () => {
  for (const bad of ['sha256:abc', 'notadigest', `sha256:${'Z'.repeat(64)}`]) {
    test(`an invalid digest (${bad.slice(0, 16)}) → 400 DIGEST_INVALID`, async () => {
      const repo = repoName('ref-bad');
      await pushImageOk(base, repo, image(), 'v1');
      expectError(await http(referrersUrl(repo, bad)), 400, 'DIGEST_INVALID');
    });
  }

  test('an unknown repository → an empty list or 404 (never a 5xx)', async () => {
    const res = await http(referrersUrl(repoName('ref-norepo'), sha256('x')));
    if (res.status === 404) expectError(res, 404, 'NAME_UNKNOWN');
    else assert.deepEqual(expectIndex(res), []);
  });
});

describe('referrers paging', () => {
  const LIMIT = 4 * 1024 * 1024;

  /** Follows `Link: rel="next"` from the first page; each page is an index within the manifest size limit. */
  async function allPages(first: string): Promise<{ pages: Descriptor[][]; links: URL[] }> {
    const pages: Descriptor[][] = [];
    const links: URL[] = [];
    let url: string | null = first;
    while (url !== null && pages.length < 20) {
      const res = await http(url);
      assert.ok(res.body.length <= LIMIT, `a referrers page is ${res.body.length} bytes, over the manifest limit`);
      pages.push(expectIndex(res));
      const next = nextLink(res, base);
      if (next) links.push(next);
      url = next?.toString() ?? null;
    }
    return { pages, links };
  }

  test('a list larger than a manifest is paged with Link; every referrer appears once, in digest order', async () => {
    const repo = repoName('ref-pages');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    const big = (artifactType: string) => image({ subject: subjectOf(subject), artifactType, annotations: { pad: 'x'.repeat(1_200_000) } });
    const referrersPushed = [big(SIG), big(SIG), big(SIG), big(SIG), image({ subject: subjectOf(subject), artifactType: SBOM }), image({ subject: subjectOf(subject), artifactType: SBOM })];
    for (const r of referrersPushed) await pushReferrer(repo, r, subject.digest);

    const all = await allPages(referrersUrl(repo, subject.digest));
    assert.ok(all.pages.length >= 2, `expected several pages, got ${all.pages.length}`);
    const listed = all.pages.flat().map((d) => d.digest);
    assert.deepEqual(listed, digests(referrersPushed.map((r) => ({ mediaType: r.mediaType, digest: r.digest, size: r.manifest.length }))));

    const filtered = await allPages(referrersUrl(repo, subject.digest, `?artifactType=${encodeURIComponent(SIG)}`));
    assert.ok(filtered.pages.length >= 2, `expected several filtered pages, got ${filtered.pages.length}`);
    for (const link of filtered.links) assert.equal(link.searchParams.get('artifactType'), SIG, `the Link keeps the filter: ${link.toString()}`);
    const sigs = filtered.pages.flat();
    assert.ok(sigs.every((d) => d.artifactType === SIG));
    assert.equal(sigs.length, 4);
  });

  test('a list that fits in one manifest has no Link', async () => {
    const repo = repoName('ref-onepage');
    const subject = image();
    await pushImageOk(base, repo, subject, 'v1');
    await pushReferrer(repo, image({ subject: subjectOf(subject), artifactType: SBOM }), subject.digest);
    const res = await http(referrersUrl(repo, subject.digest));
    assert.equal(expectIndex(res).length, 1);
    assert.equal(res.headers.get('link'), null);
  });
});
