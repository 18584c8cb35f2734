// The HTTP/JSON endpoint on the ingest service alone (service.testing.ts: PGlite, the in-memory
// bus, a local store, the stages played by the test): routes, keys, proto3 JSON answers, the
// event stream, the query-string parsers, and refusals as typed JSON errors. The whole pipeline
// behind the same server is services/tampertrace/src/http.test.ts's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { Bucket, CallerError, ObjectKey, intermediateEvents, sha256Hex } from '@tampertrace/shared';
import { AnalysisStatus, ErrorCode, ObjectRefSchema, Stage, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { auditFilterOf, serveHttp } from './http.ts';
import { openIngestUnderTest, png, type IngestUnderTest } from './service.testing.ts';

let t: IngestUnderTest;
let server: Server;
let base: string;
let tenantId: string;
let apiKey: string;

before(async () => {
  t = await openIngestUnderTest({ TAMPERTRACE_MAX_INPUT_BYTES: '20000' });
  server = await serveHttp(t.ingest, t.cfg);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  ({ tenantId, apiKey } = await t.tenant());
});

after(async () => {
  server?.closeAllConnections();
  if (server) await new Promise((r) => server.close(r));
  await t?.close();
});

/** fetch with the tenant's API key (or `key`). */
const api = (p: string, init: RequestInit = {}, key = apiKey) => fetch(`${base}${p}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${key}` } });
const post = (bytes: Uint8Array, query = '', headers: Record<string, string> = {}) => api(`/v1/analyses${query}`, { method: 'POST', body: new Uint8Array(bytes), headers });
/** The analysis as ingest holds it (the test's way to play the stages with it). */
const held = async (id: string): Promise<Analysis> => (await t.ingest.listing.get(tenantId, id))!;

/** Status and error code of a refused request; the body is always {error: {code, message}}. */
async function refusal(res: Response): Promise<[number, string]> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(typeof body.error.message, 'string');
  return [res.status, body.error.code];
}

test('GET /healthz answers without a key; every API route without a valid key is 401', async () => {
  const health = await fetch(`${base}/healthz`);
  assert.deepEqual([health.status, await health.json()], [200, { status: 'ok' }]);
  for (const [method, p] of [['GET', '/v1/analyses'], ['POST', '/v1/analyses'], ['GET', '/v1/analyses/01a21cbd-0000-7000-8000-000000000000'], ['GET', '/v1/audit/trail']]) {
    assert.deepEqual(await refusal(await fetch(`${base}${p}`, { method })), [401, 'ERROR_CODE_UNAUTHENTICATED'], p);
    assert.deepEqual(await refusal(await api(p, { method }, 'tt_nope')), [401, 'ERROR_CODE_UNAUTHENTICATED'], p);
  }
});

test('POST raw bytes answers 202 with the id; the same bytes again are deduplicated unless ?reanalyze=true', async () => {
  const bytes = await png(1);
  const res = await post(bytes, '', { 'x-source-name': 'one.png' });
  assert.equal(res.status, 202);
  const first = (await res.json()) as { analysisId: string; contentSha256: string; deduplicated: boolean };
  assert.deepEqual([first.contentSha256, first.deduplicated], [sha256Hex(bytes), false]);
  assert.equal((await held(first.analysisId)).sourceName, 'one.png');
  const again = (await (await post(bytes)).json()) as typeof first;
  assert.deepEqual([again.analysisId, again.deduplicated], [first.analysisId, true]);
  const fresh = (await (await post(bytes, '?reanalyze=true')).json()) as typeof first;
  assert.notEqual(fresh.analysisId, first.analysisId);
});

test('POST a SubmitRequest in proto3 JSON; malformed JSON is 422 INVALID_MESSAGE', async () => {
  const bytes = await png(2);
  const res = await api('/v1/analyses', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ content: bytes.toString('base64'), sourceName: 'json.png' }) });
  assert.equal(res.status, 202);
  const { analysisId } = (await res.json()) as { analysisId: string };
  assert.equal((await held(analysisId)).sourceName, 'json.png');
  const bad = await api('/v1/analyses', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"content": 12' });
  assert.deepEqual(await refusal(bad), [422, 'ERROR_CODE_INVALID_MESSAGE']);
});

test('a refused image is its code\'s HTTP status with the REJECTED analysis\'s id; one over the byte limit is 413', async () => {
  const garbage = await post(Buffer.from('not an image at all'));
  const body = (await garbage.json()) as { error: { code: string }; analysisId: string };
  assert.deepEqual([garbage.status, body.error.code], [422, 'ERROR_CODE_UNSUPPORTED_FORMAT']);
  await t.bus.idle();
  assert.equal((await held(body.analysisId)).status, AnalysisStatus.REJECTED);
  const big = await post(Buffer.alloc(t.cfg.TAMPERTRACE_MAX_INPUT_BYTES + 1, 7));
  assert.deepEqual(await refusal(big), [413, 'ERROR_CODE_TOO_LARGE']);
});

test('?wait=true answers once the final state is recorded, with the whole analysis in proto3 JSON', async () => {
  const bytes = await png(3);
  const waiting = post(bytes, '?wait=true');
  // The row is recorded before the event goes out: once it is there, the pipeline can "end" it.
  const rowOf = () => t.sql.query<{ id: string }>('SELECT analysis_id AS id FROM analyses WHERE tenant_id = $1 AND content_sha256 = $2', [tenantId, sha256Hex(bytes)]);
  let rows;
  while ((rows = (await rowOf()).rows).length === 0) await new Promise((r) => setTimeout(r, 10));
  const a = await held(rows[0].id);
  await t.finish(a, { verdict: Verdict.LIKELY_FORGED, maxForgeryScore: 0.75 });
  const res = await waiting;
  assert.equal(res.status, 200);
  const json = (await res.json()) as Record<string, unknown>;
  assert.deepEqual([json.analysisId, json.status, json.verdict, json.maxForgeryScore], [a.analysisId, 'ANALYSIS_STATUS_COMPLETED', 'VERDICT_LIKELY_FORGED', 0.75]);
  // Every field is present, defaults included, so readers need none of their own.
  assert.deepEqual(json.faces, []);
});

test('GET /v1/analyses/{id}, its original\'s bytes, and 404s for other tenants, unknown ids and missing artefacts', async () => {
  const bytes = await png(4);
  const { analysisId } = (await (await post(bytes)).json()) as { analysisId: string };
  const a = await held(analysisId);
  const original = create(ObjectRefSchema, { bucket: Bucket.originals, key: ObjectKey.original(tenantId, a.contentSha256), sha256: a.contentSha256, contentType: 'image/png' });
  await t.finish(a, { artifacts: { original } });
  const got = (await (await api(`/v1/analyses/${analysisId}`)).json()) as { status: string };
  assert.equal(got.status, 'ANALYSIS_STATUS_COMPLETED');
  const res = await api(`/v1/analyses/${analysisId}/original`);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(sha256Hex(Buffer.from(await res.arrayBuffer())), sha256Hex(bytes));
  assert.deepEqual(await refusal(await api(`/v1/analyses/${analysisId}/mask.png`)), [404, 'ERROR_CODE_NOT_FOUND']);
  const other = await t.tenant();
  assert.deepEqual(await refusal(await api(`/v1/analyses/${analysisId}`, {}, other.apiKey)), [404, 'ERROR_CODE_NOT_FOUND']);
  assert.deepEqual(await refusal(await api(`/v1/analyses/${analysisId}/original`, {}, other.apiKey)), [404, 'ERROR_CODE_NOT_FOUND']);
  assert.deepEqual(await refusal(await api('/v1/analyses/01a21cbd-0000-7000-8000-000000000000')), [404, 'ERROR_CODE_NOT_FOUND']);
  assert.deepEqual(await refusal(await api('/v1/nothing-here')), [404, 'ERROR_CODE_NOT_FOUND']);
});

test('GET /v1/analyses/{id}/events streams a stage event per stage in pipeline order and ends with the final one', async () => {
  const { analysisId } = (await (await post(await png(5))).json()) as { analysisId: string };
  const a = await held(analysisId);
  const res = await api(`/v1/analyses/${analysisId}/events`);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const reader = res.body!.getReader();
  let text = '';
  const untilEvents = async (n: number) => {
    while ((text.match(/\n\n/g) ?? []).length < n) {
      const { value, done } = await reader.read();
      if (done) return;
      text += Buffer.from(value).toString('utf8');
    }
  };
  await untilEvents(1);
  await t.detected(a);
  await t.finish(a, { verdict: Verdict.UNCERTAIN });
  await untilEvents(99);
  const events = text.trim().split('\n\n').map((e) => {
    const [kind, data] = e.split('\n');
    const d = JSON.parse(data.slice('data: '.length)) as { stage: string; analysis: { status: string } };
    return `${kind.slice('event: '.length)} ${d.stage} ${d.analysis.status}`;
  });
  const pipeline = [Stage.INGEST, ...intermediateEvents().map((e) => e.stage)];
  assert.deepEqual(events, [...pipeline.map((s) => `stage ${Stage[s]} ANALYSIS_STATUS_PENDING`), 'final EXPLANATION ANALYSIS_STATUS_COMPLETED']);
  assert.deepEqual(await refusal(await api('/v1/analyses/01a21cbd-0000-7000-8000-000000000000/events')), [404, 'ERROR_CODE_NOT_FOUND']);
});

test('GET /v1/analyses lists with filters by enum name; bad parameters are 422', async () => {
  const { tenantId: own, apiKey: key } = await t.tenant();
  const ids: string[] = [];
  for (let n = 10; n < 13; n++) ids.push((await (await api('/v1/analyses', { method: 'POST', body: new Uint8Array(await png(n)) }, key)).json()).analysisId);
  await t.finish((await t.ingest.listing.get(own, ids[1]))!, { verdict: Verdict.LIKELY_FORGED, maxForgeryScore: 0.9 });
  const list = async (q: string) => ((await (await api(`/v1/analyses${q}`, {}, key)).json()) as { analyses: { analysisId: string }[]; nextPageToken: string });
  assert.deepEqual((await list('')).analyses.map((a) => a.analysisId), [...ids].reverse());
  assert.deepEqual((await list('?status=pending')).analyses.map((a) => a.analysisId), [ids[2], ids[0]]);
  assert.deepEqual((await list('?verdict=LIKELY_FORGED&minForgeryScore=0.5')).analyses.map((a) => a.analysisId), [ids[1]]);
  const first = await list('?pageSize=2');
  assert.equal(first.analyses.length, 2);
  assert.deepEqual((await list(`?pageSize=2&pageToken=${first.nextPageToken}`)).analyses.map((a) => a.analysisId), [ids[0]]);
  for (const q of ['?pageSize=-1', '?pageToken=bm90IGEgdG9rZW4', '?minForgeryScore=7', '?status=SOMETIMES']) {
    assert.deepEqual(await refusal(await api(`/v1/analyses${q}`, {}, key)), [422, 'ERROR_CODE_INVALID_MESSAGE'], q);
  }
});

test('an audit filter from a query string: enum names with or without prefix, ISO times, scores; bad values are INVALID_MESSAGE', () => {
  const f = auditFilterOf(new URLSearchParams('status=rejected&verdict=VERDICT_UNCERTAIN&errorCode=too_large&from=2026-01-02T03:04:05Z&minScore=0.25&modelVersion=m1&region=nose'));
  assert.equal(f.status, AnalysisStatus.REJECTED);
  assert.equal(f.verdict, Verdict.UNCERTAIN);
  assert.equal(f.errorCode, ErrorCode.TOO_LARGE);
  assert.equal(Number(f.fromTime?.seconds) * 1000, Date.parse('2026-01-02T03:04:05Z'));
  assert.deepEqual([f.minForgeryScore, f.modelVersion, f.region], [0.25, 'm1', 'nose']);
  for (const q of ['from=yesterday', 'minForgeryScore=lots', 'stage=NOWHERE']) {
    assert.throws(() => auditFilterOf(new URLSearchParams(q)), (err) => err instanceof CallerError && err.code === ErrorCode.INVALID_MESSAGE, q);
  }
});

test('a request target no URL parser takes is 422, and the server goes on answering', async () => {
  const { request } = await import('node:http');
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '//x:-1', method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 422);
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
});
