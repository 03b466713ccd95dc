/**
 * The store as the leader's work sees it: every write made on the lease's behalf (placement,
 * admission, finishing and deleting records, version moves) carries the current fencing token,
 * and none is even attempted without the lease. A write refused because the token went stale
 * (another replica took over while this one was paused) is counted and surfaces as `E_FENCED`.
 */
import { PoseidonError } from '../core/errors.ts';
import { FENCED, type Fence } from '../core/manager-lease.ts';
import type { Store } from '../core/store.ts';

export interface FencedStore extends Store {
  /** Writes refused for a stale or missing token since start. */
  readonly refused: number;
}

const FENCED_WRITES = new Set(['assign', 'compareAndUpdate', 'admit', 'updateInstance', 'deleteInstance']);
/** Argument count of each fenced method without its fence (the fence goes right after). */
const ARITY: Record<string, number> = { assign: 5, compareAndUpdate: 4, admit: 4, updateInstance: 3, deleteInstance: 1 };

/** Wraps `store`; `token()` is the lease token while leading, undefined otherwise; `onRefused` counts refusals (metrics). */
export function fencedStore(store: Store, token: () => number | undefined, onRefused?: () => void): FencedStore {
  let refused = 0;
  const refuse = (): void => {
    refused++;
    onRefused?.();
  };
  const count = (err: unknown): never => {
    if (err instanceof PoseidonError && err.code === FENCED) refuse();
    throw err;
  };
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'refused') return refused;
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (typeof prop !== 'string' || !FENCED_WRITES.has(prop)) return (value as (...a: unknown[]) => unknown).bind(target);
      return (...args: unknown[]) => {
        const t = token();
        if (t === undefined) {
          refuse();
          return Promise.reject(new PoseidonError(FENCED, 'write refused: this replica does not hold the manager lease', { kind: 'terminal' }));
        }
        const fence: Fence = { token: t };
        const call = [...args.slice(0, ARITY[prop]), ...Array(Math.max(0, (ARITY[prop] ?? 0) - args.length)).fill(undefined), fence];
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, call).catch(count);
      };
    },
  }) as FencedStore;
}
