// Tracing for every service: one trace per analysis, carried as W3C `traceparent` on gRPC
// metadata (auto-instrumented) and on Kafka/in-process bus headers (here, by hand: the bus is
// ours), with every span and attribute name this project defines declared in this file.
//
// The SDK starts only when the standard OTEL_* variables ask for an exporter; otherwise the
// OpenTelemetry API stays a no-op and costs next to nothing. Nothing here may put image bytes,
// API keys or presigned URLs on a span.
import { context, propagation, trace, SpanKind, SpanStatusCode, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { TamperTraceError, codeName } from './errors.ts';

/**
 * What tracing reads of a bus message (structurally a BusMessage): declared here rather than
 * imported, so that the bus may use this module without an import cycle.
 */
export interface TracedMessage {
  topic: string;
  key: string;
  value: Uint8Array;
  headers: Record<string, string>;
}

/** The tracer of every TamperTrace span (instrumentation scope). */
const tracer = () => trace.getTracer('tampertrace');

/**
 * Names of the spans this project creates (messaging and RPC spans follow the semantic conventions
 * instead). Each stage's own span is named in its entry of shared/src/pipeline.ts.
 */
export const SpanName = {
  /** Bytes → pixels with sharp (probe, orientation, resize to working resolution). */
  decode: 'tampertrace.image.decode',
  /** Validation and storing of a submitted image by ingest. */
  ingest: 'tampertrace.ingest.accept',
  /** One ONNX session run (possibly a batch). */
  inference: 'tampertrace.model.inference',
  /** One request to a vision-language explainer (never its key or its prompt). */
  explainModel: 'tampertrace.explanation.model_call',
  objectPut: 'tampertrace.object_store.put',
  objectGet: 'tampertrace.object_store.get',
  /** One SQL statement (audit store, results view, tenants). */
  dbQuery: 'tampertrace.db.query',
  /** The audit service appending one record to the chain. */
  auditAppend: 'tampertrace.audit.append',
} as const;

/** Attribute names this project defines (all under `tampertrace.`), plus the semantic-convention ones it sets. */
export const Attr = {
  analysisId: 'tampertrace.analysis.id',
  tenant: 'tampertrace.tenant.id',
  stage: 'tampertrace.stage',
  errorCode: 'tampertrace.error.code',
  errorClass: 'tampertrace.error.class',
  faces: 'tampertrace.faces.count',
  verdict: 'tampertrace.verdict',
  model: 'tampertrace.model.name',
  batchSize: 'tampertrace.model.batch_size',
  imageWidth: 'tampertrace.image.width',
  imageHeight: 'tampertrace.image.height',
  bucket: 'tampertrace.object.bucket',
  objectBytes: 'tampertrace.object.size',
  /** How a model-written explanation ended: ok, timeout, http_503, malformed, busy, circuit_open, ungrounded. */
  explainOutcome: 'tampertrace.explanation.outcome',
  // Semantic conventions (messaging, database) used on our own spans.
  messagingSystem: 'messaging.system',
  messagingOperationType: 'messaging.operation.type',
  messagingOperationName: 'messaging.operation.name',
  messagingDestination: 'messaging.destination.name',
  messagingPartition: 'messaging.destination.partition.id',
  messagingConsumerGroup: 'messaging.consumer.group.name',
  messagingKey: 'messaging.kafka.message.key',
  messagingOffset: 'messaging.kafka.offset',
  messagingBodySize: 'messaging.message.body.size',
  dbSystem: 'db.system.name',
  dbOperation: 'db.operation.name',
} as const;

/**
 * Runs fn inside a new span that is a child of the active one; records an exception and sets
 * ERROR when fn throws (the error is rethrown unchanged).
 */
export async function withSpan<T>(name: string, attrs: Attributes, fn: (span: Span) => Promise<T>, kind: SpanKind = SpanKind.INTERNAL): Promise<T> {
  return tracer().startActiveSpan(name, { kind, attributes: attrs }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

export function recordError(span: Span, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message.slice(0, 300) });
  // Our errors carry an ErrorCode, named as in the API; others (Node, pg, kafkajs) their own code.
  const code = err instanceof TamperTraceError ? codeName(err.code) : (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'number' || typeof code === 'string') span.setAttribute(Attr.errorCode, String(code));
}

/** Where a consumed message came from, for the consumer span (partition and offset exist on Kafka only). */
export interface Delivery {
  /** The subscriber's consumer group (unprefixed). */
  group: string;
  system: 'kafka' | 'in-process';
  partition?: number;
  offset?: string;
}

/**
 * A PRODUCER span around publishing `msg`, whose context is written into the message's headers
 * (traceparent, tracestate) so that the consumer's span continues the same trace. Returns the
 * message to send (headers copied, never mutated).
 */
export async function tracedPublish<M extends TracedMessage>(msg: M, system: Delivery['system'], send: (withTrace: M) => Promise<void>): Promise<void> {
  return withSpan(
    `send ${msg.topic}`,
    {
      [Attr.messagingSystem]: system === 'kafka' ? 'kafka' : 'tampertrace.in_process',
      [Attr.messagingOperationType]: 'send',
      [Attr.messagingOperationName]: 'send',
      [Attr.messagingDestination]: msg.topic,
      [Attr.messagingKey]: msg.key,
      [Attr.messagingBodySize]: msg.value.byteLength,
      [Attr.analysisId]: msg.key,
    },
    async () => {
      const headers = { ...msg.headers };
      // The span of this send is active here, so it becomes the parent of the consumer's span.
      propagation.inject(context.active(), headers);
      await send({ ...msg, headers });
    },
    SpanKind.PRODUCER,
  );
}

/** A CONSUMER span, child of the producer's context carried in the headers, active while `handle` runs. */
export async function tracedConsume(msg: TracedMessage, delivery: Delivery, handle: () => Promise<void>): Promise<void> {
  const parent: Context = propagation.extract(context.active(), msg.headers);
  const attrs: Attributes = {
    [Attr.messagingSystem]: delivery.system === 'kafka' ? 'kafka' : 'tampertrace.in_process',
    [Attr.messagingOperationType]: 'process',
    [Attr.messagingOperationName]: 'process',
    [Attr.messagingDestination]: msg.topic,
    [Attr.messagingConsumerGroup]: delivery.group,
    [Attr.messagingKey]: msg.key,
    [Attr.messagingBodySize]: msg.value.byteLength,
    [Attr.analysisId]: msg.key,
  };
  if (delivery.partition !== undefined) attrs[Attr.messagingPartition] = String(delivery.partition);
  if (delivery.offset !== undefined) attrs[Attr.messagingOffset] = Number(delivery.offset);
  return context.with(parent, () => withSpan(`process ${msg.topic}`, attrs, handle, SpanKind.CONSUMER));
}

/** The active trace id and span id (for log lines and audit records); empty when not tracing. */
export function activeTraceIds(): { traceId: string; spanId: string } | undefined {
  const sc = trace.getActiveSpan()?.spanContext();
  if (!sc || !trace.isSpanContextValid(sc)) return undefined;
  return { traceId: sc.traceId, spanId: sc.spanId };
}

/** The trace id a message's traceparent header names ("" without one). */
export function traceIdOf(headers: Record<string, string>): string {
  const sc = trace.getSpanContext(propagation.extract(context.active(), headers));
  return sc && trace.isSpanContextValid(sc) ? sc.traceId : '';
}
