import type { CatalogPlan } from './plan.ts';
import type { SyncResult, SyncStatus } from './sync-status.ts';

/** What the API routes need from the sync loop (`CatalogSync` plus the webhook settings). */
export interface GitOpsApi {
  status(): SyncStatus;
  syncNow(opts?: { force?: boolean }): Promise<SyncResult>;
  trigger(reason: string): void;
  plan(): Promise<CatalogPlan>;
  webhook: { secret?: string; branch?: string };
}
