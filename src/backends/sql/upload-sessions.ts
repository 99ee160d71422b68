/**
 * The upload session's state machine, as rows. Each transition is one conditional write (one
 * statement, or one transaction whose first statement is the conditional one) that applies only
 * to the state it was computed from, and leaves the row consistent: `size` always counts bytes
 * that are durably where `content` says (inline chunk rows, or the object store).
 *
 *   inline ──append──▶ inline            (chunk row + size, no lease: the chunk is in memory)
 *   inline ──spill───▶ stored            (under a lease, after the store holds every byte;
 *                                          the chunk rows are left to the session's end)
 *   stored ──append──▶ stored            (under a lease, after the store holds the chunk)
 *   any    ──end─────▶ gone              (with the blob row, in one transaction)
 */
import type { ExpressionBuilder } from 'kysely';
import { errors } from '../../core/errors.js';
import type { Context } from './context.js';
import { isForeignKeyViolation, isNotNullViolation, type Executor } from './database.js';
import { prepare } from './prepared.js';
import type { Schema } from './schema.js';

export interface SessionRow {
  id: string;
  repository_id: number;
  object_key: string;
  store_state: string;
  size: number;
  expires_at: number;
  /** True while the bytes are inline (upload_chunks rows), false once in the object store. */
  inline: boolean;
}

const EMPTY = Buffer.alloc(0);

export class Sessions {
  constructor(private readonly ctx: Context) {}

  private get db() {
    return this.ctx.database.db;
  }
  private get dialect() {
    return this.ctx.database.dialect;
  }

  /**
   * Starts a session in the repository named `repository`, looking its id up in the same
   * statement; returns that id, or null when no such repository exists.
   */
  async create(id: string, repository: string, key: string, state: string, now: number, expires: number, inline: boolean): Promise<number | null> {
    try {
      return (await INSERT_SESSION.first(this.db, this.dialect, id, repository, key, state, now, expires, inline ? EMPTY : null))!.repository_id;
    } catch (err) {
      // The repository's id came back NULL (there is no such repository), or the repository
      // was deleted between the lookup and the foreign-key check.
      if (isNotNullViolation(err) || isForeignKeyViolation(err)) return null;
      throw err;
    }
  }

  async find(id: string, repository: string): Promise<SessionRow | undefined> {
    const row = await SESSION.first(this.db, this.dialect, id, repository);
    return row && { ...row, inline: row.inline !== 0 && row.inline !== false };
  }

  /** The inline bytes of the session's first `size` bytes, in order. */
  async inlineBytes(row: SessionRow): Promise<Buffer> {
    if (row.size === 0) return EMPTY;
    const chunks = await CHUNKS.execute(this.db, this.dialect, row.id, row.size);
    const bytes = Buffer.concat(chunks.rows.map((c) => c.content));
    // Fewer bytes than `row` says: a concurrent request completed or cancelled the session since
    // `row` was read. Its chunks are gone; this request lost the race.
    if (bytes.length !== row.size) throw errors.rangeInvalid('another request is writing this upload', { offset: row.size });
    return bytes;
  }

  /** inline → inline: records a chunk at `offset`, unless another request moved or holds the session. */
  async appendInline(id: string, offset: number, chunk: Buffer, expires: number): Promise<boolean> {
    return this.ctx.database.tx(async (trx) => {
      const moved = await APPEND_INLINE.affected(trx, this.dialect, offset + chunk.length, expires, id, offset, Date.now());
      if (moved === 0n) return false;
      if (chunk.length > 0) await INSERT_CHUNK.execute(trx, this.dialect, id, offset, chunk);
      return true;
    });
  }

  /** Claims the session at `offset` for a writer; false if another request holds it or moved it. */
  async acquire(id: string, offset: number, token: string, leaseExpires: number): Promise<boolean> {
    return (await ACQUIRE.affected(this.db, this.dialect, token, leaseExpires, id, offset, Date.now())) > 0n;
  }

  async renew(id: string, token: string, leaseExpires: number): Promise<boolean> {
    return (await RENEW.affected(this.db, this.dialect, leaseExpires, id, token)) > 0n;
  }

  async release(id: string, token: string): Promise<void> {
    await RELEASE.execute(this.db, this.dialect, id, token);
  }

  /**
   * inline → stored: the store holds all `size` bytes. The chunk rows are no longer read and go
   * with the session (foreign-key cascade), so the move is this one statement.
   */
  async spilled(id: string, token: string, size: number, state: string, expires: number): Promise<boolean> {
    return (await SPILLED.affected(this.db, this.dialect, size, state, expires, id, token)) > 0n;
  }

  /** stored → stored: the store holds `size` bytes. */
  async stored(id: string, token: string, size: number, state: string, expires: number): Promise<boolean> {
    return (await PERSIST.affected(this.db, this.dialect, size, state, expires, id, token)) > 0n;
  }

  /** Ends a session held by `token` (inside the transaction that records its blob). */
  async endLeased(trx: Executor, id: string, token: string): Promise<boolean> {
    return (await END_LEASED.affected(trx, this.dialect, id, token)) > 0n;
  }

  /** Ends an unclaimed session still at `offset` (inside the transaction that records its blob). */
  async endUnclaimed(trx: Executor, id: string, offset: number): Promise<boolean> {
    return (await END_UNCLAIMED.affected(trx, this.dialect, id, offset, Date.now())) > 0n;
  }

  /** Ends an unclaimed session (cancel); false while a writer holds it. */
  async cancel(id: string): Promise<boolean> {
    return (await CANCEL.affected(this.db, this.dialect, id, Date.now())) > 0n;
  }
}

/** No request holds the session's lease (or its holder let it expire). */
function leaseFree(now: number) {
  return (eb: ExpressionBuilder<Schema, 'uploads'>) => eb.or([eb('lease_expires', 'is', null), eb('lease_expires', '<', now)]);
}

const INSERT_SESSION = prepare(
  (exec, _pg, id: string, repository: string, key: string, state: string, now: number, expires: number, content: Buffer | null) =>
    exec
      .insertInto('uploads')
      .values((eb) => ({
        id,
        repository_id: eb.selectFrom('repositories').select('repositories.id').where('repositories.name', '=', repository),
        object_key: key,
        store_state: state,
        size: 0,
        created_at: now,
        expires_at: expires,
        content,
      }))
      .returning('repository_id'),
);

const SESSION = prepare((exec, _pg, id: string, repository: string) =>
  exec
    .selectFrom('uploads as u')
    .innerJoin('repositories as r', 'r.id', 'u.repository_id')
    .select((eb) => ['u.id', 'u.repository_id', 'u.object_key', 'u.store_state', 'u.size', 'u.expires_at', eb('u.content', 'is not', null).as('inline')])
    .where('u.id', '=', id)
    .where('r.name', '=', repository),
);

const CHUNKS = prepare((exec, _pg, id: string, size: number) =>
  exec.selectFrom('upload_chunks').select('content').where('upload_id', '=', id).where('start', '<', size).orderBy('start'),
);

const APPEND_INLINE = prepare((exec, _pg, size: number, expires: number, id: string, offset: number, now: number) =>
  exec
    .updateTable('uploads')
    .set({ size, expires_at: expires })
    .where('id', '=', id)
    .where('size', '=', offset)
    .where('content', 'is not', null)
    .where(leaseFree(now)),
);

const INSERT_CHUNK = prepare((exec, _pg, id: string, start: number, content: Buffer) => exec.insertInto('upload_chunks').values({ upload_id: id, start, content }));

const ACQUIRE = prepare((exec, _pg, token: string, leaseExpires: number, id: string, offset: number, now: number) =>
  exec.updateTable('uploads').set({ lease_token: token, lease_expires: leaseExpires }).where('id', '=', id).where('size', '=', offset).where(leaseFree(now)),
);

const RENEW = prepare((exec, _pg, leaseExpires: number, id: string, token: string) =>
  exec.updateTable('uploads').set({ lease_expires: leaseExpires }).where('id', '=', id).where('lease_token', '=', token),
);

const RELEASE = prepare((exec, _pg, id: string, token: string) =>
  exec.updateTable('uploads').set({ lease_token: null, lease_expires: null }).where('id', '=', id).where('lease_token', '=', token),
);

const SPILLED = prepare((exec, _pg, size: number, state: string, expires: number, id: string, token: string) =>
  exec
    .updateTable('uploads')
    .set({ size, store_state: state, expires_at: expires, content: null })
    .where('id', '=', id)
    .where('lease_token', '=', token)
    .where('content', 'is not', null),
);

const PERSIST = prepare((exec, _pg, size: number, state: string, expires: number, id: string, token: string) =>
  exec
    .updateTable('uploads')
    .set({ size, store_state: state, expires_at: expires })
    .where('id', '=', id)
    .where('lease_token', '=', token)
    .where('content', 'is', null),
);

const END_LEASED = prepare((exec, _pg, id: string, token: string) => exec.deleteFrom('uploads').where('id', '=', id).where('lease_token', '=', token));

const END_UNCLAIMED = prepare((exec, _pg, id: string, offset: number, now: number) =>
  exec.deleteFrom('uploads').where('id', '=', id).where('size', '=', offset).where(leaseFree(now)),
);

const CANCEL = prepare((exec, _pg, id: string, now: number) => exec.deleteFrom('uploads').where('id', '=', id).where(leaseFree(now)));
