/**
 * A consistent, engine-neutral view of the whole metadata store at one instant, for backups:
 * every table with its rows, and the objects its blob rows point at. A table's values are
 * numbers, strings, booleans, byte buffers or null (other types as their text).
 */
export type SnapshotValue = number | string | boolean | Buffer | null;

export interface SnapshotTable {
  name: string;
  columns: string[];
  rows: AsyncIterable<SnapshotValue[]>;
}

export interface SnapshotObject {
  key: string;
  digest: string;
  size: number;
}

export interface MetadataSnapshot {
  /** `sqlite` or `postgres`. */
  readonly engine: string;
  /** The schema migrations the snapshot's database had applied, in order. */
  readonly migrations: string[];
  /** Every table, in an order where a table comes after those its rows refer to. */
  tables(): AsyncIterable<SnapshotTable>;
  /** Objects (blob bytes kept outside the database) that the snapshot's blob rows name. */
  objects(): AsyncIterable<SnapshotObject>;
  close(): Promise<void>;
}

/** Rows to load into an empty store, table by table, as a snapshot gave them. */
export interface RestoreInput {
  migrations: string[];
  tables(): AsyncIterable<SnapshotTable>;
}
