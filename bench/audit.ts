// The audit trail's data layer on the real PostgreSQL (and Kafka, when its address is set):
// - the append path: records/s through AuditStore.append (one in flight, and 8 in flight across 8
//   tenants), and from Kafka to the table through the audit consumer (its default concurrency of
//   1, as the audit service runs it, and 4), each with a checkpoint every 1000 records per tenant;
// - at N records across 20 tenants (tenant-0 holds about 10.5% of them; loaded through a bulk
//   path: multi-row INSERTs of records chained exactly as append() chains them): p50/p99 of
//   trail() on random analysis ids and content hashes, and of query() with a random filter per
//   call (every filter kind of the store, first page and the next one through the cursor);
// - verify() of tenant-0's first 100 000 records (all of them, when it holds fewer).
// Everything lives in this run's own schema (and topic prefix), dropped at the end.
//
// Usage: set -a; eval "$(deploy/local/infra.sh env)"; set +a; node --import tsx bench/audit.ts [N]
// (default N = 1 000 000). BENCH_OUT_AUDIT: where the JSON goes; without it the JSON is written to
// bench/results/audit.json only for N >= 1 000 000 (trial runs with a smaller N write nothing).
// Aims at 1M: trail p99 < 10 ms, query p99 < 50 ms, verify of 100 000 records < 5 s.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Kafka, logLevel } from 'kafkajs';
import pino from 'pino';
import { REPO_ROOT, Topic, encodeEvent, Header } from '@tampertrace/shared';
import { KafkaBus } from '@tampertrace/shared/kafka-bus';
import { openPostgres } from '@tampertrace/shared/pg';
import { Cue } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema, EventMetaSchema, FacesDetectedSchema, ForgeryLocalizedSchema, ImageIngestedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { runAuditConsumer } from '../services/audit/src/consumer.ts';
import { AuditStore, type AuditFilter } from '../shared/src/audit-trail/store.ts';
import { LOCALIZER_VERSIONS, REGION_NAMES, chainRecords, insertRows, prng, syntheticRecords } from '../shared/src/audit-trail/testing.ts';
import type { AuditRecordInput } from '../shared/src/audit-trail/row.ts';
import { pct } from './stats.ts';

const N = Number(process.argv[2] ?? 1_000_000);
if (!Number.isInteger(N) || N < 1000) throw new Error(`record count must be an integer >= 1000, got ${process.argv[2]}`);
const DB_URL = process.env.TAMPERTRACE_DATABASE_URL;
if (!DB_URL) throw new Error('TAMPERTRACE_DATABASE_URL is not set: run `set -a; eval "$(deploy/local/infra.sh env)"; set +a` first');
const BROKERS = process.env.TAMPERTRACE_KAFKA_BROKERS?.split(',').filter(Boolean);
const OUT = process.env.BENCH_OUT_AUDIT ? path.resolve(process.env.BENCH_OUT_AUDIT) : N >= 1_000_000 ? path.join(REPO_ROOT, 'bench', 'results', 'audit.json') : undefined;

const TENANTS = Array.from({ length: 20 }, (_, i) => ({ id: `tenant-${i}`, weight: i === 0 ? 10.5 : 89.5 / 19 }));
const VERIFY_RECORDS = 100_000;
/** Records per bulk INSERT, and such INSERTs in flight while the next chunk is hashed. */
const CHUNK = 4000;
const INSERTS_IN_FLIGHT = 2;
const APPENDS = 10_000;
const KAFKA_RECORDS = 4000;
const TRAIL_CALLS = 200;
const QUERY_FILTERS = 100; // two pages each
const PAGE = 50;
const WARM = 20;
const SPAN_MS = 90 * 86_400_000;
const START = new Date('2024-01-01T00:00:00Z');

const run = `bench_audit_${Date.now().toString(36)}`;
const note = (what: string) => process.stderr.write(`[bench-audit ${new Date().toISOString().slice(11, 19)}] ${what}\n`);
const stats = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p95: pct(xs, 95), p99: pct(xs, 99), max: Math.max(...xs) });
const loadAvg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);
const rnd = prng(42);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
const timed = async <T>(fn: () => Promise<T>): Promise<[number, T]> => {
  const t = performance.now();
  const v = await fn();
  return [performance.now() - t, v];
};

const loadAtStart = loadAvg();
const admin = await openPostgres(DB_URL, { max: 1 });
await admin.exec(`CREATE SCHEMA ${run}`);
const db = await openPostgres(DB_URL, { max: 10, pool: { options: `-c search_path=${run}` } });
const store = new AuditStore(db);
const log = pino({ level: 'silent' });
let result: Record<string, unknown> | undefined;
try {
  await store.migrate();

  // ---- Bulk load ----
  note(`loading ${N} records across ${TENANTS.length} tenants into schema ${run}`);
  const heads = new Map<string, { sequence: number; recordHash: string }>();
  /** A sample of trail keys per tenant (every 37th analysis). */
  const keys: Array<{ tenantId: string; analysisId: string; contentSha256: string }> = [];
  const seenAnalyses = new Set<string>();
  const inFlight = new Set<Promise<void>>();
  let chunk: AuditRecordInput[] = [];
  const flush = async () => {
    const rows = chainRecords(chunk, heads);
    chunk = [];
    while (inFlight.size >= INSERTS_IN_FLIGHT) await Promise.race(inFlight);
    const p: Promise<void> = insertRows(db, rows).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  const [loadMs] = await timed(async () => {
    let i = 0;
    for (const r of syntheticRecords({ tenants: TENANTS, count: N, seed: 7, start: START, spanMs: SPAN_MS })) {
      if (!seenAnalyses.has(r.analysisId) && i++ % 37 === 0) keys.push({ tenantId: r.tenantId, analysisId: r.analysisId, contentSha256: r.contentSha256 });
      seenAnalyses.add(r.analysisId);
      chunk.push(r);
      if (chunk.length === CHUNK) await flush();
    }
    if (chunk.length) await flush();
    await Promise.all(inFlight);
  });
  seenAnalyses.clear();
  const [analyzeMs] = await timed(() => db.exec('ANALYZE'));
  const tenantSizes = Object.fromEntries([...heads].map(([t, h]) => [t, h.sequence]));
  note(`loaded in ${(loadMs / 1000).toFixed(1)} s (${Math.round(N / (loadMs / 1000))} records/s), ANALYZE ${(analyzeMs / 1000).toFixed(1)} s; tenant-0 holds ${tenantSizes['tenant-0']}`);

  // ---- The append path ----
  note(`append: ${APPENDS} records one at a time, then ${APPENDS} with 8 in flight`);
  const appendRecords = (tenant: string, n: number) => [...syntheticRecords({ tenants: [{ id: tenant, weight: 1 }], count: n, seed: 11, start: new Date(START.getTime() + SPAN_MS) })].map((r) => ({ ...r, eventId: `${tenant}:${r.eventId}` }));
  const one = appendRecords('append-1', APPENDS);
  const [oneMs] = await timed(async () => {
    for (const r of one) await store.append(r, { checkpointEvery: 1000 });
  });
  const eight = Array.from({ length: 8 }, (_, k) => appendRecords(`append-8-${k}`, APPENDS / 8));
  const [eightMs] = await timed(() => Promise.all(eight.map(async (rs) => {
    for (const r of rs) await store.append(r, { checkpointEvery: 1000 });
  })));
  const append = { oneInFlightPerS: APPENDS / (oneMs / 1000), eightInFlightPerS: APPENDS / (eightMs / 1000) };
  note(`append: ${append.oneInFlightPerS.toFixed(0)}/s one in flight, ${append.eightInFlightPerS.toFixed(0)}/s with 8`);

  // ---- Kafka to the table ----
  const kafka: Record<string, unknown> = {};
  if (BROKERS?.length) {
    // One message at a time, as before records shared transactions; then the service's defaults.
    for (const [concurrency, batchWaitMs] of [[1, 0], [4, 0], [8, 0], [8, 20]]) {
      const r = await kafkaToTable(concurrency, batchWaitMs);
      kafka[`concurrency${concurrency}wait${batchWaitMs}`] = { ...r, concurrency, batchWaitMs };
      note(`Kafka -> table, consumer concurrency ${concurrency}, batch wait ${batchWaitMs} ms: ${r.recordsPerS.toFixed(0)} records/s (${r.records} records)`);
    }
  } else {
    kafka.skipped = 'TAMPERTRACE_KAFKA_BROKERS is not set';
  }

  // ---- trail ----
  note(`trail: ${TRAIL_CALLS} calls`);
  const trailCall = () => {
    const k = pick(keys);
    return rnd() < 0.5 ? store.trail(k.tenantId, { analysisId: k.analysisId }) : store.trail(k.tenantId, { contentSha256: k.contentSha256 });
  };
  for (let i = 0; i < WARM; i++) await trailCall();
  const trailMs: number[] = [];
  let trailRecords = 0;
  for (let i = 0; i < TRAIL_CALLS; i++) {
    const [ms, rows] = await timed(trailCall);
    trailMs.push(ms);
    trailRecords += rows.length;
  }

  // ---- query ----
  note(`query: ${QUERY_FILTERS} random filters, two pages of ${PAGE} each`);
  const day = 86_400_000;
  const kinds: Record<string, () => AuditFilter> = {
    time: () => {
      const from = new Date(START.getTime() + Math.floor(rnd() * (SPAN_MS - day)));
      return { from, to: new Date(from.getTime() + day) };
    },
    status: () => ({ status: pick(['PENDING', 'COMPLETED', 'NO_FACE', 'REJECTED']) }),
    verdict: () => ({ verdict: pick(['LIKELY_AUTHENTIC', 'UNCERTAIN', 'LIKELY_FORGED']) }),
    minScore: () => ({ minForgeryScore: Math.round((0.5 + rnd() * 0.49) * 100) / 100 }),
    modelVersion: () => ({ modelVersion: pick(LOCALIZER_VERSIONS) }),
    region: () => ({ region: pick(REGION_NAMES) }),
    stage: () => ({ stage: pick(['INGEST', 'FACE_DETECTION', 'FORGERY_LOCALIZATION', 'EXPLANATION']) }),
    errorCode: () => ({ errorCode: pick(['TRUNCATED_IMAGE', 'UNSUPPORTED_FORMAT', 'CORRUPT_IMAGE', 'TOO_SMALL', 'TOO_MANY_PIXELS']) }),
    combined: () => {
      const from = new Date(START.getTime() + Math.floor(rnd() * (SPAN_MS - 7 * day)));
      return { verdict: 'LIKELY_FORGED', region: pick(REGION_NAMES), from, to: new Date(from.getTime() + 7 * day) };
    },
  };
  const kindNames = Object.keys(kinds);
  const queryCall = async (sample?: (kind: string, ms: number) => void) => {
    const kind = pick(kindNames);
    const tenant = pick(TENANTS).id;
    const filter = kinds[kind]();
    const [ms1, p1] = await timed(() => store.query(tenant, filter, { limit: PAGE }));
    sample?.(kind, ms1);
    if (p1.nextCursor) {
      const [ms2] = await timed(() => store.query(tenant, filter, { limit: PAGE, cursor: p1.nextCursor }));
      sample?.(kind, ms2);
    }
  };
  for (let i = 0; i < WARM; i++) await queryCall();
  const queryMs: number[] = [];
  const byKind: Record<string, number[]> = {};
  for (let i = 0; i < QUERY_FILTERS; i++) {
    await queryCall((kind, ms) => {
      queryMs.push(ms);
      (byKind[kind] ??= []).push(ms);
    });
  }

  // ---- verify ----
  const verifyTo = Math.min(VERIFY_RECORDS, tenantSizes['tenant-0']);
  note(`verify: tenant-0, records 1..${verifyTo}`);
  const [verifyMs, v] = await timed(() => store.verify('tenant-0', { toSequence: verifyTo }));
  if (!v.ok) throw new Error(`verify failed: ${JSON.stringify(v)}`);

  const trailS = stats(trailMs);
  const queryS = stats(queryMs);
  const cpuModel = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  const ramGiB = Math.round(os.totalmem() / 2 ** 30);
  result = {
    generatedAt: new Date().toISOString(),
    machine: `${os.cpus().length} x ${cpuModel}, ${ramGiB} GiB, ${process.platform}/${process.arch}, node ${process.version}`,
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: loadAvg(),
    postgres: (await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0].v,
    records: N,
    tenants: TENANTS.length,
    tenantSizes,
    bulkLoad: { seconds: loadMs / 1000, recordsPerS: N / (loadMs / 1000), analyzeSeconds: analyzeMs / 1000 },
    appendPerS: append,
    kafkaToTable: kafka,
    trailMs: { ...trailS, meanRecords: trailRecords / TRAIL_CALLS },
    queryMs: { ...queryS, pageSize: PAGE, byKind: Object.fromEntries(Object.entries(byKind).map(([k, xs]) => [k, stats(xs)])) },
    verify: { records: v.count, seconds: verifyMs / 1000, recordsPerS: v.count / (verifyMs / 1000) },
    aims: {
      trailP99MsBelow: 10,
      queryP99MsBelow: 50,
      verify100kSecondsBelow: 5,
      met: { trail: trailS.p99 < 10, query: queryS.p99 < 50, verify: verifyMs / 1000 < 5 * (v.count / VERIFY_RECORDS) },
    },
  };
  if (OUT) {
    await mkdir(path.dirname(OUT), { recursive: true });
    await writeFile(OUT, JSON.stringify(result, null, 2) + '\n');
  }

  // ---- Table ----
  const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
  const row = (cells: string[], widths: number[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const W = [22, 8, 8, 8, 8, 6];
  console.log(`\nAudit store on ${result.machine}, PostgreSQL ${result.postgres}`);
  console.log(`${N} records across ${TENANTS.length} tenants (tenant-0: ${tenantSizes['tenant-0']}); load average ${loadAtStart.join(' ')} at the start, ${loadAvg().join(' ')} at the end`);
  if (loadAtStart[0] > 0.5) console.log('NOTE: the machine was not idle at the start, so these figures are not final');
  console.log('');
  console.log(row(['ms', 'p50', 'p95', 'p99', 'max', 'n'], W));
  console.log(row(['trail', f(trailS.p50, 2), f(trailS.p95, 2), f(trailS.p99, 2), f(trailS.max, 2), String(trailS.n)], W));
  console.log(row([`query (page ${PAGE})`, f(queryS.p50, 2), f(queryS.p95, 2), f(queryS.p99, 2), f(queryS.max, 2), String(queryS.n)], W));
  for (const [k, xs] of Object.entries(byKind).sort()) {
    const s = stats(xs);
    console.log(row([`  ${k}`, f(s.p50, 2), f(s.p95, 2), f(s.p99, 2), f(s.max, 2), String(s.n)], W));
  }
  console.log('');
  console.log(`verify: ${v.count} records in ${f(verifyMs / 1000, 2)} s (${f(v.count / (verifyMs / 1000), 0)} records/s)`);
  console.log(`append: ${f(append.oneInFlightPerS, 0)} records/s one in flight, ${f(append.eightInFlightPerS, 0)} records/s 8 in flight (8 tenants)`);
  for (const x of Object.values(kafka)) {
    console.log(typeof x === 'string' ? `Kafka -> table: ${x}` : `Kafka -> table, consumer concurrency ${(x as { concurrency: number }).concurrency}, batch wait ${(x as { batchWaitMs: number }).batchWaitMs} ms: ${f((x as { recordsPerS: number }).recordsPerS, 0)} records/s`);
  }
  console.log(`bulk load: ${f(N / (loadMs / 1000), 0)} records/s`);
  console.log('');
  console.log(`aims at 1M: trail p99 < 10 ms ${trailS.p99 < 10 ? 'met' : 'NOT met'}; query p99 < 50 ms ${queryS.p99 < 50 ? 'met' : 'NOT met'}; verify 100k < 5 s ${(result.aims as { met: { verify: boolean } }).met.verify ? 'met' : 'NOT met'}${N < 1_000_000 ? ` (this run: ${N} records)` : ''}`);
  console.log(OUT ? `written to ${path.relative(process.cwd(), OUT) || OUT}` : 'no JSON written (N < 1 000 000 and BENCH_OUT_AUDIT unset)');
} finally {
  await db.close().catch(() => {});
  await admin.exec(`DROP SCHEMA IF EXISTS ${run} CASCADE`).catch((err) => console.error(`dropping schema ${run} failed: ${String(err)}`));
  await admin.close();
}

/**
 * Publishes KAFKA_RECORDS stage events (4 per analysis, as the pipeline would) under a topic
 * prefix of their own, then starts the audit consumer and times it from joining its group until
 * every event is a record. Removes the prefix's topics and groups afterwards.
 */
async function kafkaToTable(concurrency: number, batchWaitMs: number): Promise<{ records: number; seconds: number; recordsPerS: number; joinSeconds: number }> {
  const prefix = `${run}-c${concurrency}w${batchWaitMs}`;
  const tenant = `kafka-c${concurrency}w${batchWaitMs}`;
  const bus = await KafkaBus.connect({ brokers: BROKERS!, clientId: prefix, topicPrefix: prefix, log, sessionTimeoutMs: 6000, heartbeatIntervalMs: 300, maxWaitTimeInMs: 200 });
  try {
    const sent: Array<Promise<void>> = [];
    for (let i = 0; i < KAFKA_RECORDS / 4; i++) {
      const analysisId = `${prefix}-a${i}`;
      const meta = (stage: string) => create(EventMetaSchema, {
        eventId: `${analysisId}:${stage}`, analysisId, tenantId: tenant, contentSha256: 'ab'.repeat(32),
        occurredAt: timestampFromDate(new Date()), sourceName: `img-${i}.jpg`,
      });
      const models = [{ name: 'tt-localizer', version: '0.3.1', sha256: 'c2'.repeat(32) }];
      const faces = [{ index: 0, box: { x: 10, y: 20, width: 120, height: 140 }, detectionScore: 0.98, forgeryScore: 0.7, regions: REGION_NAMES.slice(0, 6).map((name, k) => ({ name, score: 0.1 * k, coverage: k % 2 ? 0.3 : 0 })) }];
      const msgs = [
        encodeEvent(Topic.imageIngested, ImageIngestedSchema, create(ImageIngestedSchema, { meta: meta('ingest') })),
        encodeEvent(Topic.facesDetected, FacesDetectedSchema, create(FacesDetectedSchema, { meta: meta('face-detection'), models, faces: [{ box: faces[0].box, score: 0.98 }] })),
        encodeEvent(Topic.forgeryLocalized, ForgeryLocalizedSchema, create(ForgeryLocalizedSchema, { meta: meta('forgery-localization'), models, faces, verdict: Verdict.UNCERTAIN, status: AnalysisStatus.PENDING })),
        encodeEvent(Topic.analysisCompleted, AnalysisCompletedSchema, create(AnalysisCompletedSchema, {
          meta: meta('explanation'),
          analysis: { analysisId, tenantId: tenant, contentSha256: 'ab'.repeat(32), status: AnalysisStatus.COMPLETED, verdict: Verdict.UNCERTAIN, maxForgeryScore: 0.7, models, faces, explanation: { text: 'The left eye looks blurrier than its surroundings.', facts: [{ faceIndex: 0, region: 'left eye', cue: Cue.BLUR, value: -0.2, unit: 'log-ratio' }] } },
        })),
      ];
      for (const m of msgs) {
        m.headers[Header.traceparent] = `00-${(i + 1).toString(16).padStart(32, '0')}-${'1'.repeat(16)}-01`;
        sent.push(bus.publish(m));
      }
    }
    await Promise.all(sent);
    const t0 = performance.now();
    const sub = await runAuditConsumer(bus, store, log, { concurrency, batchWaitMs, checkpointEvery: 1000, checkpointIntervalMs: 0 });
    const tJoin = performance.now();
    const atJoin = await store.count(tenant);
    for (;;) {
      const n = await store.count(tenant);
      if (n >= KAFKA_RECORDS) break;
      if (performance.now() - t0 > 600_000) throw new Error(`Kafka -> table: only ${n} of ${KAFKA_RECORDS} records after 10 minutes`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = (performance.now() - tJoin) / 1000;
    await sub.stop();
    return { records: KAFKA_RECORDS - atJoin, seconds, recordsPerS: (KAFKA_RECORDS - atJoin) / seconds, joinSeconds: (tJoin - t0) / 1000 };
  } finally {
    await bus.close().catch(() => {});
    const kadmin = new Kafka({ clientId: `${prefix}-cleanup`, brokers: BROKERS!, logLevel: logLevel.NOTHING }).admin();
    await kadmin.connect();
    try {
      const topics = (await kadmin.listTopics()).filter((t) => t.startsWith(`${prefix}.`));
      if (topics.length) await kadmin.deleteTopics({ topics });
      const groups = (await kadmin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(`${prefix}.`));
      if (groups.length) await kadmin.deleteGroups(groups);
    } finally {
      await kadmin.disconnect();
    }
  }
}
