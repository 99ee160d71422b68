/** Small parts of the pull-through cache: repository patterns, challenge parsing, one flight per key. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compilePatterns } from '../../src/proxy/patterns.js';
import { SingleFlight } from '../../src/proxy/single-flight.js';
import { parseChallenge } from '../../src/proxy/upstream.js';

test('repository patterns: * is one segment, ** any number, absent lets everything through', () => {
  const allowed = compilePatterns(['library/*', 'team/**', 'x.y/a-*']);
  assert.ok(allowed('library/alpine'));
  assert.ok(!allowed('library/alpine/extra'));
  assert.ok(allowed('team/app') && allowed('team/a/b/c'));
  assert.ok(!allowed('teamx/app'));
  assert.ok(allowed('x.y/a-b'));
  assert.ok(!allowed('xzy/a-b'), 'a dot is literal');
  assert.ok(compilePatterns(undefined)('anything/at/all'));
  assert.ok(!compilePatterns([])('anything'));
});

test('Bearer challenges are parsed with quoted and bare values', () => {
  assert.deepEqual(parseChallenge(' realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'), {
    realm: 'https://auth.example/token',
    service: 'registry.example',
    scope: 'repository:a/b:pull',
  });
  assert.deepEqual(parseChallenge(' realm=https://x/t, service=s'), { realm: 'https://x/t', service: 's' });
});

test('concurrent runs of one key share one flight; the next run starts anew', async () => {
  const flights = new SingleFlight<number>();
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const work = async () => {
    runs++;
    await gate;
    return runs;
  };
  const results = Promise.all(Array.from({ length: 5 }, () => flights.run('k', work)));
  release();
  assert.deepEqual(await results, [1, 1, 1, 1, 1]);
  assert.equal(await flights.run('k', work), 2);
});
