/**
 * `/metrics`: Prometheus text on the main listener (admin rights when auth is on) or on
 * `--metrics-addr` alone; request, byte, storage and process metrics after a push, with label
 * values from fixed sets only.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicAuth, writeHtpasswd } from '../auth/util.js';
import { image, pushImage } from '../helpers/oci.js';
import { freePort } from '../helpers/net.js';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import type { Usage } from '../../src/core/maintenance.js';
import { STATS_SLICE_ROWS } from '../../src/backends/sql/observe.js';
import { parseSamples, valueOf } from './scrape.js';

const ROUTES = new Set(['base', 'blobs', 'manifests', 'uploads', 'tags', 'referrers', 'catalog', 'admin', 'token', 'health', 'metrics', 'other']);

describe('/metrics on the main listener, auth off', { timeout: 60_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry?.stop());

  it('counts a push by route template, method and status, with bytes, storage gauges and process metrics', async () => {
    const img = image();
    assert.equal((await pushImage(registry.url, 'metrics/app', img, 'v1')).status, 201);
    const pulled = await fetch(`${registry.url}/v2/metrics/app/manifests/v1`, { headers: { accept: img.mediaType } });
    assert.equal(pulled.status, 200);
    await pulled.arrayBuffer();
    assert.equal((await fetch(`${registry.url}/v2/metrics/app/manifests/nope`, { headers: { accept: img.mediaType } })).status, 404);

    const res = await fetch(`${registry.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const samples = parseSamples(text);

    assert.equal(valueOf(samples, 'portfolio_http_requests_total', { route: 'manifests', method: 'PUT', status: '201' }), 1);
    assert.equal(valueOf(samples, 'portfolio_http_requests_total', { route: 'manifests', method: 'GET', status: '200' }), 1);
    assert.equal(valueOf(samples, 'portfolio_http_requests_total', { route: 'manifests', method: 'GET', status: '404' }), 1);
    // Monolithic blob pushes are POSTs to the uploads route, one per blob.
    assert.equal(valueOf(samples, 'portfolio_http_requests_total', { route: 'uploads', method: 'POST', status: '201' }), 1 + img.layers.length);
    assert.equal(valueOf(samples, 'portfolio_http_request_duration_seconds_count', { route: 'manifests', method: 'GET' }), 2);

    const pushed = img.manifest.length + img.config.size + img.layers.reduce((n, l) => n + l.size, 0);
    assert.ok(valueOf(samples, 'portfolio_http_received_bytes_total') >= pushed, 'bytes received cover every body pushed');
    assert.ok(valueOf(samples, 'portfolio_http_sent_bytes_total') >= img.manifest.length, 'bytes sent cover the manifest pulled');
    assert.equal(valueOf(samples, 'portfolio_blobs_stored'), 1 + img.layers.length);
    assert.equal(valueOf(samples, 'portfolio_blob_bytes_stored'), img.config.size + img.layers.reduce((n, l) => n + l.size, 0));
    assert.equal(valueOf(samples, 'portfolio_upload_sessions'), 0);
    assert.equal(valueOf(samples, 'portfolio_database_transaction_retries_total'), 0);
    assert.equal(valueOf(samples, 'portfolio_gc_passes_total', { result: 'ok' }), 0);
    assert.ok(valueOf(samples, 'process_resident_memory_bytes') > 0, 'Node process metrics');
    assert.ok(samples.some((s) => s.name.startsWith('nodejs_eventloop_lag')), 'event loop metrics');

    // Bounded label sets: no path, name or digest ever becomes a label value.
    for (const s of samples.filter((s) => s.name.startsWith('portfolio_http_request'))) {
      assert.ok(ROUTES.has(s.labels.route!), `route label ${s.labels.route}`);
    }
    assert.doesNotMatch(text, /sha256|metrics\/app/);
  });

  it('counts every path by its template and methods from a fixed set', async () => {
    await fetch(`${registry.url}/v2/x/tags/list`);
    await fetch(`${registry.url}/random/${'a'.repeat(40)}`);
    await fetch(`${registry.url}/v2/`, { method: 'BREW' as string }).catch(() => undefined);
    const samples = parseSamples(await (await fetch(`${registry.url}/metrics`)).text());
    assert.equal(valueOf(samples, 'portfolio_http_requests_total', { route: 'tags', method: 'GET', status: '404' }), 1);
    assert.equal(valueOf(samples, 'portfolio_http_requests_total', { route: 'other', method: 'GET', status: '404' }), 1);
    for (const s of samples.filter((s) => s.name === 'portfolio_http_requests_total')) {
      assert.ok(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'other'].includes(s.labels.method!), s.labels.method);
    }
  });
});

describe('storage gauges of a store larger than one slice', { timeout: 120_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry?.stop());

  it('sum every slice of the blob table, as du counts it', async () => {
    const blobs = 2 * STATS_SLICE_ROWS + 500;
    const generated = await runCli(['dev', 'generate', ...registry.engineArgs, '--repositories', '5', '--blobs', String(blobs), '--tags', '5']);
    assert.equal(generated.code, 0, generated.stderr);
    const du = await runCli(['du', '--json', ...registry.engineArgs]);
    assert.equal(du.code, 0, du.stderr);
    const usage = JSON.parse(du.stdout) as Usage;
    assert.equal(usage.blobs, blobs + 1, 'the layers and the shared config');
    const samples = parseSamples(await (await fetch(`${registry.url}/metrics`)).text());
    assert.equal(valueOf(samples, 'portfolio_blobs_stored'), usage.blobs);
    assert.equal(valueOf(samples, 'portfolio_blob_bytes_stored'), usage.storedBytes);
  });
});

describe('/metrics with auth on', { timeout: 60_000 }, () => {
  let registry: RunningRegistry;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-metrics-auth-'));
    await writeHtpasswd(join(dir, 'htpasswd'), { admin: 'admin-pw' });
    registry = await startRegistry({ args: ['--htpasswd', join(dir, 'htpasswd')] });
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('needs admin rights on the main listener; probes need none', async () => {
    assert.equal((await fetch(`${registry.url}/metrics`)).status, 401);
    const res = await fetch(`${registry.url}/metrics`, { headers: { authorization: basicAuth('admin', 'admin-pw') } });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /portfolio_http_requests_total/);
    assert.equal((await fetch(`${registry.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${registry.url}/readyz`)).status, 200);
  });
});

describe('--metrics-addr', { timeout: 60_000 }, () => {
  let registry: RunningRegistry;
  let metricsUrl: string;
  before(async () => {
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    registry = await startRegistry({ env: { PORTFOLIO_METRICS_ADDR: `127.0.0.1:${port}` } });
  });
  after(() => registry?.stop());

  it('serves the metrics on their own address (from the environment variable), not on the main listener', async () => {
    assert.equal((await fetch(`${registry.url}/v2/`)).status, 200);
    assert.equal((await fetch(`${registry.url}/metrics`)).status, 404);
    const res = await fetch(metricsUrl);
    assert.equal(res.status, 200);
    const samples = parseSamples(await res.text());
    assert.equal(valueOf(samples, 'portfolio_http_requests_total', { route: 'base', method: 'GET', status: '200' }), 1);
    assert.equal(valueOf(samples, 'portfolio_http_requests_total', { route: 'metrics', method: 'GET', status: '404' }), 1, 'the main listener answered /metrics with 404');
    assert.equal((await fetch(metricsUrl.replace('/metrics', '/v2/'))).status, 404, 'the metrics address serves nothing else');
  });
});

describe('garbage collection metrics', { timeout: 60_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry({ args: ['--gc-interval', '1s', '--gc-grace', '0s'] });
  });
  after(() => registry?.stop());

  it('count passes, items and bytes removed, duration and the time of the last pass', async () => {
    const img = image();
    assert.equal((await pushImage(registry.url, 'gc/app', img)).status, 201);
    assert.equal((await fetch(`${registry.url}/v2/gc/app/manifests/${img.digest}`, { method: 'DELETE' })).status, 202);
    const before = Date.now() / 1000;
    const blobBytes = img.config.size + img.layers.reduce((n, l) => n + l.size, 0);
    // The next background passes reclaim the image's blobs (nothing is within the 0 s grace).
    const deadline = Date.now() + 20_000;
    for (;;) {
      const samples = parseSamples(await (await fetch(`${registry.url}/metrics`)).text());
      const blobs = valueOf(samples, 'portfolio_gc_removed_total', { kind: 'blobs' });
      if (blobs >= 1 + img.layers.length) {
        assert.equal(blobs, 1 + img.layers.length);
        assert.equal(valueOf(samples, 'portfolio_gc_removed_total', { kind: 'links' }), 1 + img.layers.length);
        assert.equal(valueOf(samples, 'portfolio_gc_removed_bytes_total'), blobBytes);
        const passes = valueOf(samples, 'portfolio_gc_passes_total', { result: 'ok' });
        assert.ok(passes >= 1);
        assert.equal(valueOf(samples, 'portfolio_gc_duration_seconds_count'), passes);
        assert.ok(valueOf(samples, 'portfolio_gc_last_success_timestamp_seconds') >= before - 1);
        assert.equal(valueOf(samples, 'portfolio_gc_passes_total', { result: 'failed' }), 0);
        return;
      }
      assert.ok(Date.now() < deadline, `collection did not remove the blobs: ${blobs}\n${registry.output()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  });
});
