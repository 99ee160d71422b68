/**
 * What events cost a push: small-image pushes per second with no sink against the same with one
 * webhook sink (distribution's envelope; a receiver in this process answers 200), alternating
 * over rounds, each on a fresh server and store. Also reports how long after the last push the
 * webhook had every event.
 *
 *   npm run bench:events [-- --rounds N] [--images N] ["--engine-args=--database-url … --storage s3://…"]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds } from './cpu.js';
import { settingsFor, smallImages, smallPushes } from './figures.js';
import { RawClient } from './raw-client.js';
import { startPortfolio, syncDisks } from './servers.js';

/** CPU seconds of the server: the cost that load on the machine does not skew. */
async function serverCpu(pid: number | undefined): Promise<number> {
  return (pid === undefined ? undefined : await cpuSeconds(pid)) ?? NaN;
}

const { values } = parseArgs({ options: { 'engine-args': { type: 'string' }, rounds: { type: 'string' }, images: { type: 'string' } } });
const rounds = Number(values.rounds ?? 3);
const extraArgs = (values['engine-args'] ?? process.env.PORTFOLIO_BENCH_ARGS ?? '').split(/\s+/).filter(Boolean);
const cli = resolve(import.meta.dirname, '../../bin/portfolio.js');

// The receiver: counts the events it takes.
let received = 0;
let lastReceivedAt = 0;
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    received += (JSON.parse(Buffer.concat(chunks).toString()) as { events: unknown[] }).events.length;
    lastReceivedAt = performance.now();
    res.writeHead(200).end();
  });
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;

const dir = await mkdtemp(join(tmpdir(), 'portfolio-bench-events-'));
const s = settingsFor(false, 'node', 1, dir);
if (values.images) s.images = Number(values.images);
const off: number[] = [];
const on: number[] = [];
const cpuOff: number[] = [];
const cpuOn: number[] = [];
const lags: number[] = [];
try {
  for (let round = 0; round < rounds; round++) {
    for (const withHook of round % 2 === 0 ? [false, true] : [true, false]) {
      const dataDir = join(dir, `r${round}-${withHook ? 'on' : 'off'}`);
      const server = await startPortfolio({ cli, dataDir, extraArgs: [...extraArgs, ...(withHook ? ['--events-webhook', hook] : [])], extraEnv: {} });
      const client = new RawClient(server.url, s.imageConcurrency);
      const seed = randomBytes(4).readUInt32LE(0);
      const prefix = `bench-${seed.toString(16)}`;
      try {
        received = 0;
        await smallPushes(client, s, `${prefix}/warmup`, smallImages(s.warmupImages, seed));
        const expected = s.warmupImages + s.images;
        const cpu0 = await serverCpu(server.pid);
        const r = await smallPushes(client, s, prefix, smallImages(s.images, seed + 1));
        const pushedAt = performance.now();
        (withHook ? on : off).push(r.value);
        let note = '';
        if (withHook) {
          const deadline = Date.now() + 60_000;
          while (received < expected && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
          const lag = Math.max(0, lastReceivedAt - pushedAt);
          lags.push(lag);
          note = `, ${received}/${expected} events at the webhook, the last ${lag.toFixed(0)} ms after the last push`;
        }
        // Delivery included: the CPU is read once the webhook has every event.
        const cpuMs = ((await serverCpu(server.pid)) - cpu0) * 1000 / s.images;
        (withHook ? cpuOn : cpuOff).push(cpuMs);
        console.log(`round ${round + 1}, webhook ${withHook ? 'on ' : 'off'}: ${r.value.toFixed(0)} pushes/s, ${cpuMs.toFixed(2)} ms server CPU per image${note}`);
      } finally {
        client.close();
        await server.stop();
        await rm(dataDir, { recursive: true, force: true });
        await syncDisks();
      }
    }
  }
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  console.log(`small-image pushes/s (${s.images} images, ${s.imageConcurrency} clients, median of ${rounds}), engine: ${extraArgs.join(' ') || 'embedded default'}`);
  console.log(`  no event sink:  ${med(off).toFixed(0)}  (${med(cpuOff).toFixed(2)} ms server CPU per image)`);
  console.log(`  one webhook:    ${med(on).toFixed(0)}  (${med(cpuOn).toFixed(2)} ms server CPU per image, delivery included; ${((med(on) / med(off)) * 100).toFixed(0)} % of the rate without; target: within 10 %)`);
  console.log(`  webhook caught up ${med(lags).toFixed(0)} ms after the last push (median)`);
  console.log(`BENCH_JSON ${JSON.stringify({ pushes_no_sink: med(off), pushes_webhook: med(on), cpu_ms_no_sink: med(cpuOff), cpu_ms_webhook: med(cpuOn), ratio: med(on) / med(off), lag_ms: med(lags) })}`);
} finally {
  receiver.close();
  await rm(dir, { recursive: true, force: true });
}
