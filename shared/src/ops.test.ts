// Readiness, liveness and the metrics endpoint of a service process, on a real HTTP port, with
// dependency checks that fail and recover.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { loadConfig } from './config.ts';
import { ServiceHealth } from './health.ts';
import { metrics } from './metrics.ts';
import { Readiness, startOpsServer } from './ops.ts';

const log = pino({ level: 'silent' });
const cfg = loadConfig({ TAMPERTRACE_OPS_PORT: '0' });

test('readiness: not ready while starting, follows its dependencies once started, and is not ready for good once stopping; gRPC health follows', async () => {
  let s3Up = true;
  const health = new ServiceHealth(['tampertrace.v1.Test']);
  let fatal: string | undefined;
  const readiness = new Readiness(
    [
      { name: 'kafka', check: async () => {} },
      { name: 's3', check: async () => { if (!s3Up) throw new Error('connect ECONNREFUSED 127.0.0.1:19000'); } },
    ],
    health,
    log,
    () => fatal,
  );
  const ops = await startOpsServer(cfg, log, readiness);
  const get = async (p: string) => {
    const res = await fetch(`http://127.0.0.1:${ops.port}${p}`);
    return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
  };
  try {
    let r = await get('/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body), { ready: false, checks: { process: 'starting' } });
    assert.equal(health.current, 'NOT_SERVING');

    await readiness.started(60_000);
    r = await get('/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body).checks, { process: 'ok', kafka: 'ok', s3: 'ok' });
    assert.equal(health.current, 'SERVING');

    s3Up = false;
    r = await get('/readyz');
    assert.equal(r.status, 503);
    assert.match(JSON.parse(r.body).checks.s3, /ECONNREFUSED/);
    assert.equal(health.current, 'NOT_SERVING');
    assert.equal((await get('/livez')).status, 200, 'a dependency outage is not a reason to restart');

    s3Up = true;
    assert.equal((await get('/readyz')).status, 200);
    assert.equal(health.current, 'SERVING');

    fatal = 'consumer face-detection crashed: boom';
    r = await get('/livez');
    assert.equal(r.status, 503);
    assert.match(r.body, /crashed/);

    readiness.stopping();
    assert.equal((await get('/readyz')).status, 503);
    assert.equal(health.current, 'NOT_SERVING');
  } finally {
    readiness.stopping();
    await ops.close();
  }
});

test('a check that hangs counts as down after its timeout instead of hanging the probe', async () => {
  const readiness = new Readiness([{ name: 'postgresql', check: () => new Promise(() => {}) }], undefined, log);
  await readiness.started(60_000);
  assert.equal(readiness.report.ready, false);
  assert.match(readiness.report.checks.postgresql, /no answer within/);
  readiness.stopping();
});

test('/metrics serves the Prometheus text format with the project metrics and process metrics; other paths and methods are refused', async () => {
  const readiness = new Readiness([], undefined, log);
  const ops = await startOpsServer(cfg, log, readiness);
  try {
    metrics.imagesProcessed.inc({ stage: 'face-detection', outcome: 'ok' });
    metrics.objectStoreDuration.observe({ operation: 'put', outcome: 'ok' }, 0.004);
    const res = await fetch(`http://127.0.0.1:${ops.port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.match(text, /^# TYPE tampertrace_images_processed_total counter$/m);
    assert.match(text, /^tampertrace_images_processed_total\{stage="face-detection",outcome="ok"\} [1-9]\d*$/m);
    assert.match(text, /^tampertrace_object_store_duration_seconds_bucket\{le="0\.005",operation="put",outcome="ok"\} [1-9]\d*$/m);
    assert.match(text, /^process_resident_memory_bytes \d+/m);
    assert.match(text, /^nodejs_eventloop_lag_p99_seconds /m);
    assert.equal((await fetch(`http://127.0.0.1:${ops.port}/other`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${ops.port}/metrics`, { method: 'POST', body: 'x' })).status, 405);
  } finally {
    await ops.close();
  }
});
