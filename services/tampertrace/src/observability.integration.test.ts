// Observability of every service as separate processes on the real Kafka, S3 server and
// PostgreSQL: one trace per analysis across gRPC and every Kafka hop (exported over OTLP to a
// receiver in this test), Prometheus metrics on each process's /metrics, log lines that carry the
// trace id, and readiness/liveness endpoints.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { PIPELINE, SERVICES, Topic, grpc, pipelineStage, serviceClient, unary } from '@tampertrace/shared';
import { astronautPng, cameraPng } from '@tampertrace/shared/testing';
import { IngestService, SubmitRequestSchema, type SubmitResponse } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { Cluster, SKIP_REASON, serversReady, waitFor } from './cluster.testing.ts';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.testing.ts';

const SERVER = 2;
const CONSUMER = 5;
const PRODUCER = 4;

/** Samples of one metric from a Prometheus text exposition: labels → value. */
function samples(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

if (!serversReady) {
  test('observability across running services', { skip: SKIP_REASON }, () => {});
} else {
  let receiver: OtlpReceiver;
  let cluster: Cluster;
  let client: grpc.Client;
  let apiKey: string;
  let analysisId: string;

  before(async () => {
    receiver = await startOtlpReceiver();
    cluster = new Cluster(25000 + (process.pid % 800) * 2, {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_TRACES_SAMPLER: 'always_on',
      // Export within a fraction of a second instead of the default five.
      OTEL_BSP_SCHEDULE_DELAY: '200',
      // Stages log each handled message at debug.
      TAMPERTRACE_LOG_LEVEL: 'debug',
    });
    await cluster.up([...SERVICES]);
    apiKey = await cluster.createTenant('tenant-otel');
    client = serviceClient(IngestService, cluster.grpcAddress, { apiKey });
    const r = await unary<SubmitResponse>(client, 'submit', create(SubmitRequestSchema, { reanalyze: true, source: { case: 'content', value: astronautPng() } }));
    analysisId = r.analysisId;
    await waitFor(() => cluster.results.has(analysisId), 120_000, 'the analysis to complete');
  });

  after(async () => {
    client?.close();
    await cluster?.down();
    await receiver?.close();
  });

  /** The spans of the submitted analysis's trace, once the audit service has recorded its final event. */
  async function traceOfAnalysis(): Promise<ReceivedSpan[]> {
    let spans: ReceivedSpan[] = [];
    await waitFor(
      () => {
        const submit = receiver.spans.find((s) => s.service === 'ingest' && s.kind === SERVER && s.name.endsWith('IngestService/Submit'));
        if (!submit) return false;
        spans = receiver.spans.filter((s) => s.traceId === submit.traceId);
        // Each process exports on its own schedule: wait until no parent along the chain is missing.
        const byId = new Map(spans.map((s) => [s.spanId, s]));
        let s = finalAppend(spans);
        while (s?.parentSpanId) s = byId.get(s.parentSpanId);
        return s !== undefined;
      },
      30_000,
      'the trace to reach the receiver',
    );
    return spans;
  }

  /** The audit service's append of the analysis.completed event. */
  function finalAppend(spans: ReceivedSpan[]): ReceivedSpan | undefined {
    const consume = spans.find((s) => s.service === 'audit' && s.kind === CONSUMER && s.name === `process ${Topic.analysisCompleted}`);
    return consume && spans.find((s) => s.parentSpanId === consume.spanId && s.name === 'tampertrace.audit.append');
  }

  test('one submitted image yields one trace with spans from every service, in the order the pipeline ran', async () => {
    const spans = await traceOfAnalysis();
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    assert.deepEqual(new Set(spans.map((s) => s.service)), new Set(SERVICES));

    // From the audit record's append, parent by parent, up to the root: the Submit call.
    const append = finalAppend(spans)!;
    assert.equal(append.attributes['tampertrace.analysis.id'], analysisId);
    const chain: ReceivedSpan[] = [];
    for (let s: ReceivedSpan | undefined = append; s; s = s.parentSpanId ? byId.get(s.parentSpanId) : undefined) chain.unshift(s);
    assert.equal(chain[0].parentSpanId, '', 'the chain ends at a root span');
    const hops = chain.filter((s) => s.kind === SERVER || s.kind === PRODUCER || s.kind === CONSUMER).map((s) => `${s.service}: ${s.name}`);
    assert.deepEqual(hops, [
      'ingest: grpc.tampertrace.v1.IngestService/Submit',
      `ingest: send ${Topic.imageIngested}`,
      ...PIPELINE.flatMap((s) => [`${s.service}: process ${s.input.topic}`, `${s.service}: send ${s.output.topic}`]),
      `audit: process ${Topic.analysisCompleted}`,
    ]);
    // Messaging spans carry the semantic-convention attributes.
    const consume = chain.find((s) => s.kind === CONSUMER && s.service === 'face-detection')!;
    assert.equal(consume.attributes['messaging.system'], 'kafka');
    assert.equal(consume.attributes['messaging.operation.type'], 'process');
    assert.equal(consume.attributes['messaging.consumer.group.name'], 'face-detection');
    assert.match(String(consume.attributes['messaging.destination.partition.id']), /^\d+$/);
    assert.equal(typeof consume.attributes['messaging.kafka.offset'], 'number');

    // Each stage's own work is a child of its consumer span; decode, object store and database spans exist where that work happens.
    const childOf = (parent: ReceivedSpan, name: string) => spans.find((s) => s.parentSpanId === parent.spanId && s.name === name);
    const stageSpan = (service: string, topic: string, name: string) => {
      const c = spans.find((s) => s.service === service && s.kind === CONSUMER && s.name === `process ${topic}`)!;
      const span = childOf(c, name);
      assert.ok(span, `${name} under ${service}'s consumer span`);
      return span!;
    };
    const [detect, localize] = (['face-detection', 'forgery-localization'] as const).map((s) => pipelineStage(s)).map((s) => stageSpan(s.service, s.input.topic, s.span));
    for (const s of PIPELINE) stageSpan(s.service, s.input.topic, s.span);
    const descendants = (root: ReceivedSpan) => {
      const out: ReceivedSpan[] = [];
      const walk = (p: ReceivedSpan) => spans.filter((s) => s.parentSpanId === p.spanId).forEach((c) => (out.push(c), walk(c)));
      walk(root);
      return out.map((s) => s.name);
    };
    assert.ok(descendants(detect).includes('tampertrace.image.decode'), `detect's children: ${descendants(detect)}`);
    assert.ok(descendants(detect).includes('tampertrace.object_store.get'));
    assert.ok(descendants(localize).includes('tampertrace.object_store.put'), `localize's children: ${descendants(localize)}`);
    assert.ok(spans.some((s) => s.service === 'ingest' && s.name === 'tampertrace.object_store.put'), 'ingest stores the original');
    assert.ok(spans.some((s) => s.service === 'audit' && s.name === 'tampertrace.db.query' && s.attributes['db.system.name'] === 'postgresql'));
    assert.ok(spans.some((s) => s.service === 'ingest' && s.name === 'tampertrace.db.query'));
  });

  test('the audit record and the services\u2019 log lines carry the analysis\u2019s trace id', async () => {
    const spans = await traceOfAnalysis();
    const traceId = spans[0].traceId;
    const rows = await cluster.sql<{ trace_id: string }>(`SELECT DISTINCT trace_id FROM ${cluster.schema}.audit_records WHERE analysis_id = '${analysisId}'`);
    assert.deepEqual(rows.map((r) => r.trace_id), [traceId]);
    for (const service of ['face-detection', 'forgery-localization', 'explanation-generation']) {
      const lines = readFileSync(path.join(cluster.logDir, `${service}.log`), 'utf8').split('\n').filter((l) => l.includes(analysisId));
      const handled = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'message handled');
      assert.ok(handled, `${service} logged no 'message handled' line for the analysis`);
      assert.equal(handled.trace_id, traceId, service);
      const span = spans.find((s) => s.spanId === handled.span_id);
      assert.equal(span?.service, service, `the line's span_id names a span of ${service}`);
      // Payloads never reach the log: no line of the analysis is longer than a few hundred characters.
      for (const l of lines) assert.ok(l.length < 2000, `${service}: a log line of ${l.length} characters`);
    }
  });

  test('an HTTP API call gets a server span of its own, without the API key', async () => {
    const res = await fetch(`http://127.0.0.1:${cluster.env.TAMPERTRACE_HTTP_PORT}/v1/analyses/${analysisId}`, { headers: { authorization: `Bearer ${apiKey}` } });
    assert.equal(res.status, 200);
    let span: ReceivedSpan | undefined;
    await waitFor(
      () => (span = receiver.spans.find((s) => s.service === 'ingest' && s.kind === SERVER && String(s.attributes['url.path'] ?? s.attributes['http.target'] ?? '').includes(analysisId))) !== undefined,
      15_000,
      'the HTTP server span',
    );
    assert.equal(span!.attributes['http.request.method'] ?? span!.attributes['http.method'], 'GET');
    assert.equal(span!.attributes['http.response.status_code'] ?? span!.attributes['http.status_code'], 200);
    assert.ok(!JSON.stringify(span!.attributes).includes(apiKey));
  });

  test('no span carries an API key, a presigned URL or image bytes', async () => {
    await traceOfAnalysis();
    const text = JSON.stringify(receiver.spans.map((s) => s.attributes));
    assert.ok(!text.includes(apiKey), 'API key on a span');
    assert.ok(!/X-Amz-Signature|X-Amz-Credential/i.test(text), 'presigned URL on a span');
    for (const s of receiver.spans) for (const v of Object.values(s.attributes)) assert.ok(String(v).length < 2048, `${s.name}: an attribute of ${String(v).length} characters`);
  });

  test('each service exposes Prometheus metrics with non-zero counters and histograms, and lag drains to zero', async () => {
    // A few more images, so that every stage has several observations.
    for (const img of [cameraPng(), astronautPng()]) {
      const r = await unary<SubmitResponse>(client, 'submit', create(SubmitRequestSchema, { reanalyze: true, source: { case: 'content', value: img } }));
      await waitFor(() => cluster.results.has(r.analysisId), 120_000, 'the analysis to complete');
    }
    const scrapeOf = async (service: string) => {
      const res = await fetch(`http://127.0.0.1:${cluster.opsPortOf(service)}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      return res.text();
    };
    const sum = (xs: Array<{ value: number }>) => xs.reduce((a, b) => a + b.value, 0);
    for (const stage of ['face-detection', 'forgery-localization', 'explanation-generation']) {
      const text = await scrapeOf(stage);
      const ok = samples(text, 'tampertrace_images_processed_total').filter((s) => s.labels.stage === stage && s.labels.outcome === 'ok');
      assert.ok(sum(ok) >= 3, `${stage}: images processed ${sum(ok)}`);
      const hist = samples(text, 'tampertrace_stage_duration_seconds_count').filter((s) => s.labels.stage === stage && s.labels.outcome === 'ok');
      assert.ok(sum(hist) >= 3);
      assert.ok(sum(samples(text, 'tampertrace_stage_duration_seconds_sum').filter((s) => s.labels.stage === stage)) > 0);
      // The explanation stage only signs URLs; the other two read and write objects.
      if (stage !== 'explanation-generation') assert.ok(sum(samples(text, 'tampertrace_object_store_duration_seconds_count').filter((s) => s.labels.outcome === 'ok')) > 0, `${stage}: object store`);
      assert.ok(samples(text, 'process_resident_memory_bytes')[0]?.value > 0);
      assert.ok(samples(text, 'nodejs_eventloop_lag_p99_seconds').length === 1);
      assert.equal(samples(text, 'tampertrace_in_flight_messages').filter((s) => s.labels.group === stage).length, 1);
    }
    for (const model of ['face-detection', 'forgery-localization']) {
      const text = await scrapeOf(model);
      assert.ok(sum(samples(text, 'tampertrace_model_inference_seconds_count')) > 0, `${model}: inference histogram`);
      assert.ok(sum(samples(text, 'tampertrace_model_batch_size_count')) > 0, `${model}: batch size histogram`);
    }
    for (const service of ['ingest', 'audit']) {
      const text = await scrapeOf(service);
      assert.ok(sum(samples(text, 'tampertrace_db_query_duration_seconds_count')) > 0, `${service}: database latency`);
      assert.ok(sum(samples(text, 'tampertrace_bus_messages_consumed_total')) > 0, `${service}: messages consumed`);
    }
    // Lag per partition, for the group the process consumes with, reaches zero once everything is done.
    let lag: Array<{ labels: Record<string, string>; value: number }> = [];
    const end = Date.now() + 30_000;
    for (;;) {
      lag = samples(await scrapeOf('face-detection'), 'tampertrace_consumer_lag_messages').filter((s) => s.labels.group === 'face-detection');
      if (lag.length === cluster.cfg.TAMPERTRACE_TOPIC_PARTITIONS && lag.every((s) => s.value === 0)) break;
      if (Date.now() > end) assert.fail(`face-detection lag did not drain: ${JSON.stringify(lag)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual(new Set(lag.map((s) => s.labels.topic)), new Set([pipelineStage('face-detection').input.topic]));
  });

  test('readiness reports each dependency and liveness answers, over HTTP and gRPC health', async () => {
    for (const service of SERVICES) {
      const ready = await fetch(`http://127.0.0.1:${cluster.opsPortOf(service)}/readyz`);
      const body = (await ready.json()) as { ready: boolean; checks: Record<string, string> };
      assert.equal(ready.status, 200, `${service}: ${JSON.stringify(body)}`);
      assert.equal(body.ready, true);
      assert.equal(body.checks.kafka, 'ok');
      if (service === 'ingest' || service === 'audit' || service === 'provenance') assert.equal(body.checks.postgresql, 'ok');
      if (service !== 'audit') assert.equal(body.checks.s3, 'ok');
      const live = await fetch(`http://127.0.0.1:${cluster.opsPortOf(service)}/livez`);
      assert.equal(live.status, 200);
    }
  });
}
