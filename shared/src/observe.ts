// The one wrapper for I/O that gets both a span and a latency histogram: object-store calls and
// SQL statements. The stores call it; nothing above them needs to know.
import { Attr, SpanName, withSpan } from './telemetry.ts';
import { metrics, timed } from './metrics.ts';

/** An object-store read or write, as a span (bucket, size) and in tampertrace_object_store_duration_seconds. */
export function observeStore<T>(operation: 'put' | 'get', bucket: string, bytes: number | undefined, fn: () => Promise<T>): Promise<T> {
  const attrs = bytes === undefined ? { [Attr.bucket]: bucket } : { [Attr.bucket]: bucket, [Attr.objectBytes]: bytes };
  return withSpan(operation === 'put' ? SpanName.objectPut : SpanName.objectGet, attrs, () => timed(metrics.objectStoreDuration, operation, fn));
}

/** The statement's verb (SELECT, INSERT, ...): a label with a handful of values, never the text. */
export function sqlOperation(sql: string): string {
  const m = /^\s*(?:--[^\n]*\n\s*)*([A-Za-z]+)/.exec(sql);
  return m ? m[1].toUpperCase() : 'OTHER';
}

/** A SQL statement or transaction, as a span and in tampertrace_db_query_duration_seconds. */
export function observeSql<T>(system: 'postgresql' | 'pglite', operation: string, fn: () => Promise<T>): Promise<T> {
  return withSpan(SpanName.dbQuery, { [Attr.dbSystem]: system === 'pglite' ? 'postgresql' : system, [Attr.dbOperation]: operation }, () => timed(metrics.dbDuration, operation, fn));
}

/** One ONNX session run, as a span and in tampertrace_model_inference_seconds / _batch_size. */
export function observeInference<T>(model: string, batchSize: number, fn: () => Promise<T>): Promise<T> {
  metrics.inferenceBatchSize.observe({ model }, batchSize);
  return withSpan(SpanName.inference, { [Attr.model]: model, [Attr.batchSize]: batchSize }, async () => {
    const end = metrics.inferenceDuration.startTimer({ model });
    try {
      return await fn();
    } finally {
      end();
    }
  });
}
