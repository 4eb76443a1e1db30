/**
 * Search-as-you-type: wait until typing pauses, cancel the request in flight when the query changes,
 * and deliver only the answer to the latest query. No `vscode` import: unit-tested with node.
 */

export interface Started<T> {
  promise: Promise<T>;
  cancel(): void;
}

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface LatestOptions<T> {
  delayMs: number;
  start(query: string): Started<T>;
  deliver(query: string, result: T): void;
  fail(query: string, error: unknown): void;
  /** Called when a request starts (true) and when the latest one settles (false): drives a busy spinner. */
  busy?(busy: boolean): void;
  timers?: Timers;
}

export class LatestQuery<T> {
  private timer: unknown = undefined;
  private inFlight: Started<T> | undefined;
  private generation = 0;
  private readonly timers: Timers;

  constructor(private readonly opts: LatestOptions<T>) {
    this.timers = opts.timers ?? realTimers;
  }

  /** Schedule `query`; anything scheduled or running for an older query is dropped. */
  update(query: string): void {
    this.cancel();
    const generation = this.generation;
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      this.run(query, generation);
    }, this.opts.delayMs);
  }

  /** Drop the pending and the running query without delivering anything. */
  cancel(): void {
    this.generation += 1;
    if (this.timer !== undefined) {
      this.timers.clear(this.timer);
      this.timer = undefined;
    }
    if (this.inFlight) {
      this.inFlight.cancel();
      this.inFlight = undefined;
      this.opts.busy?.(false);
    }
  }

  dispose(): void {
    this.cancel();
  }

  private run(query: string, generation: number): void {
    const started = this.opts.start(query);
    this.inFlight = started;
    this.opts.busy?.(true);
    started.promise.then(
      (result) => {
        if (generation !== this.generation) return;
        this.inFlight = undefined;
        this.opts.busy?.(false);
        this.opts.deliver(query, result);
      },
      (error: unknown) => {
        if (generation !== this.generation) return;
        this.inFlight = undefined;
        this.opts.busy?.(false);
        this.opts.fail(query, error);
      },
    );
  }
}
