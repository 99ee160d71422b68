/** Conformance: GET /v2/<name>/tags/list — order, pagination (n, last, Link) and errors. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { image } from '../helpers/oci.js';
import { http, pushImageOk, putManifest, expectStatus, expectError, expectReason, header, json, nextLink, byteSort, repoName, describeRes, type Res, useRegistry } from './util.js';

let base: string;
useRegistry({}, (url) => (base = url));

interface TagList {
  name: string;
  tags: string[];
}

/** Pushes one image and tags it with every name in `tags`, in the given order. */
async function tagged(repo: string, tags: string[]): Promise<void> {
  const img = image();
  await pushImageOk(base, repo, img);
  for (const tag of tags) expectStatus(await putManifest(base, repo, tag, img.manifest, img.mediaType), 201);
}

const listUrl = (repo: string, query = '') => `${base}/v2/${repo}/tags/list${query}`;

function expectList(res: Res, repo: string, tags: string[]): void {
  expectStatus(res, 200);
  assert.match(header(res, 'content-type'), /^application\/json/);
  const body = json<TagList>(res);
  assert.equal(body.name, repo);
  assert.ok(Array.isArray(body.tags), `tags must be an array:\n${describeRes(res)}`);
  assert.deepEqual(body.tags, tags);
}

const MIXED = ['B', 'a', 'A', 'b', '1.0', '_x', 'a_b', 'a.b', 'a-b', 'Z9', '10', '9'];

describe('tag listing', () => {
  test('lists every tag in byte order', async () => {
    const repo = repoName('tags-order');
    await tagged(repo, MIXED);
    const res = await http(listUrl(repo));
    expectList(res, repo, byteSort(MIXED));
    assert.equal(res.headers.get('link'), null, 'no Link when everything is returned');
  });

  test('n limits the page and a Link to the next page is sent', async () => {
    const repo = repoName('tags-n');
    await tagged(repo, MIXED);
    const sorted = byteSort(MIXED);
    const res = await http(listUrl(repo, '?n=3'));
    expectList(res, repo, sorted.slice(0, 3));
    const link = nextLink(res, base);
    assert.ok(link, `a Link header is required when more tags remain:\n${describeRes(res)}`);
    assert.equal(link.pathname, `/v2/${repo}/tags/list`);
    assert.equal(link.searchParams.get('n'), '3');
    assert.equal(link.searchParams.get('last'), sorted[2]);
  });

  test('following the Link pages through all tags; the last page has no Link', async () => {
    const repo = repoName('tags-page');
    await tagged(repo, MIXED);
    const sorted = byteSort(MIXED);
    const seen: string[] = [];
    let url: URL | null = new URL(listUrl(repo, '?n=5'));
    let pages = 0;
    while (url) {
      const res = await http(url);
      expectStatus(res, 200);
      const page = json<TagList>(res).tags;
      assert.ok(page.length <= 5);
      seen.push(...page);
      url = nextLink(res, base);
      if (url) assert.equal(page.length, 5, 'a page followed by a Link must be full');
      pages++;
      assert.ok(pages <= 10, 'pagination does not terminate');
    }
    assert.deepEqual(seen, sorted);
    assert.equal(pages, 3);
  });

  test('n equal to the number of tags returns all of them and no Link', async () => {
    const repo = repoName('tags-n-exact');
    await tagged(repo, MIXED);
    const res = await http(listUrl(repo, `?n=${MIXED.length}`));
    expectList(res, repo, byteSort(MIXED));
    assert.equal(res.headers.get('link'), null);
  });

  test('n larger than the number of tags returns all of them and no Link', async () => {
    const repo = repoName('tags-n-big');
    await tagged(repo, ['x', 'y']);
    const res = await http(listUrl(repo, '?n=1000'));
    expectList(res, repo, ['x', 'y']);
    assert.equal(res.headers.get('link'), null);
  });

  test('a huge n (beyond 32 bits) is a valid integer → 200 with every tag', async () => {
    const repo = repoName('tags-n-huge');
    await tagged(repo, ['x', 'y']);
    const res = await http(listUrl(repo, '?n=99999999999'));
    expectList(res, repo, ['x', 'y']);
    assert.equal(res.headers.get('link'), null);
  });

  test('n=0 → an empty list and no Link', async () => {
    const repo = repoName('tags-n0');
    await tagged(repo, ['x', 'y']);
    const res = await http(listUrl(repo, '?n=0'));
    expectList(res, repo, []);
    assert.equal(res.headers.get('link'), null);
  });

  test('last alone (without n) starts after the given tag', async () => {
    const repo = repoName('tags-last');
    await tagged(repo, MIXED);
    const sorted = byteSort(MIXED);
    const res = await http(listUrl(repo, '?last=Z9'));
    expectList(res, repo, sorted.slice(sorted.indexOf('Z9') + 1));
  });

  test('n with last returns up to n tags after last', async () => {
    const repo = repoName('tags-n-last');
    await tagged(repo, MIXED);
    const sorted = byteSort(MIXED);
    const res = await http(listUrl(repo, '?n=2&last=A'));
    const from = sorted.indexOf('A') + 1;
    expectList(res, repo, sorted.slice(from, from + 2));
    assert.ok(nextLink(res, base));
  });

  test('last need not be an existing tag: the list starts after it in byte order', async () => {
    const repo = repoName('tags-last-absent');
    await tagged(repo, MIXED);
    const res = await http(listUrl(repo, '?last=a0'));
    expectList(res, repo, byteSort(MIXED).filter((t) => Buffer.compare(Buffer.from(t), Buffer.from('a0')) > 0));
  });

  test('a last holding a NUL byte starts after its part before the NUL (no tag holds one), never a 500', async () => {
    const repo = repoName('tags-last-nul');
    await tagged(repo, MIXED);
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await http(listUrl(repo, '?last=a%00zzz'), { method });
      if (method === 'HEAD') expectStatus(res, 200);
      else expectList(res, repo, byteSort(MIXED).filter((t) => Buffer.compare(Buffer.from(t), Buffer.from('a')) > 0));
    }
    const catalog = await http(`${base}/v2/_catalog?last=${repo}%00`);
    expectStatus(catalog, 200);
    assert.ok(!json<{ repositories: string[] }>(catalog).repositories.includes(repo), 'the catalog starts after the name before the NUL');
  });

  test('last equal to the final tag → an empty list and no Link', async () => {
    const repo = repoName('tags-last-end');
    await tagged(repo, MIXED);
    const sorted = byteSort(MIXED);
    const res = await http(listUrl(repo, `?n=5&last=${sorted[sorted.length - 1]!}`));
    expectList(res, repo, []);
    assert.equal(res.headers.get('link'), null);
  });

  test('a repository whose manifests are untagged lists no tags', async () => {
    const repo = repoName('tags-none');
    await pushImageOk(base, repo, image());
    expectList(await http(listUrl(repo)), repo, []);
  });

  test('deleted tags disappear from the list', async () => {
    const repo = repoName('tags-deleted');
    await tagged(repo, ['a', 'b', 'c']);
    expectStatus(await http(`${base}/v2/${repo}/manifests/b`, { method: 'DELETE' }), 202);
    expectList(await http(listUrl(repo)), repo, ['a', 'c']);
  });

  test('a multi-segment repository lists its own tags only', async () => {
    const parent = repoName('tags-org');
    const repo = `${parent}/team/app`;
    await tagged(parent, ['parent-only']);
    await tagged(repo, ['v2', 'v1']);
    expectList(await http(listUrl(repo)), repo, ['v1', 'v2']);
    expectList(await http(listUrl(parent)), parent, ['parent-only']);
  });
});

describe('tag listing errors', () => {
  test('an unknown repository → 404 NAME_UNKNOWN', async () => {
    expectError(await http(listUrl(repoName('tags-unknown'))), 404, 'NAME_UNKNOWN');
  });

  for (const n of ['-1', 'abc', '1.5', '0x10']) {
    test(`n=${n} → 400 UNSUPPORTED (reason PAGINATION_NUMBER_INVALID)`, async () => {
      const repo = repoName('tags-badn');
      await tagged(repo, ['x']);
      expectReason(await http(listUrl(repo, `?n=${encodeURIComponent(n)}`)), 400, 'UNSUPPORTED', 'PAGINATION_NUMBER_INVALID');
    });
  }
});
