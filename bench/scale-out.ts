/**
 * The scale-out configuration of the bench (--scale-out): Portfolio on PostgreSQL + S3 and
 * distribution with its own S3 driver, on the same S3 server (by default the Ceph RADOS Gateway of
 * scripts/s3-server.sh). Each bench run gets its own bucket; each server start its own prefix in
 * it (and, for Portfolio, its own PostgreSQL database), removed when that server stops, so the
 * gateway's store (RAM with memstore) does not fill up over the rounds.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { cpuSeconds } from './cpu.js';
import type { CpuProbe } from './figures.js';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { s3ClientConfig } from '../src/backends/objects/s3-store.js';

export interface S3Endpoint {
  endpoint: string;
  region: string;
  accessKey: string;
  secretKey: string;
}

/** The S3 server from the SDK's environment, defaulting to scripts/s3-server.sh's. */
export function s3FromEnv(): S3Endpoint {
  return {
    endpoint: process.env.AWS_ENDPOINT_URL_S3 ?? 'http://127.0.0.1:9380',
    region: process.env.AWS_REGION ?? 'us-east-1',
    accessKey: process.env.AWS_ACCESS_KEY_ID ?? 'testkey',
    secretKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'testsecret',
  };
}

/** What one server start gets, and how to remove it afterwards. */
export interface Stores {
  bucket: string;
  prefix: string;
  /** Portfolio only: `serve` flags and environment. */
  args: string[];
  env: Record<string, string>;
  describe: string;
  /** Portfolio only: its PostgreSQL database. */
  database?: string;
  dispose(): Promise<void>;
}

/**
 * CPU of the PostgreSQL backends serving one database over a bracketed interval: Portfolio's
 * metadata work that its own process does not show. Backends that connect in between count from 0.
 */
export class DatabaseMeter implements CpuProbe {
  private start = new Map<number, number>();
  seconds: number | undefined;

  constructor(
    private readonly client: () => Promise<pg.Client>,
    private readonly database: string,
  ) {}

  private async sample(): Promise<Map<number, number>> {
    const c = await this.client();
    const { rows } = await c.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1', [this.database]);
    const out = new Map<number, number>();
    for (const { pid } of rows) {
      const s = await cpuSeconds(pid);
      if (s !== undefined) out.set(pid, s);
    }
    return out;
  }

  async begin(): Promise<void> {
    this.seconds = undefined;
    this.start = await this.sample();
  }

  async end(): Promise<void> {
    let sum = 0;
    for (const [pid, s] of await this.sample()) sum += s - (this.start.get(pid) ?? 0);
    this.seconds = sum;
  }
}

export class ScaleOut {
  readonly bucket = `portfolio-bench-${randomBytes(4).toString('hex')}`;
  private readonly s3: S3Client;
  private admin: Promise<pg.Client> | undefined;

  private constructor(
    readonly endpoint: S3Endpoint,
    private readonly pgBase: string,
  ) {
    this.s3 = new S3Client(
      s3ClientConfig({
        endpoint: endpoint.endpoint,
        region: endpoint.region,
        forcePathStyle: true,
        credentials: { accessKeyId: endpoint.accessKey, secretAccessKey: endpoint.secretKey },
      }),
    );
  }

  /** Checks both servers answer and creates the run's bucket. */
  static async open(): Promise<ScaleOut> {
    const so = new ScaleOut(s3FromEnv(), process.env.PORTFOLIO_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    try {
      await fetch(so.endpoint.endpoint, { signal: AbortSignal.timeout(3000) }).then((r) => r.arrayBuffer());
    } catch (err) {
      throw new Error(`S3 server at ${so.endpoint.endpoint} does not answer (${(err as Error).message}): start it with scripts/s3-server.sh`);
    }
    await so.sql('select 1');
    await so.s3.send(new CreateBucketCommand({ Bucket: so.bucket }));
    return so;
  }

  /** One connection to the server's maintenance database, for the DatabaseMeters. */
  private adminClient(): Promise<pg.Client> {
    this.admin ??= import('pg').then(async ({ default: pgm }) => {
      const c = new pgm.Client({ connectionString: this.pgBase });
      await c.connect();
      return c;
    });
    return this.admin;
  }

  meter(database: string): DatabaseMeter {
    return new DatabaseMeter(() => this.adminClient(), database);
  }

  private async sql(text: string): Promise<void> {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: this.pgBase });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  }

  /** A fresh database and S3 prefix for one Portfolio server. */
  async portfolio(name: string): Promise<Stores> {
    const prefix = `${name}-${randomBytes(4).toString('hex')}`;
    const db = `portfolio_bench_${randomBytes(6).toString('hex')}`;
    await this.sql(`create database ${db}`);
    const url = new URL(this.pgBase);
    url.pathname = `/${db}`;
    const e = this.endpoint;
    return {
      bucket: this.bucket,
      prefix,
      args: ['--database-url', url.toString(), '--storage', `s3://${this.bucket}/${prefix}`],
      env: { AWS_ENDPOINT_URL_S3: e.endpoint, AWS_REGION: e.region, AWS_ACCESS_KEY_ID: e.accessKey, AWS_SECRET_ACCESS_KEY: e.secretKey },
      describe: `PostgreSQL database ${db}, s3://${this.bucket}/${prefix} at ${e.endpoint}`,
      database: db,
      dispose: async () => {
        await this.sql(`drop database if exists ${db} with (force)`);
        await this.empty(prefix);
      },
    };
  }

  /** A fresh S3 root directory for one distribution server. */
  distribution(name: string): Stores {
    const prefix = `${name}-${randomBytes(4).toString('hex')}`;
    return {
      bucket: this.bucket,
      prefix,
      args: [],
      env: {},
      describe: `s3://${this.bucket}/${prefix} at ${this.endpoint.endpoint}`,
      dispose: () => this.empty(prefix),
    };
  }

  /** Deletes every object and unfinished multipart upload under the prefix (all with none). */
  private async empty(prefix?: string): Promise<void> {
    const Prefix = prefix === undefined ? undefined : `${prefix}/`;
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix, ContinuationToken: token }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length) await this.s3.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } }));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const uploads = await this.s3.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix }));
    for (const u of uploads.Uploads ?? []) {
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }));
    }
  }

  /** Removes the run's bucket with whatever is left in it. */
  async close(): Promise<void> {
    try {
      await this.empty();
      await this.s3.send(new DeleteBucketCommand({ Bucket: this.bucket }));
    } finally {
      this.s3.destroy();
      await (await this.admin?.catch(() => undefined))?.end();
    }
  }
}

/**
 * The S3 server's own processes (radosgw and the OSD of scripts/s3-server.sh), whose CPU is
 * reported beside the registries': empty when the S3 server is another one.
 */
export async function cephPids(): Promise<number[]> {
  const run = join(process.env.PORTFOLIO_CEPH_DIR ?? '/tmp/portfolio-ceph', 'run');
  const pids: number[] = [];
  for (const name of ['client.rgw.a.pid', 'osd.0.pid']) {
    try {
      pids.push(Number((await readFile(join(run, name), 'utf8')).trim()));
    } catch {
      return [];
    }
  }
  return pids;
}
