/** Scratch PostgreSQL databases for a bench run: one per server, dropped after it. */
import { randomUUID } from 'node:crypto';
import pg from 'pg';

/** The server the benches create their databases on (through its `postgres` database). */
export const PG_URL = process.env.PORTFOLIO_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Creates an empty database on the server of `admin`; returns its URL. */
export async function createDatabase(admin = PG_URL): Promise<string> {
  const name = `portfolio_bench_${randomUUID().replaceAll('-', '')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropDatabase(url: string, admin = PG_URL): Promise<void> {
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
