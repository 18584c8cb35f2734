// During a REAL outage of each server (the S3 server, PostgreSQL, the Kafka broker, stopped with
// deploy/local/infra.sh), every answer the public API gives over gRPC and HTTP carries a typed
// code and a safe message: no address, host, port or URL of our own servers, which stay in the
// logs. The ingest service runs in this process (no stages: only the API is under test) on the
// real servers, in its own schema, topics and buckets.
//   eval "$(deploy/local/infra.sh env)"; node --import tsx --test services/tampertrace/src/safe-errors.integration.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import sharp from 'sharp';
import { KafkaBus, REPO_ROOT, S3ObjectStore, allTopics, grpc, loadConfig, serviceClient, unary, type SqlClient } from '@tampertrace/shared';
import { openPostgres } from '@tampertrace/shared/pg';
import { GetAnalysisRequestSchema, IngestService, ListAnalysesRequestSchema, SubmitRequestSchema, type SubmitResponse } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { AuditService, GetTrailRequestSchema, VerifyChainRequestSchema } from '@tampertrace/shared/gen/tampertrace/v1/audit_pb';
import { serveIngest } from '@tampertrace/ingest/service';
import { startPipeline, type Embedded } from './embedded.ts';
import { SKIP_REASON, serversReady } from './cluster.testing.ts';

const INFRA = path.join(REPO_ROOT, 'deploy', 'local', 'infra.sh');
/** What must never reach a caller: an IP address, a host:port, a URL, a socket error's words. */
const ADDRESS = /\b\d{1,3}(\.\d{1,3}){3}\b|localhost|[a-z0-9.-]+:\d{2,5}\b|https?:\/\/|\bE(CONNREFUSED|CONNRESET|TIMEDOUT|AI_AGAIN)\b|getaddrinfo|s3proxy|kafka(js)?\b.*broker|postgres(ql)?:/i;

interface Answer {
  what: string;
  /** gRPC status name, or the HTTP status. */
  status: string;
  message: string;
}

if (!serversReady) {
  test('safe error messages during outages', { skip: SKIP_REASON }, () => {});
} else {
  const run = `safe${Date.now().toString(36)}${process.pid}`;
  const schema = `it_${run}`;
  let pipeline: Embedded;
  let servers: Awaited<ReturnType<typeof serveIngest>>;
  let sql: SqlClient;
  let apiKey: string;
  let known: string;
  let ingest: grpc.Client;
  let audit: grpc.Client;
  let n = 0;
  const image = () => sharp({ create: { width: 64, height: 64, channels: 3, background: { r: ++n % 256, g: 40, b: 50 } } }).png().toBuffer();

  before(async () => {
    const admin = await openPostgres(process.env.TAMPERTRACE_DATABASE_URL!, { max: 1 });
    await admin.exec(`CREATE SCHEMA ${schema}`);
    await admin.close();
    const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: await mkdtemp(path.join(os.tmpdir(), 'tt-safe-')), TAMPERTRACE_TOPIC_PREFIX: run, TAMPERTRACE_S3_BUCKET_PREFIX: `${run}-`, TAMPERTRACE_HTTP_PORT: '0', TAMPERTRACE_GRPC_PORT: '0' });
    const log = pino({ level: 'silent' });
    // A publish gives up after 5 s (60 by default), so the API answers within the probes' deadline even with two publishes queued one behind the other.
    const bus = await KafkaBus.connect({ brokers: cfg.TAMPERTRACE_KAFKA_BROKERS, clientId: run, topicPrefix: run, partitions: 1, log, publishTimeoutMs: 5000 });
    await bus.provision(allTopics());
    const store = S3ObjectStore.fromEnv({ ...process.env, TAMPERTRACE_S3_BUCKET_PREFIX: `${run}-` });
    sql = await openPostgres(process.env.TAMPERTRACE_DATABASE_URL!, { max: 4, pool: { options: `-c search_path=${schema}`, connectionTimeoutMillis: 3000 } });
    pipeline = await startPipeline(cfg, log, { bus, store, sql }, { stages: false, pepper: randomBytes(16).toString('hex') });
    apiKey = (await pipeline.ingest.tenants.create('safe-errors')).apiKey;
    servers = await serveIngest(pipeline.ingest, cfg);
    ingest = serviceClient(IngestService, `127.0.0.1:${servers.grpcPort}`, { apiKey });
    audit = serviceClient(AuditService, `127.0.0.1:${servers.grpcPort}`, { apiKey });
    known = (await unary<SubmitResponse>(ingest, 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: await image() } }))).analysisId;
  });

  after(async () => {
    // Whatever happened, every server is up again for the next test file.
    execFileSync(INFRA, ['up'], { stdio: 'ignore' });
    ingest?.close();
    audit?.close();
    await servers?.stop();
    await pipeline?.close();
    const admin = await openPostgres(process.env.TAMPERTRACE_DATABASE_URL!, { max: 1 });
    await admin.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.close();
  });

  /** Every kind of call the API answers, over gRPC and HTTP; what each answered. */
  async function probe(): Promise<Answer[]> {
    const deadline = () => ({ deadline: Date.now() + 20_000 });
    const viaGrpc = async (what: string, client: grpc.Client, method: string, req: unknown): Promise<Answer> => {
      try {
        await unary(client, method, req, deadline());
        return { what, status: 'OK', message: '' };
      } catch (err) {
        const e = err as grpc.ServiceError;
        // A deadline that passed here is this client's own verdict (its text names the peer), not an answer.
        if (e.code === grpc.status.DEADLINE_EXCEEDED && !e.metadata?.get('tt-error-code').length) return { what, status: 'no answer', message: '' };
        return { what, status: grpc.status[e.code], message: e.details };
      }
    };
    const viaHttp = async (what: string, url: string, init: RequestInit = {}): Promise<Answer> => {
      try {
        const res = await fetch(`http://127.0.0.1:${servers.httpPort}${url}`, { ...init, headers: { authorization: `Bearer ${apiKey}` }, signal: AbortSignal.timeout(20_000) });
        const text = await res.text();
        let message = '';
        try {
          message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? '';
        } catch {
          message = text;
        }
        return { what, status: String(res.status), message: res.ok ? '' : message };
      } catch (err) {
        return { what, status: 'no answer', message: String((err as Error).name) };
      }
    };
    return Promise.all([
      viaGrpc('Submit', ingest, 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: await image() } })),
      viaGrpc('GetAnalysis', ingest, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: known })),
      viaGrpc('ListAnalyses', ingest, 'listAnalyses', create(ListAnalysesRequestSchema, {})),
      viaGrpc('GetTrail', audit, 'getTrail', create(GetTrailRequestSchema, { key: { case: 'analysisId', value: known } })),
      viaGrpc('VerifyChain', audit, 'verifyChain', create(VerifyChainRequestSchema, {})),
      viaHttp('POST /v1/analyses', '/v1/analyses', { method: 'POST', body: new Uint8Array(await image()) }),
      viaHttp('GET /v1/analyses/{id}', `/v1/analyses/${known}`),
      viaHttp('GET /v1/analyses', '/v1/analyses'),
      viaHttp('GET /v1/audit/trail', `/v1/audit/trail?analysisId=${known}`),
      viaHttp('GET /v1/audit/records', '/v1/audit/records'),
    ]);
  }

  async function during(server: 'kafka' | 's3' | 'postgres'): Promise<Answer[]> {
    execFileSync(INFRA, ['down', server], { stdio: 'ignore' });
    try {
      return await probe();
    } finally {
      execFileSync(INFRA, ['up', server], { stdio: 'ignore' });
      // Back to normal before the next outage: a submission goes through again.
      for (let i = 0; ; i++) {
        const ok = await unary(ingest, 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: await image() } }), { deadline: Date.now() + 20_000 }).then(
          () => true,
          () => false,
        );
        if (ok) break;
        if (i > 20) throw new Error(`the API did not recover after ${server} came back`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  for (const server of ['s3', 'postgres', 'kafka'] as const) {
    test(`while ${server} is down, every failed call answers a typed, retriable status with a message that names no address, host, port or URL`, { timeout: 180_000 }, async () => {
      const answers = await during(server);
      const failed = answers.filter((a) => a.status !== 'OK' && !/^2\d\d$/.test(a.status));
      assert.ok(failed.length > 0, `the outage was not seen: ${JSON.stringify(answers)}`);
      for (const a of failed) {
        assert.doesNotMatch(a.message, ADDRESS, `${server} down, ${a.what}: ${a.status} ${a.message}`);
        // A dependency away is the caller's cue to retry: never INTERNAL (500).
        assert.ok(['UNAVAILABLE', 'DEADLINE_EXCEEDED', '503', '504'].includes(a.status), `${server} down, ${a.what}: ${a.status} ${a.message}`);
      }
    });
  }
}
