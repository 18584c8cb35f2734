// Every Prometheus metric TamperTrace exports, declared once (prom-client's default registry,
// one per process). Names follow Prometheus conventions: `tampertrace_` prefix, base units in
// the name (_seconds, _bytes), `_total` on counters. Label values are small closed sets (stage,
// outcome, error code, topic, partition): never an analysis id, a tenant or a key.
import client from 'prom-client';
import { withTimeout } from './timeout.ts';

export const registry = client.register;

/** Longest a scrape waits for Kafka's offsets before reporting the last known lag. */
const LAG_TIMEOUT_MS = 3000;
/** Histogram buckets, seconds: a stage's work per image, and one I/O call. */
const STAGE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const IO_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

export const metrics = {
  /** Time a stage spent on one message, from decoded input to published output. outcome: ok | rejected | failed | retry. */
  stageDuration: new client.Histogram({
    name: 'tampertrace_stage_duration_seconds',
    help: 'Time a pipeline stage spent on one message, by outcome.',
    labelNames: ['stage', 'outcome'] as const,
    buckets: STAGE_BUCKETS,
  }),
  /** Images a stage finished, by outcome (retries are not finished). */
  imagesProcessed: new client.Counter({
    name: 'tampertrace_images_processed_total',
    help: 'Images a stage finished handling, by outcome (ok, rejected, failed).',
    labelNames: ['stage', 'outcome'] as const,
  }),
  /** Every classified error a stage or API met, by its ErrorCode name. */
  errors: new client.Counter({
    name: 'tampertrace_errors_total',
    help: 'Errors by where they happened and their TamperTrace error code.',
    labelNames: ['stage', 'code'] as const,
  }),
  deadLetters: new client.Counter({
    name: 'tampertrace_dead_letters_total',
    help: 'Messages written to a dead-letter topic, by consumer group and error code.',
    labelNames: ['group', 'code'] as const,
  }),
  inFlight: new client.Gauge({
    name: 'tampertrace_in_flight_messages',
    help: 'Messages being handled right now, by consumer group.',
    labelNames: ['group'] as const,
  }),
  messagesPublished: new client.Counter({
    name: 'tampertrace_bus_messages_published_total',
    help: 'Messages the bus acknowledged, by topic.',
    labelNames: ['topic'] as const,
  }),
  messagesConsumed: new client.Counter({
    name: 'tampertrace_bus_messages_consumed_total',
    help: 'Messages handled and committed, by topic and consumer group.',
    labelNames: ['topic', 'group'] as const,
  }),
  /** Filled at scrape time by the bus (see setLagSource). */
  consumerLag: new client.Gauge({
    name: 'tampertrace_consumer_lag_messages',
    help: 'Messages on a partition not yet committed by a consumer group (end offset minus committed offset).',
    labelNames: ['group', 'topic', 'partition'] as const,
    async collect() {
      const source = lagSource;
      if (!source) return;
      // A broker that does not answer must not hold the scrape past Prometheus' timeout.
      const rows = await withTimeout(source(), LAG_TIMEOUT_MS, 'consumer lag').catch(() => undefined);
      if (!rows) return; // a broker that cannot be asked keeps the last figures
      this.reset();
      for (const r of rows) this.set({ group: r.group, topic: r.topic, partition: String(r.partition) }, r.lag);
    },
  }),
  inferenceDuration: new client.Histogram({
    name: 'tampertrace_model_inference_seconds',
    help: 'Duration of one ONNX session run, by model.',
    labelNames: ['model'] as const,
    buckets: IO_BUCKETS.concat([2.5]),
  }),
  inferenceBatchSize: new client.Histogram({
    name: 'tampertrace_model_batch_size',
    help: 'Inputs served by one ONNX session run, by model.',
    labelNames: ['model'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64],
  }),
  objectStoreDuration: new client.Histogram({
    name: 'tampertrace_object_store_duration_seconds',
    help: 'Object store calls, by operation and outcome.',
    labelNames: ['operation', 'outcome'] as const,
    buckets: IO_BUCKETS,
  }),
  dbDuration: new client.Histogram({
    name: 'tampertrace_db_query_duration_seconds',
    help: 'Database statements and transactions, by operation and outcome.',
    labelNames: ['operation', 'outcome'] as const,
    buckets: IO_BUCKETS,
  }),
  apiRequests: new client.Counter({
    name: 'tampertrace_api_requests_total',
    help: 'Public API calls (gRPC and HTTP), by method and TamperTrace error code (OK when none).',
    labelNames: ['method', 'code'] as const,
  }),
} as const;

export interface LagRow {
  group: string;
  topic: string;
  partition: number;
  lag: number;
}

let lagSource: (() => Promise<LagRow[]>) | undefined;

/** The bus that can tell consumer lag (one per process); asked at every scrape. */
export function setLagSource(source: (() => Promise<LagRow[]>) | undefined): void {
  lagSource = source;
}

let defaultsOn = false;

/** Process metrics: resident memory, heap, CPU, event-loop delay (prom-client's defaults, `process_`/`nodejs_`). */
export function collectProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  client.collectDefaultMetrics({ eventLoopMonitoringPrecision: 10 });
}

/** Times fn into a histogram with an outcome label of "ok" or "error". */
export async function timed<T>(h: client.Histogram<'operation' | 'outcome'>, operation: string, fn: () => Promise<T>): Promise<T> {
  const end = h.startTimer({ operation });
  try {
    const r = await fn();
    end({ outcome: 'ok' });
    return r;
  } catch (err) {
    end({ outcome: 'error' });
    throw err;
  }
}

/** The Prometheus text exposition of everything above. */
export function scrape(): Promise<string> {
  return registry.metrics();
}

export const METRICS_CONTENT_TYPE = registry.contentType;
