// The same stages, audit consumer and results view as embedded mode, on the real servers:
// Kafka (KafkaBus), S3Proxy (S3ObjectStore) and PostgreSQL. Runs when `make test` (or
// `make infra-up` + `eval "$(deploy/local/infra.sh env)"`) has set the server addresses.
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { pino } from 'pino';
import sharp from 'sharp';
import { Header, PIPELINE, Topic, deadLetterTopic, loadConfig, type BusMessage } from '@tampertrace/shared';
import { KafkaBus } from '@tampertrace/shared/kafka-bus';
import { S3ObjectStore } from '@tampertrace/shared/s3-object-store';
import { astronautPng, truncatedJpeg } from '@tampertrace/shared/testing';
import { openPostgres } from '@tampertrace/shared/pg';
import { AnalysisStatus, ErrorCode, Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { startPipeline, type Embedded } from './embedded.ts';

const env = process.env;
const ready = env.TAMPERTRACE_KAFKA_BROKERS && env.TAMPERTRACE_S3_ENDPOINT && env.TAMPERTRACE_DATABASE_URL;

if (!ready) {
  test('pipeline on real servers', { skip: 'server addresses not set: run `make infra-up` and `eval "$(deploy/local/infra.sh env)"`' }, () => {});
} else {
  const run = `it${Date.now()}`;
  const schema = `it_pipeline_${Date.now()}`;
  let pipeline: Embedded;
  let bus: KafkaBus;
  const dlq: BusMessage[] = [];

  before(async () => {
    const admin = new pg.Client({ connectionString: env.TAMPERTRACE_DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    const log = pino({ level: 'silent' });
    bus = await KafkaBus.connect({ brokers: env.TAMPERTRACE_KAFKA_BROKERS!.split(','), clientId: run, topicPrefix: run, log, sessionTimeoutMs: 6000, heartbeatIntervalMs: 300, maxWaitTimeInMs: 200 });
    const store = S3ObjectStore.fromEnv({ ...env, TAMPERTRACE_S3_BUCKET_PREFIX: `${run}-` });
    const sql = await openPostgres(env.TAMPERTRACE_DATABASE_URL!, { pool: { options: `-c search_path=${schema}` } });
    pipeline = await startPipeline(loadConfig(), log, { bus, store, sql }, { pepper: randomBytes(24).toString('hex') });
    await bus.subscribe({ group: 'it-dlq', topics: [deadLetterTopic(PIPELINE[0].group)], handler: async (m) => void dlq.push(m) });
  });

  after(async () => {
    await pipeline?.close();
    const admin = new pg.Client({ connectionString: env.TAMPERTRACE_DATABASE_URL });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });

  test('a real photo goes through Kafka, S3 and PostgreSQL: face, mask object, verified audit trail', async () => {
    const a = await pipeline.analyze(astronautPng(), 'astronaut.png');
    assert.equal(a.status, AnalysisStatus.COMPLETED);
    assert.equal(a.faces.length, 1);
    assert.ok(Math.abs(a.faces[0].box!.x - 178) < 15 && Math.abs(a.faces[0].box!.y - 81) < 15);
    const mask = await pipeline.store.get(a.artifacts!.mask!.bucket, a.artifacts!.mask!.key);
    assert.equal(mask.subarray(1, 4).toString('latin1'), 'PNG');
    // The audit consumer is its own group: wait until it has recorded ingest and every stage.
    let trail = await pipeline.audit!.trail(a.tenantId, { analysisId: a.analysisId });
    for (let i = 0; i < 100 && trail.length < PIPELINE.length + 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      trail = await pipeline.audit!.trail(a.tenantId, { analysisId: a.analysisId });
    }
    assert.deepEqual(trail.map((r) => r.stage), ['INGEST', 'PROVENANCE', 'FACE_DETECTION', 'FORGERY_LOCALIZATION', 'EXPLANATION']);
    assert.deepEqual(await pipeline.audit!.verify(a.tenantId), { ok: true, count: PIPELINE.length + 1 });
  });

  test('truncated JPEG and WebP images are REJECTED at ingest, from their container, before anything is queued', async () => {
    const a = await pipeline.analyze(await truncatedJpeg(), 'cut.jpg');
    assert.equal(a.status, AnalysisStatus.REJECTED);
    assert.equal(a.error!.code, ErrorCode.TRUNCATED_IMAGE);
    assert.equal(a.error!.stage, Stage.INGEST);
    const webp = await sharp(astronautPng()).webp().toBuffer();
    const w = await pipeline.analyze(webp.subarray(0, Math.floor(webp.length * 0.6)), 'cut.webp');
    assert.equal(w.status, AnalysisStatus.REJECTED);
    assert.equal(w.error!.code, ErrorCode.TRUNCATED_IMAGE);
    assert.equal(w.error!.stage, Stage.INGEST);
  });

  test('garbage on a stage topic lands in its dead-letter topic and the stage keeps consuming', async () => {
    await bus.publish({ topic: Topic.imageIngested, key: 'poison', value: new Uint8Array([0xde, 0xad, 0xbe, 0xef]), headers: {} });
    const after = await pipeline.analyze(astronautPng(), 'after-poison.png');
    assert.equal(after.status, AnalysisStatus.COMPLETED);
    for (let i = 0; i < 100 && dlq.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(dlq.length, 1);
    assert.equal(dlq[0].key, 'poison');
    assert.deepEqual([...dlq[0].value], [0xde, 0xad, 0xbe, 0xef]);
    assert.equal(dlq[0].headers[Header.dlqCode], 'INVALID_MESSAGE');
    // The first stage reads image.ingested: the poison is its dead letter.
    assert.equal(dlq[0].headers[Header.dlqStage], PIPELINE[0].group);
    assert.equal(dlq[0].headers[Header.dlqOriginalTopic], Topic.imageIngested);
  });
}
