/** Bounds how many async tasks run at once; waiters are served first come, first served. */
export class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(private limit: number) {}

  /** Tasks running now. */
  get running(): number {
    return this.active;
  }

  /**
   * Changes the bound. A larger one lets waiters in at once; with a smaller one, running tasks
   * finish and no waiter starts until fewer than the new bound run.
   */
  resize(limit: number): void {
    this.limit = limit;
    while (this.active < this.limit && this.waiters.length > 0) {
      this.active++;
      this.waiters.shift()?.();
    }
  }

  /** Runs `fn` once a place is free; the place is released when it settles. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiters.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      // A place is handed to the next waiter, unless the bound was lowered below what runs.
      const next = this.active <= this.limit ? this.waiters.shift() : undefined;
      if (next) next();
      else this.active--;
    }
  }
}
