// A dynamic batcher in the manner of Triton's: inference requests queue until the model is free,
// then up to maxBatchSize of them go to one model run. maxWaitMs > 0 also holds a partial batch
// that long for company; 0 (the default) never waits, so batches form only from requests that
// queued while the model was busy and an idle model adds no latency.
import { ErrorCode } from './gen/tampertrace/v1/common_pb.ts';
import { RetriableError } from './errors.ts';

export interface BatcherOptions {
  /** Most items in one run. */
  maxBatchSize: number;
  /** How long a partial batch waits for more items when the model is free, ms (0: not at all). */
  maxWaitMs: number;
  /** Most items waiting; beyond it submit() fails with BatcherFullError (bounded memory). */
  maxQueue: number;
  /** Runs at once (model instances, in Triton's words). */
  maxConcurrentRuns?: number;
  /**
   * Whether a failed batch of several items is run again item by item, so that one bad item
   * fails only its own request. Only for runs without side effects.
   */
  retryItemsAlone?: boolean;
}

/** The queue is full: the caller should try again later (the stage runner retries with backoff). */
export class BatcherFullError extends RetriableError {
  constructor(maxQueue: number) {
    super(ErrorCode.DEPENDENCY_UNAVAILABLE, `batcher queue full (${maxQueue} items waiting)`);
  }
}

interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (err: unknown) => void;
}

/** Per-batch figures for whoever wants to measure batching (bench, metrics). */
export interface BatchStats {
  runs: number;
  items: number;
  largest: number;
}

export class DynamicBatcher<I, O> {
  private readonly queue: Pending<I, O>[] = [];
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private drained: (() => void) | undefined;
  readonly stats: BatchStats = { runs: 0, items: 0, largest: 0 };
  private readonly opts: Required<BatcherOptions>;

  /** run(items) must return one output per item, in order. */
  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    opts: BatcherOptions,
  ) {
    this.opts = { maxConcurrentRuns: 1, retryItemsAlone: true, ...opts };
    if (!(this.opts.maxBatchSize >= 1) || !(this.opts.maxQueue >= 1) || !(this.opts.maxWaitMs >= 0) || !(this.opts.maxConcurrentRuns >= 1)) {
      throw new Error(`DynamicBatcher: bad options ${JSON.stringify(opts)}`);
    }
  }

  /** Items waiting for a run. */
  get queued(): number {
    return this.queue.length;
  }

  submit(item: I): Promise<O> {
    return this.submitMany([item])[0];
  }

  /**
   * Several items queued together, so that they share a run when they fit (the faces of one
   * image). All are refused when they do not all fit in the queue.
   */
  submitMany(items: I[]): Promise<O>[] {
    if (this.closed) {
      const err = new Error('DynamicBatcher: submit after close()');
      return items.map(() => Promise.reject(err));
    }
    // A request larger than the whole queue is still taken when the queue is empty, so that it
    // cannot be refused forever; the bound is then that one request.
    if (this.queue.length > 0 && this.queue.length + items.length > this.opts.maxQueue) {
      const err = new BatcherFullError(this.opts.maxQueue);
      return items.map(() => Promise.reject(err));
    }
    const promises = items.map((item) => new Promise<O>((resolve, reject) => this.queue.push({ item, resolve, reject })));
    this.schedule();
    return promises;
  }

  /** Refuses new items and resolves once every queued item has run. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.queue.length === 0 && this.running === 0) return;
    const done = new Promise<void>((resolve) => (this.drained = resolve));
    this.flush();
    await done;
  }

  private schedule(): void {
    if (this.running >= this.opts.maxConcurrentRuns) return; // the run's end schedules again
    if (this.queue.length >= this.opts.maxBatchSize || this.opts.maxWaitMs === 0 || this.closed) {
      this.flush();
      return;
    }
    this.timer ??= setTimeout(() => this.flush(), this.opts.maxWaitMs);
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.running < this.opts.maxConcurrentRuns && this.queue.length > 0) {
      void this.runBatch(this.queue.splice(0, this.opts.maxBatchSize));
    }
    if (this.queue.length === 0 && this.running === 0) this.drained?.();
  }

  private async runBatch(batch: Pending<I, O>[]): Promise<void> {
    this.running++;
    this.stats.runs++;
    this.stats.items += batch.length;
    this.stats.largest = Math.max(this.stats.largest, batch.length);
    try {
      const out = await this.runChecked(batch.map((p) => p.item));
      batch.forEach((p, i) => p.resolve(out[i]));
    } catch (err) {
      if (batch.length > 1 && this.opts.retryItemsAlone) {
        // One bad item must not fail the others: each runs alone, and only its own error stays.
        for (const p of batch) {
          try {
            p.resolve((await this.runChecked([p.item]))[0]);
          } catch (e) {
            p.reject(e);
          }
        }
      } else {
        for (const p of batch) p.reject(err);
      }
    } finally {
      this.running--;
      if (this.queue.length > 0) this.schedule();
      else if (this.running === 0) this.drained?.();
    }
  }

  private async runChecked(items: I[]): Promise<O[]> {
    const out = await this.run(items);
    if (out.length !== items.length) throw new Error(`DynamicBatcher: run returned ${out.length} outputs for ${items.length} items`);
    return out;
  }
}
