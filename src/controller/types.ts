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

/** The subset of pino's logger the controller uses. */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
