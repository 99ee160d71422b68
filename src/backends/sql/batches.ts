/**
 * Variable-length IN lists and multi-row inserts go to the database in slices: SQLite refuses
 * statements with more than 32,766 bound values and PostgreSQL more than 65,535, and a manifest
 * may reference many thousands of blobs.
 */
export const BATCH_SIZE = 500;

export function* slices<T>(items: readonly T[], size = BATCH_SIZE): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** Runs `query` on each slice of `items` in order and concatenates the rows. */
export async function inSlices<T, R>(items: readonly T[], query: (slice: T[]) => Promise<R[]>): Promise<R[]> {
  const rows: R[] = [];
  for (const slice of slices(items)) rows.push(...(await query(slice)));
  return rows;
}
