/**
 * What every component shares: the logger shape and the reconcile contract (after
 * controller-runtime). A reconcile gets only a key and this context, reads everything else
 * fresh, and says when to look again.
 */

/** The subset of pino's logger the components use (child loggers from the one process logger). */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What a reconcile gets besides its key; it reads everything else fresh. */
export interface ReconcileContext {
  signal: AbortSignal;
  now(): Date;
}

/** `requeueAfterMs`: reconcile this key again after that long even if nothing changes. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

export type Reconciler = (ctx: ReconcileContext, key: string) => Promise<ReconcileResult>;

/** A logger that drops everything (tests, benchmarks, optional logging). */
export const SILENT: Logger = { debug() {}, info() {}, warn() {}, error() {} };
