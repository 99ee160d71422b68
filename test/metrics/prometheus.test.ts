/**
 * A real Prometheus server (Debian's `prometheus` package) scrapes Portfolio every second from
 * loopback, with its own configuration and data directory; values are read back through its
 * query API after a push.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { image, pushImage } from '../helpers/oci.js';
import { freePort } from '../helpers/net.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

const installed = spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).status === 0;
// CI installs it (.ci/run): there, a missing binary is a failure, not a skip.
const unavailable = !installed && process.env.CI !== 'true' && 'prometheus is not installed (apt-get install prometheus)';

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('scraped by Prometheus', { timeout: 90_000, skip: unavailable }, () => {
  let registry: RunningRegistry;
  let prometheus: ChildProcess | undefined;
  let prometheusOutput = '';
  let dir: string;
  let api: string;

  before(async () => {
    assert.ok(installed, 'prometheus is not installed: .ci/run installs it');
    const metricsPort = await freePort();
    registry = await startRegistry({ args: ['--metrics-addr', `127.0.0.1:${metricsPort}`] });
    dir = await mkdtemp(join(tmpdir(), 'portfolio-prometheus-'));
    const config = join(dir, 'prometheus.yml');
    await writeFile(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        'scrape_configs:',
        '  - job_name: portfolio',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${metricsPort}']`,
        '',
      ].join('\n'),
    );
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    prometheus = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    prometheus.stdout!.on('data', (d: Buffer) => (prometheusOutput += d.toString()));
    prometheus.stderr!.on('data', (d: Buffer) => (prometheusOutput += d.toString()));
    await eventually('Prometheus to be ready', async () => ((await fetch(`${api}/-/ready`)).ok ? true : undefined)).catch((err: Error) => {
      throw new Error(`${err.message}\n${prometheusOutput}`);
    });
  });

  after(async () => {
    if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) {
      const exited = new Promise((r) => prometheus!.once('exit', r));
      process.kill(prometheus.pid!, 'SIGTERM');
      await exited;
    }
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The value of an instant query that returns one series, or undefined while it returns none. */
  async function query(expr: string): Promise<number | undefined> {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; data: { result: { value: [number, string] }[] } };
    assert.equal(body.status, 'success', JSON.stringify(body));
    assert.ok(body.data.result.length <= 1, `${expr}: ${JSON.stringify(body.data.result)}`);
    return body.data.result.length ? Number(body.data.result[0]!.value[1]) : undefined;
  }

  it('reads the counts of a push back through the query API', async () => {
    assert.equal(await eventually('the target to be up', async () => ((await query('up{job="portfolio"}')) === 1 ? 1 : undefined)), 1);
    const img = image();
    assert.equal((await pushImage(registry.url, 'prom/app', img, 'v1')).status, 201);
    const pushed = img.manifest.length + img.config.size + img.layers.reduce((n, l) => n + l.size, 0);

    const puts = 'portfolio_http_requests_total{job="portfolio",route="manifests",method="PUT",status="201"}';
    assert.equal(await eventually('the manifest PUT to be scraped', () => query(puts)), 1);
    const uploads = await query('portfolio_http_requests_total{job="portfolio",route="uploads",method="POST",status="201"}');
    assert.equal(uploads, 1 + img.layers.length);
    const received = await query('portfolio_http_received_bytes_total{job="portfolio"}');
    assert.ok(received !== undefined && received >= pushed, `bytes received ${received} < ${pushed}`);
    const latency = await query('sum(portfolio_http_request_duration_seconds_count{job="portfolio",route="manifests"})');
    assert.equal(latency, 1);
    assert.ok(((await query('process_resident_memory_bytes{job="portfolio"}')) ?? 0) > 0);
  });
});
