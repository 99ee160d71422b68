/**
 * Removes what one test run left in the shared services: its PostgreSQL databases and its S3
 * prefix (named after the run in registry.ts). scripts/run-tests.mjs calls it once every engine
 * has run, so a run on a long-lived machine leaves nothing behind, whatever its tests did.
 */
import { AbortMultipartUploadCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { s3ClientConfig } from '../../src/backends/objects/s3-store.js';
import { databasePrefix, PG_URL, S3_BUCKET, s3Prefix, s3Service } from './registry.js';

export async function removeRunStores(run: string, { s3 }: { s3: boolean }): Promise<{ databases: number; objects: number }> {
  const databases = await dropDatabases(databasePrefix(run));
  const objects = s3 ? await deleteObjects(s3Prefix(run)) : 0;
  return { databases, objects };
}

async function dropDatabases(prefix: string): Promise<number> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>('select datname from pg_database where starts_with(datname, $1)', [prefix]);
    // Names are the runner's own (letters, digits, underscores): safe to splice in.
    for (const { datname } of rows) await client.query(`drop database if exists ${datname} with (force)`);
    return rows.length;
  } finally {
    await client.end();
  }
}

async function deleteObjects(prefix: string): Promise<number> {
  const env = s3Service();
  const s3 = new S3Client(
    s3ClientConfig({
      endpoint: env.AWS_ENDPOINT_URL_S3,
      region: env.AWS_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
    }),
  );
  let deleted = 0;
  try {
    // Uploads a killed server left unfinished (the crash tests) hold parts no listing shows.
    const { Uploads = [] } = await s3.send(new ListMultipartUploadsCommand({ Bucket: S3_BUCKET, Prefix: prefix }));
    for (const u of Uploads) await s3.send(new AbortMultipartUploadCommand({ Bucket: S3_BUCKET, Key: u.Key, UploadId: u.UploadId }));
    for (;;) {
      // Each page is deleted before the next is listed, so the listing restarts at the front.
      const page = await s3.send(new ListObjectsV2Command({ Bucket: S3_BUCKET, Prefix: prefix }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length === 0) return deleted;
      await s3.send(new DeleteObjectsCommand({ Bucket: S3_BUCKET, Delete: { Objects: keys, Quiet: true } }));
      deleted += keys.length;
    }
  } finally {
    s3.destroy();
  }
}
