import { Codes, PoseidonError } from '../core/errors.ts';

/**
 * Runs one Redis call of an adapter: a failure becomes a transient E_STORE naming `what` was
 * unavailable, with the URL's password redacted from the client's message.
 */
export async function redisCall<T>(what: string, redact: (text: string) => string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new PoseidonError(Codes.store, `${what} unavailable: ${redact((err as Error).message)}`, { kind: 'transient', cause: err });
  }
}
