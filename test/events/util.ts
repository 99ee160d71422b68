/** Shared steps of the event tests: a configuration file, pushes, and order checks. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { image, pushImage, type Image } from '../helpers/oci.js';
import type { ReceivedEvent } from './receiver.js';

/** Writes `events:` settings (and anything else given) to a configuration file in `dir`. */
export async function configFile(dir: string, config: Record<string, unknown>): Promise<string> {
  const path = join(dir, `portfolio-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(path, stringify(config));
  return path;
}

/** A webhook sink that retries fast, for tests. */
export function fastSink(name: string, url: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, type: 'webhook', url, timeout: '2s', backoff: { initial: '100ms', max: '500ms' }, max_attempts: 1000, ...extra };
}

/** Pushes a new image under `repo:tag`; returns it once the registry answered 201. */
export async function pushTagged(url: string, repo: string, tag: string): Promise<Image> {
  const img = image();
  const res = await pushImage(url, repo, img, tag);
  assert.equal(res.status, 201, `push ${repo}:${tag}: ${res.status} ${await res.text()}`);
  return img;
}

/**
 * Checks that, for each repository, the push events of `expected` (tag → digest, in the order
 * the pushes committed) arrive in that order among the first arrivals of `events`.
 */
export function assertCommitOrder(events: ReceivedEvent[], expected: Map<string, { tag: string; digest: string }[]>): void {
  for (const [repo, pushes] of expected) {
    const arrived = events.filter((e) => e.action === 'push' && e.target.repository === repo).map((e) => `${e.target.tag}@${e.target.digest}`);
    const wanted = pushes.map((p) => `${p.tag}@${p.digest}`);
    const positions = wanted.map((w) => arrived.indexOf(w));
    assert.ok(positions.every((p) => p >= 0), `every push of ${repo} arrived`);
    for (let i = 1; i < positions.length; i++) assert.ok(positions[i]! > positions[i - 1]!, `${repo}: ${wanted[i]} arrived after ${wanted[i - 1]}`);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
