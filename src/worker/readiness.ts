/**
 * Readiness: an instance with a health check is `running` at the first successful probe after
 * its container starts, not at Docker's first health interval. Probes are the health check's own
 * command, run by exec right after the start and then with a short backoff (25 ms doubling to
 * 400 ms). Their cost per engine is bounded (a few at once, whatever the number of starting
 * containers), and a probe that does not finish says nothing: overload makes an instance slower
 * to become ready, never failed. It fails only when probes that did run kept failing for longer
 * than the challenge's health timeout (or after a hard cap of ten times that).
 */
import type { ContainerRuntime } from '../core/runtime.ts';
import { Semaphore } from '../core/semaphore.ts';

/** `answered`: the last probe completed (with a non-zero code); false when it said nothing. */
export type ReadinessResult = { kind: 'ready' } | { kind: 'waiting'; retryMs: number; answered: boolean } | { kind: 'failed'; reason: string };

export interface ReadinessOptions {
  runtime: Pick<ContainerRuntime, 'exec'>;
  /** Probes at once on this engine (default 4). */
  concurrency?: number;
  /** How long one probe may take before it counts as no answer (default 3 s). */
  probeTimeoutMs?: number;
  now?: () => number;
}

/** Completed, failed probes needed (besides the timeout) before an instance fails. */
const MIN_FAILURES = 3;
const FIRST_RETRY_MS = 25;
const MAX_RETRY_MS = 400;

interface ProbeState {
  firstAt: number;
  /** When the first completed probe failed: the failure window starts there, not at the first attempt. */
  failingSince?: number;
  attempts: number;
  failures: number;
}

/** See the module comment. Keys name one container generation (`<instance>:<epoch>:<generation>`). */
export class ReadinessProbes {
  readonly #opts: ReadinessOptions;
  readonly #slots: Semaphore;
  readonly #state = new Map<string, ProbeState>();

  constructor(opts: ReadinessOptions) {
    this.#opts = opts;
    this.#slots = new Semaphore(opts.concurrency ?? 4);
  }

  /** Probes `container` once with `command`; `timeoutSeconds` is the challenge's health timeout. */
  async check(key: string, container: string, command: string[], timeoutSeconds: number): Promise<ReadinessResult> {
    const now = this.#now();
    const st = this.#state.get(key) ?? { firstAt: now, attempts: 0, failures: 0 };
    this.#state.set(key, st);
    const code = await this.#slots.run(() => this.#opts.runtime.exec(container, command, this.#opts.probeTimeoutMs ?? 3000)).catch(() => undefined);
    if (code === 0) {
      this.#state.delete(key);
      return { kind: 'ready' };
    }
    st.attempts++;
    const at = this.#now();
    if (code !== undefined) {
      st.failures++;
      st.failingSince ??= at;
    }
    const timeoutMs = timeoutSeconds * 1000;
    // Measured from the first answered failure: time spent without answers (an engine too busy
    // to run probes) never counts towards failing, however long it was.
    const failing = st.failingSince === undefined ? 0 : at - st.failingSince;
    if ((failing > timeoutMs && st.failures >= MIN_FAILURES) || at - st.firstAt > Math.max(10 * timeoutMs, 300_000)) {
      this.#state.delete(key);
      return { kind: 'failed', reason: `health check failed for ${timeoutSeconds}s (${st.failures} of ${st.attempts} probes failed${code === undefined ? ', the last without an answer' : `, the last with exit code ${code}`})` };
    }
    return { kind: 'waiting', retryMs: Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (st.attempts - 1)), answered: code !== undefined };
  }

  /** Forgets every probe state of `instance` (it stopped, or moved). */
  forget(instance: string): void {
    for (const key of this.#state.keys()) if (key.startsWith(`${instance}:`)) this.#state.delete(key);
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }
}
