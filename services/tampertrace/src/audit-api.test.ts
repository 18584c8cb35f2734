// AuditService over real gRPC and its HTTP twin, both served by the ingest service's servers on
// the embedded pipeline, with two tenants: trails, filtered pages, exports, chain verification
// (also after a row is tampered with in the database) and tenant isolation on every method.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create, fromJson, type JsonValue, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { pino } from 'pino';
import sharp from 'sharp';
import { FsObjectStore, InMemoryBus, PIPELINE, decodeRgb, grpc, loadConfig, serviceClient, sha256Hex, unary, type SqlClient } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { astronautPng, cameraPng, grpcError } from '@tampertrace/shared/testing';
import { AnalysisStatus, ErrorCode, Stage, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import {
  AuditFilterSchema,
  AuditService,
  ExportFormat,
  ExportRecordsRequestSchema,
  GetTrailRequestSchema,
  ListCheckpointsRequestSchema,
  QueryRecordsRequestSchema,
  QueryRecordsResponseSchema,
  VerifyChainRequestSchema,
  type AuditFilter,
  type AuditRecord,
  type ExportRecordsResponse,
  type GetTrailResponse,
  type ListCheckpointsResponse,
  type QueryRecordsResponse,
  type VerifyChainResponse,
} from '@tampertrace/shared/gen/tampertrace/v1/audit_pb';
import { makeSelfBlended, toPng } from '@tampertrace/forgery-localization/sbi';
import { CSV_COLUMNS } from '@tampertrace/shared/audit-trail/store';
import { serveIngest } from '@tampertrace/ingest/service';
import { loadModels, startPipeline, type Embedded } from './embedded.ts';

const A = 'tenant-a';
const B = 'tenant-b';
let pipeline: Embedded;
let sql: SqlClient;
let servers: Awaited<ReturnType<typeof serveIngest>>;
let base: string;
const keys: Record<string, string> = {};
const clients: grpc.Client[] = [];
let grpcAddr: string;
/** Analyses per tenant: name -> id and content hash. */
const ids: Record<string, Record<string, { analysisId: string; contentSha256: string }>> = { [A]: {}, [B]: {} };

const client = (apiKey?: string) => {
  const c = serviceClient(AuditService, grpcAddr, { apiKey });
  clients.push(c);
  return c;
};

before(async () => {
  const home = await mkdtemp(path.join(os.tmpdir(), 'tt-audit-api-'));
  const cfg = loadConfig({
    ...process.env,
    TAMPERTRACE_HOME: home,
    TAMPERTRACE_GRPC_PORT: '0',
    TAMPERTRACE_HTTP_PORT: '0',
    TAMPERTRACE_MAX_INPUT_BYTES: '2000000',
    // Checkpoints in the append's transaction every 3 records, so the chain has some.
    TAMPERTRACE_AUDIT_CHECKPOINT_EVERY: '3',
  });
  const log = pino({ level: 'silent' });
  // A self-blended forgery, so that records name regions.
  const src = await decodeRgb(astronautPng(), { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 });
  const models = await loadModels(cfg);
  const [face] = await models.detector.detect(src);
  await Promise.all([models.detector.close(), models.model.close()]);
  const forged = await toPng((await makeSelfBlended(src, face, { regions: ['nose', 'mouth', 'lip'], transform: 'colour+blur', seed: 11 })).rgb);
  const noise = Buffer.alloc(320 * 240 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 7) % 251;
  const noface = await sharp(noise, { raw: { width: 320, height: 240, channels: 3 } }).blur(3).jpeg().toBuffer();

  const bus = new InMemoryBus();
  sql = await openPglite(path.join(home, 'db'));
  pipeline = await startPipeline(cfg, log, { bus, store: new FsObjectStore(path.join(home, 'objects')), sql, idle: () => bus.idle() }, { pepper: 'audit-api-test-pepper-0123456789' });
  for (const t of [A, B]) keys[t] = (await pipeline.ingest.tenants.create(t)).apiKey;
  servers = await serveIngest(pipeline.ingest, cfg);
  grpcAddr = `127.0.0.1:${servers.grpcPort}`;
  base = `http://127.0.0.1:${servers.httpPort}`;

  const inputs: Array<[string, string, Uint8Array]> = [
    [A, 'camera', cameraPng()],
    [A, 'forged', forged],
    [A, 'text', Buffer.from('just some text that pretends to be a JPEG\n')],
    [A, 'noface', noface],
    [B, 'camera', cameraPng()],
    [B, 'astronaut', astronautPng()],
  ];
  for (const [tenantId, name, bytes] of inputs) {
    const r = await pipeline.ingest.submission.submit(bytes, { tenantId, sourceName: `${name}.png` });
    ids[tenantId][name] = { analysisId: r.analysisId, contentSha256: r.contentSha256 };
    await pipeline.ingest.results.wait(tenantId, r.analysisId);
  }
  await bus.idle();
});

after(async () => {
  for (const c of clients) c.close();
  await servers?.stop();
  await pipeline?.close();
});

/** fetch with a tenant's key (or none). */
const http = (pathAndQuery: string, apiKey?: string, init: RequestInit = {}) =>
  fetch(`${base}${pathAndQuery}`, { ...init, headers: { ...(init.headers as Record<string, string>), ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) } });
const httpJson = async (pathAndQuery: string, apiKey: string, init: RequestInit = {}) => {
  const res = await http(pathAndQuery, apiKey, init);
  assert.equal(res.status, 200, `${pathAndQuery}: ${res.status}`);
  return (await res.json()) as JsonValue;
};

const trail = (c: grpc.Client, key: { case: 'analysisId' | 'contentSha256'; value: string }) =>
  unary<GetTrailResponse>(c, 'getTrail', create(GetTrailRequestSchema, { key })).then((r) => r.records);

/** Every page of QueryRecords over gRPC with `pageSize`, checking that no record comes twice. */
async function queryAll(c: grpc.Client, filter: AuditFilter | undefined, pageSize = 2): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  let pageToken = '';
  do {
    const page = await unary<QueryRecordsResponse>(c, 'queryRecords', create(QueryRecordsRequestSchema, { filter, pageSize, pageToken }));
    assert.ok(page.records.length <= pageSize);
    out.push(...page.records);
    pageToken = page.nextPageToken;
  } while (pageToken);
  assert.equal(new Set(out.map((r) => r.sequence)).size, out.length, 'no record on two pages');
  return out;
}

/** The same over HTTP, with the filter as query parameters. */
async function queryAllHttp(apiKey: string, params: Record<string, string>, pageSize = 2): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  let pageToken = '';
  do {
    const q = new URLSearchParams({ ...params, pageSize: String(pageSize), ...(pageToken ? { pageToken } : {}) });
    const page = fromJson(QueryRecordsResponseSchema, await httpJson(`/v1/audit/records?${q}`, apiKey));
    out.push(...page.records);
    pageToken = page.nextPageToken;
  } while (pageToken);
  assert.equal(new Set(out.map((r) => r.sequence)).size, out.length, 'no record on two pages');
  return out;
}

async function exportGrpc(c: grpc.Client, format: ExportFormat, filter?: AuditFilter): Promise<string> {
  const stream = (c as unknown as { exportRecords(r: unknown): AsyncIterable<ExportRecordsResponse> }).exportRecords(create(ExportRecordsRequestSchema, { format, filter }));
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk.data);
  return Buffer.concat(parts).toString('utf8');
}

const seqs = (rs: AuditRecord[]) => rs.map((r) => Number(r.sequence)).sort((a, b) => a - b);
const descending = (rs: AuditRecord[]) =>
  rs.every((r, i) => i === 0 || timestampDate(rs[i - 1].eventTime!).getTime() > timestampDate(r.eventTime!).getTime() || (timestampDate(rs[i - 1].eventTime!).getTime() === timestampDate(r.eventTime!).getTime() && rs[i - 1].sequence > r.sequence));

test('GetTrail returns the tenant\'s records of an analysis in stage order, over gRPC and HTTP', async () => {
  const a = client(keys[A]);
  const { analysisId, contentSha256 } = ids[A].forged;
  const records = await trail(a, { case: 'analysisId', value: analysisId });
  // One record per stage of the pipeline, in its order (shared/src/pipeline.ts).
  assert.deepEqual(records.map((r) => r.stage), [Stage.INGEST, ...PIPELINE.map((s) => s.stage)]);
  for (const r of records) {
    assert.equal(r.tenantId, A);
    assert.equal(r.analysisId, analysisId);
    assert.equal(r.contentSha256, contentSha256);
    assert.equal(r.sourceName, 'forged.png');
    assert.match(r.recordHash, /^[0-9a-f]{64}$/);
    assert.match(r.prevHash, /^[0-9a-f]{64}$/);
    assert.equal(r.hashVersion, 2);
  }
  const final = (await pipeline.ingest.listing.get(A, analysisId))!;
  const [, , detected, localized, last] = records;
  assert.equal(detected.faces.length, 1);
  assert.ok(detected.faces[0].detectionScore > 0.6, 'the detection record keeps the detection score');
  assert.ok(detected.models.length > 0 && detected.models[0].version);
  assert.ok(localized.regions.length > 0, 'the forgery names regions');
  assert.equal(last.status, AnalysisStatus.COMPLETED);
  assert.equal(last.verdict, final.verdict);
  assert.equal(last.explanation?.text, final.explanation?.text);
  assert.equal(last.explanation?.facts.length, final.explanation?.facts.length);
  assert.equal(last.maxForgeryScore, final.maxForgeryScore);
  assert.equal(last.faces[0].forgeryScore, final.faces[0].forgeryScore);

  // The rejected input's trail ends with its error.
  const rejected = await trail(a, { case: 'analysisId', value: ids[A].text.analysisId });
  assert.equal(rejected.at(-1)!.status, AnalysisStatus.REJECTED);
  assert.equal(rejected.at(-1)!.error?.code, ErrorCode.UNSUPPORTED_FORMAT);

  // By content hash: every analysis of those bytes (one here), in the same order.
  assert.deepEqual((await trail(a, { case: 'contentSha256', value: contentSha256 })).map((r) => r.eventId), records.map((r) => r.eventId));

  const viaHttp = (await httpJson(`/v1/audit/trail?analysisId=${analysisId}`, keys[A])) as { records: Array<{ stage: string; sequence: string; recordHash: string }> };
  assert.deepEqual(viaHttp.records.map((r) => r.stage), [Stage.INGEST, ...PIPELINE.map((s) => s.stage)].map((s) => `STAGE_${Stage[s]}`));
  assert.deepEqual(viaHttp.records.map((r) => r.recordHash), records.map((r) => r.recordHash));
  const byHash = (await httpJson(`/v1/audit/trail?contentSha256=${contentSha256}`, keys[A])) as { records: unknown[] };
  assert.equal(byHash.records.length, PIPELINE.length + 1);

  // An unknown analysis is an empty trail; a malformed key is INVALID_ARGUMENT / 422.
  assert.deepEqual(await trail(a, { case: 'analysisId', value: '01a21cbd-0000-7000-8000-000000000000' }), []);
  assert.equal((await grpcError(trail(a, { case: 'contentSha256', value: 'not-a-hash' }))).code, grpc.status.INVALID_ARGUMENT);
  assert.equal((await grpcError(unary(a, 'getTrail', create(GetTrailRequestSchema, {})))).code, grpc.status.INVALID_ARGUMENT);
  assert.equal((await http('/v1/audit/trail', keys[A])).status, 422);
});

test('QueryRecords: each filter returns exactly the matching records, and pages cover everything once', async () => {
  const a = client(keys[A]);
  const all = await queryAll(a, undefined);
  assert.ok(descending(all), 'newest first');
  // Tenant A's chain: 4 analyses, sequences 1..n without a gap.
  assert.deepEqual(seqs(all), Array.from({ length: all.length }, (_, i) => i + 1));
  assert.ok(all.length >= 13, `${all.length} records`);
  assert.deepEqual(seqs(await queryAll(a, undefined, 1000)), seqs(all));
  assert.deepEqual(seqs(await queryAllHttp(keys[A], {})), seqs(all));

  const byTime = [...all].sort((x, y) => timestampDate(x.eventTime!).getTime() - timestampDate(y.eventTime!).getTime());
  const from = timestampDate(byTime[3].eventTime!);
  const to = timestampDate(byTime.at(-3)!.eventTime!);
  const localized = all.find((r) => r.stage === Stage.FORGERY_LOCALIZATION && r.regions.length > 0)!;
  const scores = all.map((r) => r.maxForgeryScore).filter((s) => s > 0).sort();
  const minScore = scores[Math.floor(scores.length / 2)];
  const version = localized.models.at(-1)!.version;
  const region = localized.regions[0];
  const final = all.find((r) => r.stage === Stage.EXPLANATION && r.verdict)!;

  const cases: Array<{ name: string; filter: MessageInitShape<typeof AuditFilterSchema>; params: Record<string, string>; want: (r: AuditRecord) => boolean }> = [
    { name: 'time range', filter: { fromTime: timestampFromDate(from), toTime: timestampFromDate(to) }, params: { from: from.toISOString(), to: to.toISOString() }, want: (r) => timestampDate(r.eventTime!) >= from && timestampDate(r.eventTime!) < to },
    { name: 'status', filter: { status: AnalysisStatus.REJECTED }, params: { status: 'REJECTED' }, want: (r) => r.status === AnalysisStatus.REJECTED },
    { name: 'verdict', filter: { verdict: final.verdict }, params: { verdict: `VERDICT_${Verdict[final.verdict]}` }, want: (r) => r.verdict === final.verdict },
    { name: 'min score', filter: { minForgeryScore: minScore }, params: { minForgeryScore: String(minScore) }, want: (r) => r.maxForgeryScore >= minScore && r.maxForgeryScore > 0 },
    { name: 'model version', filter: { modelVersion: version }, params: { modelVersion: version }, want: (r) => r.models.some((m) => m.version === version) },
    { name: 'region', filter: { region }, params: { region }, want: (r) => r.regions.includes(region) },
    { name: 'stage', filter: { stage: Stage.FACE_DETECTION }, params: { stage: 'STAGE_FACE_DETECTION' }, want: (r) => r.stage === Stage.FACE_DETECTION },
    { name: 'error code', filter: { errorCode: ErrorCode.UNSUPPORTED_FORMAT }, params: { errorCode: 'unsupported_format' }, want: (r) => r.error?.code === ErrorCode.UNSUPPORTED_FORMAT },
    { name: 'stage and status', filter: { stage: Stage.EXPLANATION, status: AnalysisStatus.COMPLETED }, params: { stage: 'EXPLANATION', status: 'COMPLETED' }, want: (r) => r.stage === Stage.EXPLANATION && r.status === AnalysisStatus.COMPLETED },
  ];
  for (const c of cases) {
    const want = seqs(all.filter(c.want));
    assert.ok(want.length > 0 && want.length < all.length, `${c.name}: the filter selects some records (${want.length})`);
    const got = await queryAll(a, create(AuditFilterSchema, c.filter));
    assert.ok(descending(got), `${c.name}: newest first`);
    assert.deepEqual(seqs(got), want, `${c.name} over gRPC`);
    assert.deepEqual(seqs(await queryAllHttp(keys[A], c.params)), want, `${c.name} over HTTP`);
  }

  // A cursor that this service did not issue, and nonsense filters, are the caller's errors.
  assert.equal((await grpcError(unary(a, 'queryRecords', create(QueryRecordsRequestSchema, { pageToken: 'bogus' })))).code, grpc.status.INVALID_ARGUMENT);
  assert.equal((await grpcError(unary(a, 'queryRecords', create(QueryRecordsRequestSchema, { filter: { minForgeryScore: 2 } })))).code, grpc.status.INVALID_ARGUMENT);
  for (const q of ['pageToken=bogus', 'status=SOMEWHAT', 'from=yesterday', 'minForgeryScore=high', 'pageSize=-1']) {
    const res = await http(`/v1/audit/records?${q}`, keys[A]);
    assert.equal(res.status, 422, q);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'ERROR_CODE_INVALID_MESSAGE');
  }
});

test('ExportRecords streams JSON lines that parse and CSV with a header, over gRPC and HTTP', async () => {
  const a = client(keys[A]);
  const all = await queryAll(a, undefined, 1000);
  for (const text of [await exportGrpc(a, ExportFormat.JSONL), await exportGrpc(a, ExportFormat.UNSPECIFIED)]) {
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as { sequence: number; tenantId: string; recordHash: string });
    assert.deepEqual(lines.map((l) => l.sequence), all.map((r) => Number(r.sequence)), 'query order');
    assert.ok(lines.every((l) => l.tenantId === A));
    assert.deepEqual(lines.map((l) => l.recordHash), all.map((r) => r.recordHash));
  }
  const csv = await exportGrpc(a, ExportFormat.CSV);
  const rows = csv.split('\r\n').filter(Boolean);
  assert.equal(rows[0], CSV_COLUMNS.join(','));
  assert.equal(rows.length, all.length + 1);

  const rejected = await exportGrpc(a, ExportFormat.JSONL, create(AuditFilterSchema, { status: AnalysisStatus.REJECTED }));
  assert.ok(rejected.trimEnd().split('\n').every((l) => JSON.parse(l).status === 'REJECTED'));

  const jsonl = await http('/v1/audit/export?format=jsonl', keys[A]);
  assert.equal(jsonl.status, 200);
  assert.equal(jsonl.headers.get('content-type'), 'application/x-ndjson');
  assert.equal((await jsonl.text()).trimEnd().split('\n').map((l) => JSON.parse(l)).length, all.length);
  const csvRes = await http('/v1/audit/export?format=csv&status=REJECTED', keys[A]);
  assert.equal(csvRes.headers.get('content-type'), 'text/csv; charset=utf-8');
  const csvRows = (await csvRes.text()).split('\r\n').filter(Boolean);
  assert.equal(csvRows[0], CSV_COLUMNS.join(','));
  assert.equal(csvRows.length - 1, all.filter((r) => r.status === AnalysisStatus.REJECTED).length);

  assert.equal((await http('/v1/audit/export?format=xml', keys[A])).status, 422);
  assert.equal((await http('/v1/audit/export?status=MAYBE', keys[A])).status, 422);
  assert.equal((await grpcError(exportGrpc(a, 7 as ExportFormat))).code, grpc.status.INVALID_ARGUMENT);
});

test('VerifyChain and ListCheckpoints: the chain verifies, also against the checkpoints kept by the caller', async () => {
  const a = client(keys[A]);
  const count = (await queryAll(a, undefined, 1000)).length;
  const v = await unary<VerifyChainResponse>(a, 'verifyChain', create(VerifyChainRequestSchema, {}));
  assert.deepEqual([v.ok, Number(v.count)], [true, count]);
  const ranged = await unary<VerifyChainResponse>(a, 'verifyChain', create(VerifyChainRequestSchema, { fromSequence: 2n, toSequence: 5n }));
  assert.deepEqual([ranged.ok, Number(ranged.count)], [true, 4]);

  const cps = (await unary<ListCheckpointsResponse>(a, 'listCheckpoints', create(ListCheckpointsRequestSchema, {}))).checkpoints;
  assert.equal(cps.length, Math.floor(count / 3), 'one checkpoint every 3 records');
  assert.deepEqual(cps.map((c) => Number(c.recordSequence)), cps.map((_, i) => 3 * (i + 1)));
  assert.ok(cps.every((c) => c.tenantId === A));
  const later = (await unary<ListCheckpointsResponse>(a, 'listCheckpoints', create(ListCheckpointsRequestSchema, { since: 1n }))).checkpoints;
  assert.equal(later.length, cps.length - 1);
  const kept = await unary<VerifyChainResponse>(a, 'verifyChain', create(VerifyChainRequestSchema, { checkpoints: cps }));
  assert.equal(kept.ok, true, kept.reason);
  // A kept copy that differs from the stored checkpoint is named.
  const forged = { ...cps[0], checkpointHash: 'f'.repeat(64) };
  const bad = await unary<VerifyChainResponse>(a, 'verifyChain', create(VerifyChainRequestSchema, { checkpoints: [forged] }));
  assert.deepEqual([bad.ok, Number(bad.failedSequence)], [false, 3]);
  assert.match(bad.reason, /differs from the kept copy/);

  const viaHttp = (await httpJson('/v1/audit/verify', keys[A], { method: 'POST', body: '' })) as { ok: boolean; count: string };
  assert.deepEqual(viaHttp, { ok: true, count: String(count), failedSequence: '0', reason: '' });
  const httpCps = (await httpJson('/v1/audit/checkpoints', keys[A])) as { checkpoints: unknown[] };
  assert.equal(httpCps.checkpoints.length, cps.length);
  const keptHttp = (await httpJson('/v1/audit/verify', keys[A], { method: 'POST', body: JSON.stringify({ fromSequence: '1', checkpoints: httpCps.checkpoints }) })) as { ok: boolean };
  assert.equal(keptHttp.ok, true);
  assert.deepEqual(await httpJson('/v1/audit/verify?fromSequence=2&toSequence=5', keys[A]), { ok: true, count: '4', failedSequence: '0', reason: '' });
  assert.equal((await http('/v1/audit/verify', keys[A], { method: 'POST', body: '{"fromSequence": "x"}' })).status, 422);
  assert.equal((await grpcError(unary(a, 'verifyChain', create(VerifyChainRequestSchema, { fromSequence: -1n })))).code, grpc.status.INVALID_ARGUMENT);
});

test('tenant A\'s key never reads tenant B\'s records, through any method', async () => {
  const a = client(keys[A]);
  const countA = (await queryAll(a, undefined, 1000)).length;
  const countB = (await queryAll(client(keys[B]), undefined, 1000)).length;
  assert.ok(countB >= 8, `B has ${countB} records`);
  // B's analysis id and B's own content hash: nothing, exactly like an unknown key.
  assert.deepEqual(await trail(a, { case: 'analysisId', value: ids[B].camera.analysisId }), []);
  assert.deepEqual(await trail(a, { case: 'contentSha256', value: ids[B].astronaut.contentSha256 }), []);
  // Bytes both tenants submitted: only A's own analysis.
  const shared = await trail(a, { case: 'contentSha256', value: sha256Hex(cameraPng()) });
  assert.ok(shared.length === PIPELINE.length + 1 && shared.every((r) => r.tenantId === A && r.analysisId === ids[A].camera.analysisId));
  for (const q of [`analysisId=${ids[B].camera.analysisId}`, `contentSha256=${ids[B].astronaut.contentSha256}`]) {
    assert.deepEqual(await httpJson(`/v1/audit/trail?${q}`, keys[A]), { records: [] }, q);
  }
  const all = await queryAll(a, undefined);
  assert.ok(all.every((r) => r.tenantId === A));
  assert.ok((await queryAllHttp(keys[A], {})).every((r) => r.tenantId === A));
  // B's page token only moves a position within A's own records.
  const bPage = await unary<QueryRecordsResponse>(client(keys[B]), 'queryRecords', create(QueryRecordsRequestSchema, { pageSize: 1 }));
  const withB = await unary<QueryRecordsResponse>(a, 'queryRecords', create(QueryRecordsRequestSchema, { pageToken: bPage.nextPageToken, pageSize: 1000 }));
  assert.ok(withB.records.every((r) => r.tenantId === A));
  assert.ok((await exportGrpc(a, ExportFormat.JSONL)).trimEnd().split('\n').every((l) => JSON.parse(l).tenantId === A));
  assert.ok((await (await http('/v1/audit/export', keys[A])).text()).trimEnd().split('\n').every((l) => JSON.parse(l).tenantId === A));
  const csv = (await exportGrpc(a, ExportFormat.CSV)).split('\r\n').filter(Boolean);
  assert.equal(csv.length - 1, countA);
  assert.ok(!csv.some((l) => l.includes(B)));
  const v = await unary<VerifyChainResponse>(a, 'verifyChain', create(VerifyChainRequestSchema, {}));
  assert.equal(Number(v.count), countA);
  assert.equal(((await httpJson('/v1/audit/verify', keys[A])) as { count: string }).count, String(countA));
  const cps = (await unary<ListCheckpointsResponse>(a, 'listCheckpoints', create(ListCheckpointsRequestSchema, {}))).checkpoints;
  assert.ok(cps.every((c) => c.tenantId === A));
  assert.ok(((await httpJson('/v1/audit/checkpoints', keys[A])) as { checkpoints: Array<{ tenantId: string }> }).checkpoints.every((c) => c.tenantId === A));
});

test('a missing or unknown key is UNAUTHENTICATED on every method, 401 on every path', async () => {
  for (const key of [undefined, 'tt_0000000000000000_not-a-real-key-not-a-real-key-not-a-real-k']) {
    const c = client(key);
    const calls: Array<Promise<unknown>> = [
      trail(c, { case: 'analysisId', value: ids[A].camera.analysisId }),
      unary(c, 'queryRecords', create(QueryRecordsRequestSchema, {})),
      exportGrpc(c, ExportFormat.JSONL),
      unary(c, 'verifyChain', create(VerifyChainRequestSchema, {})),
      unary(c, 'listCheckpoints', create(ListCheckpointsRequestSchema, {})),
    ];
    for (const p of calls) {
      const err = await grpcError(p);
      assert.equal(err.code, grpc.status.UNAUTHENTICATED);
      assert.equal(err.metadata.get('tt-error-code')[0], 'UNAUTHENTICATED');
    }
    for (const [p, method] of [[`/v1/audit/trail?analysisId=${ids[A].camera.analysisId}`, 'GET'], ['/v1/audit/records', 'GET'], ['/v1/audit/export', 'GET'], ['/v1/audit/verify', 'POST'], ['/v1/audit/checkpoints', 'GET']]) {
      const res = await http(p, key, { method });
      assert.equal(res.status, 401, p);
    }
  }
});

test('a record changed in the database is named by VerifyChain (gRPC, HTTP, and the store the CLI reads); the other tenant\'s chain still verifies', async () => {
  const a = client(keys[A]);
  const victim = (await trail(a, { case: 'analysisId', value: ids[A].camera.analysisId }))[2];
  const seq = Number(victim.sequence);
  // The table refuses updates (a trigger); the embedded superuser can switch that off, as an intruder with the database would.
  await sql.query('ALTER TABLE audit_records DISABLE TRIGGER ALL');
  await sql.query("UPDATE audit_records SET source_name = 'innocent.png' WHERE tenant_id = $1 AND sequence = $2", [A, seq]);
  await sql.query('ALTER TABLE audit_records ENABLE TRIGGER ALL');

  const v = await unary<VerifyChainResponse>(a, 'verifyChain', create(VerifyChainRequestSchema, {}));
  assert.deepEqual([v.ok, Number(v.failedSequence), v.reason], [false, seq, 'record content does not match its hash']);
  assert.deepEqual(await httpJson('/v1/audit/verify', keys[A]), { ok: false, count: '0', failedSequence: String(seq), reason: 'record content does not match its hash' });
  assert.deepEqual(await pipeline.audit!.verify(A), { ok: false, sequence: seq, reason: 'record content does not match its hash' });
  // A range that ends before it still verifies; B's chain is untouched.
  assert.equal((await unary<VerifyChainResponse>(a, 'verifyChain', create(VerifyChainRequestSchema, { toSequence: BigInt(seq - 1) }))).ok, true);
  assert.equal((await unary<VerifyChainResponse>(client(keys[B]), 'verifyChain', create(VerifyChainRequestSchema, {}))).ok, true);
});
