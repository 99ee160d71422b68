/**
 * Collection racing tag writes on two replicas that both collect continuously. Each client
 * owns one manifest and one tag and flips it: PUT by tag (the manifest becomes tagged), check
 * the tag resolves, DELETE the tag (it becomes an untagged collection candidate again). A tag
 * acknowledged with 201 that nobody deleted must resolve; collection deciding "untagged" and
 * then deleting the manifest while the tag commits must not take the tag with it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { image, pushBlob, type Image } from '../helpers/oci.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

const GC_ARGS = ['--gc-interval', '100ms', '--gc-grace', '0s', '--gc-delete-untagged', '0s'];
const CLIENTS = 16;
/** Tag flips per client: each is a window in which collection may race the tag's commit. */
const FLIPS = 12;

let a: RunningRegistry;
let b: RunningRegistry;
before(async () => {
  a = await startRegistry({ args: GC_ARGS });
  b = await startRegistry({ args: GC_ARGS, engineArgs: a.engineArgs, dataDir: a.dataDir });
});
after(async () => {
  await b?.stop();
  await a?.stop();
});

async function putManifest(base: string, repo: string, img: Image, reference: string): Promise<number> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': img.mediaType }, body: img.manifest });
  await res.arrayBuffer();
  return res.status;
}

test('a tag acknowledged with 201 survives collection of untagged manifests on two replicas', async () => {
  const lost: string[] = [];
  let acknowledged = 0;
  const client = async (c: number) => {
    const repo = `race/c${c}`;
    const img = image();
    const tag = `t${c}`;
    const base = (i: number) => (i % 2 === 0 ? a.url : b.url);
    for (let i = 0, flips = 0; flips < FLIPS; i++) {
      const status = await putManifest(base(i), repo, img, tag);
      if (status === 400) {
        // Collection took the manifest and then its blobs' links: push them again.
        for (const bl of [img.config, ...img.layers]) await pushBlob(base(i), repo, bl);
        continue;
      }
      assert.ok(status === 201, `PUT ${repo}:${tag} answered ${status}`);
      acknowledged++;
      flips++;
      const get = await fetch(`${base(i + 1)}/v2/${repo}/manifests/${tag}`, { headers: { accept: img.mediaType } });
      await get.arrayBuffer();
      if (get.status !== 200 || get.headers.get('docker-content-digest') !== img.digest) lost.push(`${repo}:${tag} (${get.status})`);
      const del = await fetch(`${base(i)}/v2/${repo}/manifests/${tag}`, { method: 'DELETE' });
      await del.arrayBuffer();
      // 404: the tag vanished although nobody deleted it since its 201.
      if (del.status === 404) lost.push(`${repo}:${tag} (gone before its DELETE)`);
      else assert.equal(del.status, 202, `DELETE ${repo}:${tag} after its 201`);
    }
    // The final state: tagged, and it must stay so while collection keeps running.
    for (;;) {
      const status = await putManifest(a.url, repo, img, tag);
      if (status === 201) break;
      for (const bl of [img.config, ...img.layers]) await pushBlob(a.url, repo, bl);
    }
    return { repo, tag, digest: img.digest };
  };
  const finals = await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
  await new Promise((r) => setTimeout(r, 500));
  for (const f of finals) {
    const res = await fetch(`${b.url}/v2/${f.repo}/manifests/${f.tag}`, { method: 'HEAD' });
    if (res.status !== 200 || res.headers.get('docker-content-digest') !== f.digest) lost.push(`${f.repo}:${f.tag} at the end (${res.status})`);
  }
  assert.deepEqual(lost, [], `${lost.length} of ${acknowledged} acknowledged tags were lost`);
});
