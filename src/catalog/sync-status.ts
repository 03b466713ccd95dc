/** What the sync loop reports: the last attempt and the status `GET /v1/catalog` shows. */
import type { SourceInfo } from '../core/source.ts';
import type { ApplyResult } from './catalog.ts';

/** The outcome of the last sync attempt. */
export interface SyncResult {
  ok: boolean;
  at: string;
  durationMs: number;
  /** Revision fetched (also on some failures, e.g. a rewrite). */
  revision?: string;
  /** True when the fetched revision was already applied. */
  unchanged?: boolean;
  code?: string;
  error?: string;
  changes?: Omit<ApplyResult, 'revision' | 'unchanged'>;
}

/** What `GET /v1/catalog` shows about syncing. */
export interface SyncStatus {
  source: SourceInfo;
  revision?: string;
  /** Last successful sync (applied or found unchanged). */
  syncedAt?: string;
  lastSync?: SyncResult;
  /** Consecutive failures. */
  failures: number;
  syncing: boolean;
  nextSyncAt?: string;
}
