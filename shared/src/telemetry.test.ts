// Trace propagation through the bus (the in-process one here; Kafka in
// services/tampertrace/src/observability.integration.test.ts) and trace ids on log lines.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { SpanKind, trace } from '@opentelemetry/api';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { InMemoryBus } from './bus.ts';
import { traceMixin } from './log.ts';
import { activeTraceIds, recordError, traceIdOf, withSpan } from './telemetry.ts';
import { Header } from './topics.ts';
import { tracingRequested } from './tracing-sdk.ts';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

before(() => provider.register());
after(() => provider.shutdown());

test('a message published inside a span is consumed in a child span of its producer span, with the traceparent in its headers', async () => {
  exporter.reset();
  const bus = new InMemoryBus({ partitions: 2 });
  const seen: Array<{ headers: Record<string, string>; ids: ReturnType<typeof activeTraceIds> }> = [];
  const done = new Promise<void>((resolve) =>
    bus.subscribe({
      group: 'g',
      topics: ['t'],
      handler: async (msg) => {
        seen.push({ headers: msg.headers, ids: activeTraceIds() });
        resolve();
      },
    }),
  );
  const root = await withSpan('test.root', {}, async (span) => {
    await bus.publish({ topic: 't', key: 'k1', value: new Uint8Array([1]), headers: { a: 'b' } });
    return span.spanContext();
  });
  await done;
  await bus.close();
  const spans = exporter.getFinishedSpans();
  const send = spans.find((s) => s.name === 'send t')!;
  const process = spans.find((s) => s.name === 'process t')!;
  assert.equal(send.kind, SpanKind.PRODUCER);
  assert.equal(process.kind, SpanKind.CONSUMER);
  assert.equal(send.parentSpanContext?.spanId, root.spanId);
  assert.equal(process.parentSpanContext?.spanId, send.spanContext().spanId);
  assert.equal(process.spanContext().traceId, root.traceId);
  assert.equal(process.attributes['messaging.consumer.group.name'], 'g');
  assert.match(String(process.attributes['messaging.destination.partition.id']), /^[01]$/);
  // The handler ran inside the consumer span; the header names the producer span.
  assert.deepEqual(seen[0].ids, { traceId: root.traceId, spanId: process.spanContext().spanId });
  assert.equal(seen[0].headers.a, 'b');
  assert.match(seen[0].headers[Header.traceparent], new RegExp(`^00-${root.traceId}-${send.spanContext().spanId}-01$`));
  assert.equal(traceIdOf(seen[0].headers), root.traceId);
});

test('a failing handler leaves an ERROR consumer span with the exception, and the redelivery gets a span of its own', async () => {
  exporter.reset();
  const bus = new InMemoryBus({ partitions: 1, retryBackoffMs: 1 });
  let calls = 0;
  const done = new Promise<void>((resolve) =>
    bus.subscribe({
      group: 'g',
      topics: ['t'],
      handler: async () => {
        if (++calls === 1) throw Object.assign(new Error('boom'), { code: 'X' });
        resolve();
      },
    }),
  );
  await bus.publish({ topic: 't', key: 'k', value: new Uint8Array(), headers: {} });
  await done;
  await bus.close();
  const processes = exporter.getFinishedSpans().filter((s) => s.name === 'process t');
  assert.equal(processes.length, 2);
  assert.equal(processes[0].status.code, 2);
  assert.equal(processes[0].events[0]?.name, 'exception');
  assert.equal(processes[0].attributes['tampertrace.error.code'], 'X');
  assert.equal(processes[1].status.code, 0);
});

test('log lines inside a span carry its trace and span ids; outside one they carry none', async () => {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk, _enc, cb) => (lines.push(String(chunk)), cb()) });
  // createLogger's mixin, on a captured stream.
  const log = pino({ mixin: traceMixin }, sink);
  log.info('outside');
  const ids = await withSpan('test.log', {}, async (span) => {
    log.info('inside');
    return span.spanContext();
  });
  const [outside, inside] = lines.map((l) => JSON.parse(l));
  assert.equal(outside.trace_id, undefined);
  assert.equal(inside.trace_id, ids.traceId);
  assert.equal(inside.span_id, ids.spanId);
});

test('recordError marks the span and keeps the error code', () => {
  const span = trace.getTracer('t').startSpan('x');
  recordError(span, Object.assign(new Error('bad'), { code: 7 }));
  span.end();
  const s = exporter.getFinishedSpans().find((f) => f.name === 'x')!;
  assert.equal(s.status.code, 2);
  assert.equal(s.attributes['tampertrace.error.code'], '7');
});

test('tracing starts only when an exporter is configured', () => {
  assert.equal(tracingRequested({}), false);
  assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
  assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), true);
  assert.equal(tracingRequested({ OTEL_TRACES_EXPORTER: 'console' }), true);
  assert.equal(tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), false);
  assert.equal(tracingRequested({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), false);
});

test('a stage records each outcome once: its own span under the consumer span, errors on the consumer span, and the outcome metrics', async () => {
  exporter.reset();
  const { create } = await import('@bufbuild/protobuf');
  const { InvalidInputError, RetriableError } = await import('./errors.ts');
  const { encodeEvent, nextMeta } = await import('./events.ts');
  const { ErrorCode, Stage } = await import('./gen/tampertrace/v1/common_pb.ts');
  const { EventMetaSchema, FacesDetectedSchema, ImageIngestedSchema } = await import('./gen/tampertrace/v1/events_pb.ts');
  const { runStage } = await import('./stage.ts');
  const { Topic } = await import('./topics.ts');
  const { metrics } = await import('./metrics.ts');
  const bus = new InMemoryBus({ partitions: 1, retryBackoffMs: 1 });
  let retried = false;
  await runStage(
    bus,
    {
      name: 'face-detection',
      stage: Stage.FACE_DETECTION,
      span: 'tampertrace.face_detection.detect',
      input: { topic: Topic.imageIngested, schema: ImageIngestedSchema },
      output: { topic: Topic.facesDetected, schema: FacesDetectedSchema },
      async handle(e) {
        const id = e.meta!.analysisId;
        if (id === 'bad') throw new InvalidInputError(ErrorCode.TRUNCATED_IMAGE, 'truncated');
        if (id === 'flaky' && !retried) {
          retried = true;
          throw new RetriableError(ErrorCode.DEPENDENCY_UNAVAILABLE, 'S3 down');
        }
        return create(FacesDetectedSchema, { meta: nextMeta(e.meta!, Stage.FACE_DETECTION, 'face-detection') });
      },
    },
    { concurrency: 1, maxAttempts: 3, log: pino({ level: 'silent' }) },
  );
  const value = async (outcome: string) => (await metrics.imagesProcessed.get()).values.find((v) => v.labels.stage === 'face-detection' && v.labels.outcome === outcome)?.value ?? 0;
  const before = { ok: await value('ok'), rejected: await value('rejected') };
  for (const id of ['good', 'bad', 'flaky']) {
    const meta = create(EventMetaSchema, { eventId: `${id}:ingest`, analysisId: id, tenantId: 't1', contentSha256: 'ab'.repeat(32) });
    await bus.publish(encodeEvent(Topic.imageIngested, ImageIngestedSchema, create(ImageIngestedSchema, { meta })));
  }
  await bus.idle();
  await bus.close();
  assert.equal((await value('ok')) - before.ok, 2);
  assert.equal((await value('rejected')) - before.rejected, 1);
  const spans = exporter.getFinishedSpans();
  const consumers = (id: string) => spans.filter((s) => s.name === `process ${Topic.imageIngested}` && s.attributes['tampertrace.analysis.id'] === id);
  const [good] = consumers('good');
  const detect = spans.find((s) => s.name === 'tampertrace.face_detection.detect' && s.parentSpanContext?.spanId === good.spanContext().spanId);
  assert.ok(detect, 'the stage span is a child of its consumer span');
  assert.equal(good.status.code, 0);
  const [bad] = consumers('bad');
  assert.equal(bad.status.code, 2, 'a rejected input marks the consumer span');
  assert.equal(bad.attributes['tampertrace.error.code'], 'TRUNCATED_IMAGE');
  assert.equal(bad.events.filter((e) => e.name === 'exception').length, 1);
  const flaky = consumers('flaky');
  assert.equal(flaky.length, 2, 'a retried message gets a consumer span per attempt');
  assert.equal(flaky[0].status.code, 2);
  assert.equal(flaky[0].events.filter((e) => e.name === 'exception').length, 1, 'recorded once, not by the stage and the bus both');
  assert.equal(flaky[1].status.code, 0);
});
