/**
 * The metadata model. Integrity lives in the schema, not only in code: a manifest's blob
 * references point at the repository's blob links (so a link cannot go while a manifest uses
 * it), index entries point at manifests, and links point at blob rows (so garbage collection
 * cannot delete a blob that anything still links).
 */
import { sql, type ColumnType, type Generated, type Kysely, type Migration } from 'kysely';
import { createRepositorySummaries, type RepositorySummariesTable } from './summaries.js';

export interface RepositoriesTable {
  id: Generated<number>;
  name: string;
  created_at: number;
}
export interface BlobsTable {
  id: Generated<number>;
  digest: string;
  size: number;
  /** Where the bytes are in the object store; set once, never renamed. */
  object_key: string;
  /** The bytes themselves for a small blob, which then has no object (see uploads.ts). */
  content: Buffer | null;
  created_at: number;
}
export interface RepositoryBlobsTable {
  repository_id: number;
  blob_id: number;
  /** Last upload, mount or manifest reference: garbage collection's grace period counts from here. */
  touched_at: number;
}
export interface ManifestsTable {
  id: Generated<number>;
  repository_id: number;
  digest: string;
  media_type: string;
  artifact_type: string | null;
  /** Plain text, not a foreign key: a referrer may arrive before its subject. */
  subject_digest: string | null;
  annotations: string | null;
  size: number;
  content: Buffer;
  created_at: number;
  /** Last push of these bytes or tagging: the untagged age that collection counts from. */
  pushed_at: number;
  /** Last pull, recorded in batches (pulls.ts): retention's keepPulledWithin. Since 0008. */
  last_pulled_at: ColumnType<number | null, number | null | undefined, number | null>;
}
export interface ManifestBlobsTable {
  manifest_id: number;
  repository_id: number;
  blob_id: number;
}
export interface ManifestChildrenTable {
  parent_id: number;
  child_id: number;
}
export interface TagsTable {
  repository_id: number;
  name: string;
  manifest_id: number;
  updated_at: number;
}
export interface UploadsTable {
  id: string;
  repository_id: number;
  object_key: string;
  /** The object store's serialized handle for the unfinished upload. */
  store_state: string;
  size: number;
  created_at: number;
  expires_at: number;
  /** A writer's exclusive claim on the session while it streams a chunk. */
  lease_token: string | null;
  lease_expires: number | null;
  /**
   * Where the bytes are: non-null (empty) while the session is inline, its bytes being its
   * `upload_chunks` rows; null once they are in the object store at `object_key`.
   * (Before migration 0005 the inline bytes themselves were kept here.)
   */
  content: Buffer | null;
}
/** One inline chunk of an upload session: appends insert a row instead of rewriting the session. */
export interface UploadChunksTable {
  upload_id: string;
  /** Offset of the chunk's first byte in the upload. */
  start: number;
  content: Buffer;
}

export interface LeasesTable {
  name: string;
  owner: string;
  expires_at: number;
}

/** Per repository, the sequence number of its last event: events of one repository are delivered in this order. */
export interface EventStreamsTable {
  repository: string;
  seq: number;
}
/** An event queued for one sink, written in the transaction of the change it describes. */
export interface EventDeliveriesTable {
  /** The event's id (a UUID), the same in every delivery attempt and at every sink. */
  event_id: string;
  sink: string;
  repository: string;
  seq: number;
  /** The event as JSON (a RegistryEvent). */
  payload: string;
  /** 0 pending, 1 delivered, 2 failed (parked until retried). */
  state: number;
  attempts: number;
  next_attempt_at: number;
  /** A deliverer's lease on the repository's queue (set on its oldest pending event only). */
  claimed_until: number;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
}

/** A quota or immutable-tag rule (src/core/policies.ts), from the configuration file or the admin API. */
export interface PoliciesTable {
  /** `quota:SCOPE` or `immutable:REPOSITORIES:TAGS`: one rule per scope. */
  id: string;
  kind: string;
  /** The rule as JSON (a PolicyRule). */
  rule: string;
  /** `config` (the file owns it) or `api`. */
  source: string;
  updated_at: number;
}

export interface Schema {
  repositories: RepositoriesTable;
  blobs: BlobsTable;
  repository_blobs: RepositoryBlobsTable;
  manifests: ManifestsTable;
  manifest_blobs: ManifestBlobsTable;
  manifest_children: ManifestChildrenTable;
  tags: TagsTable;
  uploads: UploadsTable;
  upload_chunks: UploadChunksTable;
  leases: LeasesTable;
  event_streams: EventStreamsTable;
  event_deliveries: EventDeliveriesTable;
  policies: PoliciesTable;
  repository_summaries: RepositorySummariesTable;
}

export type Dialect = 'sqlite' | 'postgres';

/** Upload sessions as migration 0001 created them (0003 added `content`). */
function uploadsTable(db: Kysely<unknown>, name: string, t: ReturnType<typeof types>) {
  return db.schema
    .createTable(name)
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('repository_id', t.ref, (c) => c.notNull().references('repositories.id').onDelete('cascade'))
    .addColumn('object_key', t.text, (c) => c.notNull())
    .addColumn('store_state', t.text, (c) => c.notNull())
    .addColumn('size', t.int, (c) => c.notNull())
    .addColumn('created_at', t.int, (c) => c.notNull())
    .addColumn('expires_at', t.int, (c) => c.notNull())
    .addColumn('lease_token', t.text)
    .addColumn('lease_expires', t.int);
}

/** A repository's links to blobs, as migration 0001 created them. */
function repositoryBlobsTable(db: Kysely<unknown>, name: string, t: ReturnType<typeof types>) {
  return db.schema
    .createTable(name)
    .addColumn('repository_id', t.ref, (c) => c.notNull().references('repositories.id').onDelete('cascade'))
    .addColumn('blob_id', t.ref, (c) => c.notNull().references('blobs.id'))
    .addColumn('touched_at', t.int, (c) => c.notNull())
    .addPrimaryKeyConstraint('repository_blobs_pk', ['repository_id', 'blob_id']);
}

/** The only DDL differences between the engines. */
function types(dialect: Dialect) {
  const pg = dialect === 'postgres';
  return {
    id: pg ? sql`bigserial` : sql`integer`,
    ref: pg ? sql`bigint` : sql`integer`,
    int: pg ? sql`bigint` : sql`integer`,
    // Byte-order sorting of names and tags.
    text: pg ? sql`text collate "C"` : sql`text`,
    bytes: pg ? sql`bytea` : sql`blob`,
  };
}

export function migrations(dialect: Dialect): Record<string, Migration> {
  const t = types(dialect);
  return {
    '0001_initial': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('repositories')
          .addColumn('id', t.id, (c) => c.primaryKey())
          .addColumn('name', t.text, (c) => c.notNull().unique())
          .addColumn('created_at', t.int, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('blobs')
          .addColumn('id', t.id, (c) => c.primaryKey())
          .addColumn('digest', t.text, (c) => c.notNull().unique())
          .addColumn('size', t.int, (c) => c.notNull())
          .addColumn('object_key', t.text, (c) => c.notNull().unique())
          .addColumn('created_at', t.int, (c) => c.notNull())
          .execute();
        await repositoryBlobsTable(db, 'repository_blobs', t).execute();
        await db.schema.createIndex('repository_blobs_blob').on('repository_blobs').column('blob_id').execute();
        await db.schema
          .createTable('manifests')
          .addColumn('id', t.id, (c) => c.primaryKey())
          .addColumn('repository_id', t.ref, (c) => c.notNull().references('repositories.id').onDelete('cascade'))
          .addColumn('digest', t.text, (c) => c.notNull())
          .addColumn('media_type', t.text, (c) => c.notNull())
          .addColumn('artifact_type', t.text)
          .addColumn('subject_digest', t.text)
          .addColumn('annotations', t.text)
          .addColumn('size', t.int, (c) => c.notNull())
          .addColumn('content', t.bytes, (c) => c.notNull())
          .addColumn('created_at', t.int, (c) => c.notNull())
          .addUniqueConstraint('manifests_repository_digest', ['repository_id', 'digest'])
          .execute();
        await db.schema.createIndex('manifests_subject').on('manifests').columns(['repository_id', 'subject_digest']).execute();
        await db.schema
          .createTable('manifest_blobs')
          .addColumn('manifest_id', t.ref, (c) => c.notNull().references('manifests.id').onDelete('cascade'))
          .addColumn('repository_id', t.ref, (c) => c.notNull())
          .addColumn('blob_id', t.ref, (c) => c.notNull())
          .addPrimaryKeyConstraint('manifest_blobs_pk', ['manifest_id', 'blob_id'])
          .addForeignKeyConstraint('manifest_blobs_link', ['repository_id', 'blob_id'], 'repository_blobs', ['repository_id', 'blob_id'])
          .execute();
        await db.schema.createIndex('manifest_blobs_link').on('manifest_blobs').columns(['repository_id', 'blob_id']).execute();
        await db.schema
          .createTable('manifest_children')
          .addColumn('parent_id', t.ref, (c) => c.notNull().references('manifests.id').onDelete('cascade'))
          .addColumn('child_id', t.ref, (c) => c.notNull().references('manifests.id'))
          .addPrimaryKeyConstraint('manifest_children_pk', ['parent_id', 'child_id'])
          .execute();
        await db.schema.createIndex('manifest_children_child').on('manifest_children').column('child_id').execute();
        await db.schema
          .createTable('tags')
          .addColumn('repository_id', t.ref, (c) => c.notNull().references('repositories.id').onDelete('cascade'))
          .addColumn('name', t.text, (c) => c.notNull())
          .addColumn('manifest_id', t.ref, (c) => c.notNull().references('manifests.id').onDelete('cascade'))
          .addColumn('updated_at', t.int, (c) => c.notNull())
          .addPrimaryKeyConstraint('tags_pk', ['repository_id', 'name'])
          .execute();
        await db.schema.createIndex('tags_manifest').on('tags').column('manifest_id').execute();
        await uploadsTable(db, 'uploads', t).execute();
        await db.schema.createIndex('uploads_expiry').on('uploads').column('expires_at').execute();
      },
    },
    '0002_leases': {
      async up(db: Kysely<unknown>) {
        // Named, expiring claims: one garbage collector at a time across processes and replicas.
        await db.schema
          .createTable('leases')
          .addColumn('name', t.text, (c) => c.primaryKey())
          .addColumn('owner', t.text, (c) => c.notNull())
          .addColumn('expires_at', t.int, (c) => c.notNull())
          .execute();
        await db.schema.createIndex('repository_blobs_touched').on('repository_blobs').column('touched_at').execute();
      },
    },
    '0003_inline_blobs': {
      async up(db: Kysely<unknown>) {
        // Small blobs live in their row: no object, no file sync, one commit.
        await db.schema.alterTable('blobs').addColumn('content', t.bytes).execute();
        await db.schema.alterTable('uploads').addColumn('content', t.bytes).execute();
      },
    },
    '0004_compact_tables': {
      async up(db: Kysely<unknown>) {
        // The expiry sweep reads a small table; its index cost a page write on every session write.
        await db.schema.dropIndex('uploads_expiry').ifExists().execute();
        if (dialect === 'sqlite') await withoutRowids(db);
      },
    },
    '0005_tag_safety_and_upload_chunks': {
      async up(db: Kysely<unknown>) {
        // A tag goes only where it is deleted on purpose, never as a side effect of deleting
        // its manifest: collection racing a tag PUT must fail, not silently drop the tag.
        if (dialect === 'sqlite') await rebuildTagsWithoutCascade(db);
        else await pgTagsWithoutCascade(db);
        // Untagged age counts from the last push or tagging, not from the first insert.
        await db.schema.alterTable('manifests').addColumn('pushed_at', t.int, (c) => c.notNull().defaultTo(0)).execute();
        await sql`update manifests set pushed_at = created_at`.execute(db);
        // Inline upload bytes as one row per chunk: an append writes what it adds.
        await db.schema
          .createTable('upload_chunks')
          .addColumn('upload_id', t.text, (c) => c.notNull().references('uploads.id').onDelete('cascade'))
          .addColumn('start', t.int, (c) => c.notNull())
          .addColumn('content', t.bytes, (c) => c.notNull())
          .addPrimaryKeyConstraint('upload_chunks_pk', ['upload_id', 'start'])
          .execute();
        const length = dialect === 'sqlite' ? sql`length(content)` : sql`octet_length(content)`;
        await sql`insert into upload_chunks (upload_id, start, content) select id, 0, content from uploads where content is not null and ${length} > 0`.execute(db);
        await sql`update uploads set content = ${Buffer.alloc(0)} where content is not null`.execute(db);
        // The expiry sweep and the orphan scan look sessions up by these.
        await db.schema.createIndex('uploads_expiry').on('uploads').column('expires_at').execute();
        await db.schema.createIndex('uploads_object_key').on('uploads').column('object_key').execute();
      },
    },
    '0006_events': {
      async up(db: Kysely<unknown>) {
        // The outbox: an event's row per sink commits with its change; a sink's rows are its queue.
        await db.schema
          .createTable('event_streams')
          .addColumn('repository', t.text, (c) => c.primaryKey())
          .addColumn('seq', t.int, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('event_deliveries')
          .addColumn('event_id', t.text, (c) => c.notNull())
          .addColumn('sink', t.text, (c) => c.notNull())
          .addColumn('repository', t.text, (c) => c.notNull())
          .addColumn('seq', t.int, (c) => c.notNull())
          .addColumn('payload', t.text, (c) => c.notNull())
          .addColumn('state', t.int, (c) => c.notNull())
          .addColumn('attempts', t.int, (c) => c.notNull())
          .addColumn('next_attempt_at', t.int, (c) => c.notNull())
          .addColumn('claimed_until', t.int, (c) => c.notNull())
          .addColumn('last_error', t.text)
          .addColumn('created_at', t.int, (c) => c.notNull())
          .addColumn('delivered_at', t.int)
          .addPrimaryKeyConstraint('event_deliveries_pk', ['event_id', 'sink'])
          .execute();
        // A sink's queue heads: its pending events per repository in sequence order.
        await db.schema.createIndex('event_deliveries_queue').on('event_deliveries').columns(['sink', 'state', 'repository', 'seq']).execute();
        await db.schema.createIndex('event_deliveries_done').on('event_deliveries').columns(['state', 'delivered_at']).execute();
      },
    },
    '0007_cache_pulls': {
      async up(db: Kysely<unknown>) {
        // Keyed by digest, not manifest row: a pull recorded while the manifest is re-stored still counts.
        await db.schema
          .createTable('cache_pulls')
          .addColumn('repository_id', t.ref, (c) => c.notNull().references('repositories.id').onDelete('cascade'))
          .addColumn('digest', t.text, (c) => c.notNull())
          .addColumn('pulled_at', t.int, (c) => c.notNull())
          .addPrimaryKeyConstraint('cache_pulls_pk', ['repository_id', 'digest'])
          .execute();
      },
    },
    '0008_policies': {
      async up(db: Kysely<unknown>) {
        // Few rows, read inside the transactions they govern; a quota's row is also its scope's lock.
        await db.schema
          .createTable('policies')
          .addColumn('id', t.text, (c) => c.primaryKey())
          .addColumn('kind', t.text, (c) => c.notNull())
          .addColumn('rule', t.text, (c) => c.notNull())
          .addColumn('source', t.text, (c) => c.notNull())
          .addColumn('updated_at', t.int, (c) => c.notNull())
          .execute();
        await db.schema.alterTable('manifests').addColumn('last_pulled_at', t.int).execute();
      },
    },
    '0009_repository_summaries': {
      async up(db: Kysely<unknown>) {
        // Counts, bytes and last push per repository, kept by triggers (summaries.ts): list
        // pages read a row instead of aggregating a repository's manifests and blobs.
        await createRepositorySummaries(db, dialect);
      },
    },
    '0010_pull_times_in_manifests': {
      async up(db: Kysely<unknown>) {
        // The cache's prune reads manifests.last_pulled_at, which every pull already notes: its
        // own table of pull times goes, its latest times carried over.
        const pulled = sql`from cache_pulls p where p.repository_id = manifests.repository_id and p.digest = manifests.digest`;
        await sql`update manifests set last_pulled_at = (select max(p.pulled_at) ${pulled})
          where exists (select 1 ${pulled} and (manifests.last_pulled_at is null or p.pulled_at > manifests.last_pulled_at))`.execute(db);
        await db.schema.dropTable('cache_pulls').execute();
      },
    },
    '0011_links_without_touch_index': {
      async up(db: Kysely<unknown>) {
        // Collection reads links by key range and filters on touched_at there; no query seeks by
        // the time alone. The index only cost every link and every touch a page write.
        await db.schema.dropIndex('repository_blobs_touched').ifExists().execute();
      },
    },
  };
}

/** PostgreSQL: replace the cascading foreign key of tags.manifest_id by a plain one. */
async function pgTagsWithoutCascade(db: Kysely<unknown>): Promise<void> {
  const found = await sql<{ conname: string }>`
    select conname from pg_constraint
    where conrelid = 'tags'::regclass and confrelid = 'manifests'::regclass and contype = 'f'`.execute(db);
  for (const { conname } of found.rows) await sql`alter table tags drop constraint ${sql.id(conname)}`.execute(db);
  await sql`alter table tags add constraint tags_manifest_fk foreign key (manifest_id) references manifests (id)`.execute(db);
}

/** SQLite cannot alter a foreign key: rebuild the tags table. */
async function rebuildTagsWithoutCascade(db: Kysely<unknown>): Promise<void> {
  const t = types('sqlite');
  await rebuildSqliteTables(db, 'tags', async () => {
    await db.schema
      .createTable('tags_new')
      .addColumn('repository_id', t.ref, (c) => c.notNull().references('repositories.id').onDelete('cascade'))
      .addColumn('name', t.text, (c) => c.notNull())
      .addColumn('manifest_id', t.ref, (c) => c.notNull().references('manifests.id'))
      .addColumn('updated_at', t.int, (c) => c.notNull())
      .addPrimaryKeyConstraint('tags_pk', ['repository_id', 'name'])
      .execute();
    await sql`insert into tags_new (repository_id, name, manifest_id, updated_at) select repository_id, name, manifest_id, updated_at from tags`.execute(db);
    await db.schema.dropTable('tags').execute();
    await db.schema.alterTable('tags_new').renameTo('tags').execute();
    await db.schema.createIndex('tags_manifest').on('tags').column('manifest_id').execute();
  });
}

/**
 * SQLite: upload sessions and repository links become key-ordered tables (WITHOUT ROWID), so
 * writing one changes one B-tree less; each page less is a page less in every commit's log.
 */
async function withoutRowids(db: Kysely<unknown>): Promise<void> {
  const t = types('sqlite');
  await rebuildSqliteTables(db, 'tables', async () => {
    await uploadsTable(db, 'uploads_new', t).addColumn('content', t.bytes).modifyEnd(sql`without rowid`).execute();
    await sql`insert into uploads_new (id, repository_id, object_key, store_state, size, created_at, expires_at, lease_token, lease_expires, content)
      select id, repository_id, object_key, store_state, size, created_at, expires_at, lease_token, lease_expires, content from uploads`.execute(db);
    await db.schema.dropTable('uploads').execute();
    await db.schema.alterTable('uploads_new').renameTo('uploads').execute();

    await repositoryBlobsTable(db, 'repository_blobs_new', t).modifyEnd(sql`without rowid`).execute();
    await sql`insert into repository_blobs_new (repository_id, blob_id, touched_at) select repository_id, blob_id, touched_at from repository_blobs`.execute(db);
    await db.schema.dropTable('repository_blobs').execute();
    await db.schema.alterTable('repository_blobs_new').renameTo('repository_blobs').execute();
    await db.schema.createIndex('repository_blobs_blob').on('repository_blobs').column('blob_id').execute();
    await db.schema.createIndex('repository_blobs_touched').on('repository_blobs').column('touched_at').execute();
  });
}

/**
 * SQLite's documented table rebuild: foreign keys off, `rebuild` (copy into new tables, drop,
 * rename), check the keys, all in one transaction.
 */
async function rebuildSqliteTables(db: Kysely<unknown>, what: string, rebuild: () => Promise<void>): Promise<void> {
  await sql`pragma foreign_keys = off`.execute(db);
  try {
    await sql`begin immediate`.execute(db);
    try {
      await rebuild();
      const broken = await sql`pragma foreign_key_check`.execute(db);
      if (broken.rows.length > 0) throw new Error(`rebuilding ${what} broke ${broken.rows.length} foreign keys`);
      await sql`commit`.execute(db);
    } catch (err) {
      await sql`rollback`.execute(db).catch(() => {});
      throw err;
    }
  } finally {
    await sql`pragma foreign_keys = on`.execute(db);
  }
}
