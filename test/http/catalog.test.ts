/** Conformance: GET /v2/_catalog — byte order and pagination like tags. */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { image } from '../helpers/oci.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { basicAuth, pushImageWith, writeHtpasswd } from '../auth/util.js';
import { http, pushImageOk, expectStatus, expectError, expectReason, header, json, nextLink, byteSort, describeRes, type Res, useRegistry } from './util.js';

let base: string;
useRegistry({}, (url) => (base = url));

// Tests in this file run in order and share one registry: `created` is every repository the
// file has pushed so far, so the whole catalog is known exactly.
const created: string[] = [];
const FIRST = ['b', 'a', 'a-b', 'a.b', 'a/b', 'a_b', 'a0', 'ab', '0', 'a/b/c', 'a__b', 'org/team/app', 'org/team'];

async function create(names: string[]): Promise<void> {
  for (const name of names) {
    await pushImageOk(base, name, image(), 'latest');
    created.push(name);
  }
}

const catalogUrl = (query = '') => `${base}/v2/_catalog${query}`;

function repositories(res: Res): string[] {
  expectStatus(res, 200);
  assert.match(header(res, 'content-type'), /^application\/json/);
  const body = json<{ repositories: string[] }>(res);
  assert.ok(Array.isArray(body.repositories), `repositories must be an array:\n${describeRes(res)}`);
  return body.repositories;
}

describe('catalog', () => {
  before(async () => {
    await create(FIRST);
  });

  test('lists every repository in byte order, multi-segment names included', async () => {
    const res = await http(catalogUrl());
    assert.deepEqual(repositories(res), byteSort(created));
    assert.equal(res.headers.get('link'), null);
  });

  test('n limits the page and a Link to the next page is sent', async () => {
    const sorted = byteSort(created);
    const res = await http(catalogUrl('?n=4'));
    assert.deepEqual(repositories(res), sorted.slice(0, 4));
    const link = nextLink(res, base);
    assert.ok(link, `a Link header is required when more repositories remain:\n${describeRes(res)}`);
    assert.equal(link.pathname, '/v2/_catalog');
    assert.equal(link.searchParams.get('n'), '4');
    assert.equal(link.searchParams.get('last'), sorted[3]);
  });

  test('following the Link pages through the whole catalog; the last page has no Link', async () => {
    const sorted = byteSort(created);
    const seen: string[] = [];
    let url: URL | null = new URL(catalogUrl('?n=3'));
    let pages = 0;
    while (url) {
      const res = await http(url);
      const page = repositories(res);
      assert.ok(page.length <= 3);
      seen.push(...page);
      url = nextLink(res, base);
      if (url) assert.equal(page.length, 3, 'a page followed by a Link must be full');
      pages++;
      assert.ok(pages <= 20, 'pagination does not terminate');
    }
    assert.deepEqual(seen, sorted);
    assert.equal(pages, Math.ceil(sorted.length / 3));
  });

  test('last alone (without n) starts after the given repository', async () => {
    const sorted = byteSort(created);
    const res = await http(catalogUrl('?last=a.b'));
    assert.deepEqual(repositories(res), sorted.slice(sorted.indexOf('a.b') + 1));
  });

  test('last need not be an existing repository', async () => {
    const res = await http(catalogUrl('?last=a/a'));
    assert.deepEqual(
      repositories(res),
      byteSort(created).filter((r) => Buffer.compare(Buffer.from(r), Buffer.from('a/a')) > 0),
    );
  });

  test('n with last returns up to n repositories after last', async () => {
    const sorted = byteSort(created);
    const res = await http(catalogUrl('?n=2&last=a/b'));
    const from = sorted.indexOf('a/b') + 1;
    assert.deepEqual(repositories(res), sorted.slice(from, from + 2));
    assert.ok(nextLink(res, base));
  });

  test('n=0 → an empty list and no Link', async () => {
    const res = await http(catalogUrl('?n=0'));
    assert.deepEqual(repositories(res), []);
    assert.equal(res.headers.get('link'), null);
  });

  test('n equal to the number of repositories returns all and no Link', async () => {
    const res = await http(catalogUrl(`?n=${created.length}`));
    assert.deepEqual(repositories(res), byteSort(created));
    assert.equal(res.headers.get('link'), null);
  });

  test('a huge n (beyond 32 bits) → 200 with every repository', async () => {
    assert.deepEqual(repositories(await http(catalogUrl('?n=99999999999'))), byteSort(created));
  });

  test('a new repository appears in its byte-order place', async () => {
    await create(['a-a', 'zz/top']);
    assert.deepEqual(repositories(await http(catalogUrl())), byteSort(created));
  });

  for (const n of ['-1', 'abc', '2.5']) {
    test(`n=${n} → 400 UNSUPPORTED (reason PAGINATION_NUMBER_INVALID)`, async () => {
      expectReason(await http(catalogUrl(`?n=${n}`)), 400, 'UNSUPPORTED', 'PAGINATION_NUMBER_INVALID');
    });
  }
});

describe('catalog filtered by access (basic auth with a policy)', { timeout: 60_000 }, () => {
  const POLICY = `
admins:
  users: [root]
rules:
  - repository: "team/**"
    users:
      dana: [pull]
  - repository: "team/hidden"
    users:
      root: [pull]
  - repository: "solo"
    users:
      dana: [pull]
`;
  // dana sees few of many; names around her prefixes (teamx, team-a, sol) must stay out.
  const VISIBLE = ['solo', 'team', 'team/a', 'team/b', 'team/b/c'];
  const HIDDEN = ['a0', 'a1', 'b/x', 'sol', 'solo/x', 'team-a', 'team/hidden', 'teamx', 'teamx/y', 'zz/1', 'zz/2', 'zz/3'];
  let dir: string;
  let registry: RunningRegistry;
  const dana = { authorization: basicAuth('dana', 'dana-pw') };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-catalog-auth-'));
    await writeHtpasswd(join(dir, 'htpasswd'), { root: 'root-pw', dana: 'dana-pw' });
    await writeFile(join(dir, 'policy.yaml'), POLICY);
    registry = await startRegistry({ args: ['--htpasswd', join(dir, 'htpasswd'), '--access-policy', join(dir, 'policy.yaml')] });
    const root = { authorization: basicAuth('root', 'root-pw') };
    for (const name of [...VISIBLE, ...HIDDEN]) assert.equal((await pushImageWith(registry.url, name, image(), 'v1', root)).status, 201, name);
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('lists only what the caller may pull, and n, last and Link page through exactly that', async () => {
    const whole = await http(`${registry.url}/v2/_catalog`, { headers: dana });
    assert.deepEqual(repositories(whole), VISIBLE);
    assert.equal(whole.headers.get('link'), null);
    for (const n of [1, 2, 3, 5]) {
      const seen: string[] = [];
      let url: URL | null = new URL(`${registry.url}/v2/_catalog?n=${n}`);
      while (url) {
        const res = await http(url, { headers: dana });
        const page = repositories(res);
        seen.push(...page);
        url = nextLink(res, registry.url);
        if (url) {
          assert.equal(page.length, n, `n=${n}: a page followed by a Link is full`);
          assert.equal(url.searchParams.get('last'), page[n - 1]);
        }
        assert.ok(seen.length <= VISIBLE.length, `n=${n}: no page beyond the visible names`);
      }
      assert.deepEqual(seen, VISIBLE, `n=${n}`);
    }
    assert.deepEqual(repositories(await http(`${registry.url}/v2/_catalog?last=team`, { headers: dana })), ['team/a', 'team/b', 'team/b/c']);
    const middle = await http(`${registry.url}/v2/_catalog?n=2&last=solo`, { headers: dana });
    assert.deepEqual(repositories(middle), ['team', 'team/a']);
    assert.equal(nextLink(middle, registry.url)?.searchParams.get('last'), 'team/a');
    const end = await http(`${registry.url}/v2/_catalog?n=2&last=team/b`, { headers: dana });
    assert.deepEqual(repositories(end), ['team/b/c']);
    assert.equal(end.headers.get('link'), null, 'hidden names after the last visible one do not make a Link');
  });
});
