/**
 * What a backend reports about itself to whoever watches the process (metrics, probes). Kept
 * here so backends never depend on a metrics library and http never depends on a backend.
 */

/** Events inside the storage engine worth counting. Every method must be cheap and never throw. */
export interface StorageObserver {
  /** A transaction failed on a conflict (serialization failure, deadlock, unique-key race) and is run again. */
  transactionRetried(): void;
  /** A SQLite statement found another process holding the write lock and waits to run again. */
  busyWaited?(): void;
}

/** One readiness check: a dependency the registry cannot serve without. */
export interface ReadinessCheck {
  name: 'database' | 'objects' | 'schema';
  ok: boolean;
  /** Why it failed, in words (an error message); absent when ok. */
  error?: string;
}

/** Counts kept by the metadata, for gauges. Each call is a few aggregate queries: callers cache it. */
export interface StorageStats {
  /** Distinct blobs stored, and their bytes counted once each. */
  blobs: number;
  bytes: number;
  /** Upload sessions open (started, not yet completed, cancelled or expired). */
  uploads: number;
}

/** A backend that can say whether it is ready to serve and how much it holds. */
export interface Observable {
  readiness(): Promise<ReadinessCheck[]>;
  stats(): Promise<StorageStats>;
}
