/**
 * The one error base class. `code` is stable and is what callers match on; messages are for
 * humans and may change. `kind` tells a reconciler what to do with it:
 * - `transient`: retry with backoff;
 * - `waiting`: not an error, requeue later (e.g. an image is still being built);
 * - `terminal`: not retried until the input changes (shown as failed with its reason);
 * - `input`: the caller's request was wrong (mapped to 4xx by the API).
 */
export type ErrorKind = 'transient' | 'waiting' | 'terminal' | 'input';

export class PoseidonError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  /** Extra structured detail safe to show to the API caller (never secrets). */
  readonly detail: Record<string, unknown> | undefined;

  constructor(
    code: string,
    message: string,
    opts: { kind?: ErrorKind; cause?: unknown; detail?: Record<string, unknown> } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'PoseidonError';
    this.code = code;
    this.kind = opts.kind ?? 'transient';
    this.detail = opts.detail;
  }
}

/** Stable error codes; the README lists them with their HTTP statuses. */
export const Codes = {
  specInvalid: 'E_SPEC_INVALID',
  configInvalid: 'E_CONFIG_INVALID',
  badRequest: 'E_BAD_REQUEST',
  unauthorized: 'E_UNAUTHORIZED',
  forbidden: 'E_FORBIDDEN',
  notFound: 'E_NOT_FOUND',
  challengeNotFound: 'E_CHALLENGE_NOT_FOUND',
  ownerLimit: 'E_OWNER_LIMIT',
  teamLimit: 'E_TEAM_LIMIT',
  notRunning: 'E_NOT_RUNNING',
  renewLimit: 'E_RENEW_LIMIT',
  renewWindow: 'E_RENEW_WINDOW',
  underLoad: 'E_UNDER_LOAD',
  rateLimited: 'E_RATE_LIMITED',
  idempotencyMismatch: 'E_IDEMPOTENCY_MISMATCH',
  conflict: 'E_CONFLICT',
  bodyTooLarge: 'E_BODY_TOO_LARGE',
  store: 'E_STORE',
  runtime: 'E_RUNTIME',
  imageNotReady: 'E_IMAGE_NOT_READY',
  containerExited: 'E_CONTAINER_EXITED',
  unhealthy: 'E_UNHEALTHY',
  internal: 'E_INTERNAL',
  noPort: 'E_NO_PORT',
  notReady: 'E_NOT_READY',
  gitUnreachable: 'E_GIT_UNREACHABLE',
  gitBranchMissing: 'E_GIT_BRANCH_MISSING',
  gitPathMissing: 'E_GIT_PATH_MISSING',
  gitRewrite: 'E_GIT_REWRITE',
  gitCorrupt: 'E_GIT_CORRUPT',
  sourceUnreadable: 'E_SOURCE_UNREADABLE',
  sourceEmpty: 'E_SOURCE_EMPTY',
  webhookSignature: 'E_WEBHOOK_SIGNATURE',
  flagSeal: 'E_FLAG_SEAL',
  noCapacity: 'E_NO_CAPACITY',
  workerLost: 'E_WORKER_LOST',
  workerNotFound: 'E_WORKER_NOT_FOUND',
} as const;

export function isPoseidonError(err: unknown, code?: string): err is PoseidonError {
  return err instanceof PoseidonError && (code === undefined || err.code === code);
}
