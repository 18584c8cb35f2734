// Distributed mode across processes: face-detection, forgery-localization,
// explanation-generation and audit each run as their own process on the real Kafka, S3Proxy and
// PostgreSQL; the test submits through the ingest logic and reads the results topic.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import pg from 'pg';
import { pino } from 'pino';
import sharp from 'sharp';
import { KafkaBus, REPO_ROOT, S3ObjectStore, Topic, limitsOf, loadConfig, type Config } from '@tampertrace/shared';
import { astronautPng, cameraPng, truncatedJpeg } from '@tampertrace/shared/testing';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { Ingestor } from '@tampertrace/ingest';
import { SERVICES } from './cli.ts';

const BIN = path.join(REPO_ROOT, 'services', 'tampertrace', 'bin', 'tampertrace.mjs');

const env = process.env;
const ready = env.TAMPERTRACE_KAFKA_BROKERS && env.TAMPERTRACE_S3_ENDPOINT && env.TAMPERTRACE_DATABASE_URL;

if (!ready) {
  test('services as separate processes', { skip: 'server addresses not set: run `make infra-up` and `eval "$(deploy/local/infra.sh env)"`' }, () => {});
} else {
  const run = `mp${Date.now()}`;
  const schema = `it_services_${Date.now()}`;
  const serviceEnv = {
    ...env,
    TAMPERTRACE_TOPIC_PREFIX: run,
    TAMPERTRACE_S3_BUCKET_PREFIX: `${run}-`,
    // Every connection of the audit service lands in this run's schema.
    TAMPERTRACE_DATABASE_URL: `${env.TAMPERTRACE_DATABASE_URL}?options=-c%20search_path%3D${schema}`,
    TAMPERTRACE_LOG_LEVEL: 'info',
    TAMPERTRACE_SHUTDOWN_TIMEOUT_MS: '10000',
    TAMPERTRACE_HTTP_PORT: String(18000 + (process.pid % 1000)),
  };
  const cfg: Config = loadConfig(serviceEnv);
  const procs = new Map<string, ChildProcess>();
  const results = new Map<string, { eventIds: Set<string>; deliveries: number; status: AnalysisStatus; faces: number }>();
  let bus: KafkaBus;
  let ingestor: Ingestor;

  function start(name: string): Promise<void> {
    // Each service through the command users run: `tampertrace service <name>`.
    const child = spawn(process.execPath, [BIN, 'service', name], { env: serviceEnv, stdio: ['ignore', 'ignore', 'pipe'] });
    procs.set(name, child);
    return new Promise((resolve, reject) => {
      let log = '';
      child.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        if (/"msg":"ready"/.test(log)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${log.slice(-2000)}`)));
    });
  }

  const waitFor = async (cond: () => boolean, ms: number, what: string) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async () => {
    const admin = new pg.Client({ connectionString: env.TAMPERTRACE_DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    await Promise.all([...SERVICES, 'ingest'].map(start));
    bus = await KafkaBus.connect({ brokers: cfg.TAMPERTRACE_KAFKA_BROKERS, clientId: `${run}-test`, topicPrefix: run, log: pino({ level: 'silent' }), sessionTimeoutMs: 6000, heartbeatIntervalMs: 300, maxWaitTimeInMs: 200 });
    const store = new S3ObjectStore({ endpoint: cfg.TAMPERTRACE_S3_ENDPOINT, region: cfg.TAMPERTRACE_S3_REGION, accessKey: cfg.TAMPERTRACE_S3_ACCESS_KEY, secretKey: cfg.TAMPERTRACE_S3_SECRET_KEY, bucketPrefix: `${run}-` });
    await store.ensureBuckets(['originals', 'artifacts']);
    ingestor = new Ingestor({ bus, store, limits: limitsOf(cfg) });
    await bus.subscribe({
      group: `${run}-results`,
      topics: [Topic.analysisCompleted],
      handler: async (m) => {
        const e = fromBinary(AnalysisCompletedSchema, m.value);
        const a = e.analysis!;
        const r = results.get(a.analysisId) ?? { eventIds: new Set<string>(), deliveries: 0, status: a.status, faces: a.faces.length };
        r.eventIds.add(e.meta!.eventId);
        r.deliveries++;
        results.set(a.analysisId, r);
      },
    });
  });

  after(async () => {
    for (const p of procs.values()) p.kill('SIGTERM');
    await Promise.all([...procs.values()].map((p) => (p.exitCode !== null ? null : new Promise((r) => p.once('exit', r)))));
    await bus?.close();
    const admin = new pg.Client({ connectionString: env.TAMPERTRACE_DATABASE_URL });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });

  test('images go through four separate service processes; each comes out once, completed or rejected', async () => {
    const noFace = await sharp({ create: { width: 320, height: 240, channels: 3, background: '#5a7' } }).png().toBuffer();
    const inputs: Array<[string, Buffer, AnalysisStatus]> = [
      ['astronaut', astronautPng(), AnalysisStatus.COMPLETED],
      ['camera', cameraPng(), AnalysisStatus.COMPLETED],
      ['noface', noFace, AnalysisStatus.NO_FACE],
      ['cut', await truncatedJpeg(), AnalysisStatus.REJECTED],
      ['text', Buffer.from('not an image'), AnalysisStatus.REJECTED],
    ];
    const ids = await Promise.all(inputs.map(async ([name, bytes]) => (await ingestor.submit(bytes, { tenantId: 't1', sourceName: name })).analysisId));
    await waitFor(() => ids.every((id) => results.has(id)), 60_000, 'all results');
    ids.forEach((id, i) => {
      const r = results.get(id)!;
      assert.equal(r.status, inputs[i][2], inputs[i][0]);
      assert.equal(r.eventIds.size, 1, `${inputs[i][0]}: one result`);
    });
    assert.equal(results.get(ids[0])!.faces, 1);
  });

  test('kill -9 of the localization worker mid-stream loses nothing and records nothing twice', async () => {
    const before = new Set(results.keys());
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      // Distinct bytes per submission: a different crop of the astronaut.
      const bytes = await sharp(astronautPng()).extract({ left: i * 8, top: i * 4, width: 440, height: 440 }).png().toBuffer();
      ids.push((await ingestor.submit(bytes, { tenantId: 't2', sourceName: `crop-${i}` })).analysisId);
    }
    await waitFor(() => ids.some((id) => results.has(id)), 60_000, 'the first result');
    procs.get('forgery-localization')!.kill('SIGKILL');
    await new Promise((r) => procs.get('forgery-localization')!.once('exit', r));
    await start('forgery-localization');
    await waitFor(() => ids.every((id) => results.has(id)), 90_000, 'every result after the restart');
    for (const id of ids) {
      const r = results.get(id)!;
      assert.equal(r.status, AnalysisStatus.COMPLETED);
      // Redelivery may repeat a message, never a result: the final event id is deterministic.
      assert.equal(r.eventIds.size, 1);
    }
    assert.ok(![...before].some((id) => ids.includes(id)));
    // The audit service (own process, own group) has exactly one record per analysis and stage.
    const db = new pg.Client({ connectionString: env.TAMPERTRACE_DATABASE_URL });
    await db.connect();
    await waitFor(() => true, 0, '');
    let rows: { analysis_id: string; stage: string; n: number }[] = [];
    for (let i = 0; i < 100; i++) {
      rows = (await db.query(`SELECT analysis_id, stage, count(*)::int AS n FROM ${schema}.audit_records WHERE tenant_id = 't2' GROUP BY 1, 2`)).rows;
      if (rows.length >= ids.length * 4) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await db.end();
    assert.equal(rows.length, ids.length * 4);
    assert.ok(rows.every((r) => r.n === 1), 'no stage recorded twice');
  });

  test('tampertrace submit sends files to the gateway process and writes the same outputs as analyze', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tt-submit-'));
    await mkdir(path.join(dir, 'in'));
    await writeFile(path.join(dir, 'in', 'astronaut.png'), astronautPng());
    await writeFile(path.join(dir, 'in', 'text.jpg'), 'not an image');
    const out = path.join(dir, 'out');
    const server = `http://127.0.0.1:${serviceEnv.TAMPERTRACE_HTTP_PORT}`;
    const code = await new Promise<number>((resolve) => {
      execFile(process.execPath, [BIN, 'submit', '--server', server, '--out', out, path.join(dir, 'in')], { env: serviceEnv }, (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0));
    });
    assert.equal(code, 2, 'one input rejected');
    const a = JSON.parse(await readFile(path.join(out, 'astronaut.json'), 'utf8'));
    assert.equal(a.status, 'ANALYSIS_STATUS_COMPLETED');
    assert.equal(a.faces.length, 1);
    const mask = await sharp(path.join(out, 'astronaut.mask.png')).metadata();
    assert.deepEqual([mask.width, mask.height], [512, 512]);
    const overlay = await sharp(path.join(out, 'astronaut.overlay.png')).metadata();
    assert.deepEqual([overlay.width, overlay.height], [512, 512]);
    const t = JSON.parse(await readFile(path.join(out, 'text.json'), 'utf8'));
    assert.equal(t.status, 'ANALYSIS_STATUS_REJECTED');
    assert.equal(t.error.code, 'ERROR_CODE_UNSUPPORTED_FORMAT');
  });
}
