// IngestService over gRPC on the ingest service alone (service.testing.ts: PGlite, the in-memory
// bus, a local store, the stages played by the test): keys decide the tenant, each RPC answers
// from the results view, refusals get their status and tt-error-code. The whole pipeline behind
// the same server is services/tampertrace/src/grpc.test.ts's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Bucket, ObjectKey, grpc, intermediateEvents, serviceClient, sha256Hex, stopGrpcServer, unary, type GrpcApi } from '@tampertrace/shared';
import { grpcFailure } from '@tampertrace/shared/testing';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode, ObjectRefSchema, Stage, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import {
  ArtifactKind,
  GetAnalysisRequestSchema,
  GetArtifactRequestSchema,
  IngestService,
  ListAnalysesRequestSchema,
  SubmitBatchRequestSchema,
  SubmitRequestSchema,
  WatchAnalysisRequestSchema,
  type GetAnalysisResponse,
  type GetArtifactResponse,
  type ListAnalysesResponse,
  type SubmitBatchResponse,
  type SubmitResponse,
  type WatchAnalysisResponse,
} from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { apiKeyOf, serveGrpc } from './grpc.ts';
import { openIngestUnderTest, png, type IngestUnderTest } from './service.testing.ts';

let t: IngestUnderTest;
let server: GrpcApi;
let address: string;
let tenantId: string;
let client: grpc.Client;

before(async () => {
  t = await openIngestUnderTest();
  const s = await serveGrpc(t.ingest, t.cfg);
  server = s.server;
  address = `127.0.0.1:${s.port}`;
  const tenant = await t.tenant();
  tenantId = tenant.tenantId;
  client = serviceClient(IngestService, address, { apiKey: tenant.apiKey });
});

after(async () => {
  client?.close();
  if (server) await stopGrpcServer(server);
  await t?.close();
});

const submit = (content: Uint8Array, c = client) => unary<SubmitResponse>(c, 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: content } }));
const getAnalysis = (analysisId: string, c = client) => unary<GetAnalysisResponse>(c, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId }));
const list = (init: MessageInitShape<typeof ListAnalysesRequestSchema>) => unary<ListAnalysesResponse>(client, 'listAnalyses', create(ListAnalysesRequestSchema, init));
const watch = (analysisId: string) =>
  (client as unknown as { watchAnalysis(r: unknown): AsyncIterable<WatchAnalysisResponse> }).watchAnalysis(create(WatchAnalysisRequestSchema, { analysisId }))[Symbol.asyncIterator]();

/** A submitted, still PENDING analysis of the test tenant. */
async function pendingAnalysis(n: number): Promise<Analysis> {
  const r = await submit(await png(n));
  return (await getAnalysis(r.analysisId)).analysis!;
}

test('the API key is read from authorization: Bearer, else x-api-key', () => {
  const md = (pairs: Record<string, string>) => {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(pairs)) m.set(k, v);
    return m;
  };
  assert.equal(apiKeyOf(md({ authorization: 'Bearer  tt_abc ' })), 'tt_abc');
  assert.equal(apiKeyOf(md({ authorization: 'bearer tt_abc' })), 'tt_abc');
  assert.equal(apiKeyOf(md({ 'x-api-key': 'tt_xyz' })), 'tt_xyz');
  assert.equal(apiKeyOf(md({ authorization: 'Basic dXNlcg==', 'x-api-key': 'tt_xyz' })), 'tt_xyz');
  assert.equal(apiKeyOf(md({})), undefined);
});

test('without a valid key every RPC is UNAUTHENTICATED', async () => {
  const anonymous = serviceClient(IngestService, address);
  const wrong = serviceClient(IngestService, address, { apiKey: 'tt_0000000000000000_' + 'A'.repeat(43) });
  try {
    for (const c of [anonymous, wrong]) {
      assert.deepEqual(await grpcFailure(submit(await png(1), c)), { code: grpc.status.UNAUTHENTICATED, reason: 'UNAUTHENTICATED' });
      assert.equal((await grpcFailure(getAnalysis('01a21cbd-0000-7000-8000-000000000000', c))).code, grpc.status.UNAUTHENTICATED);
    }
  } finally {
    anonymous.close();
    wrong.close();
  }
});

test('GetAnalysis answers PENDING, then the final state; another tenant\'s analysis is NOT_FOUND', async () => {
  const a = await pendingAnalysis(10);
  assert.equal(a.status, AnalysisStatus.PENDING);
  assert.equal(a.tenantId, tenantId);
  await t.finish(a, { verdict: Verdict.LIKELY_AUTHENTIC, maxForgeryScore: 0.125 });
  const final = (await getAnalysis(a.analysisId)).analysis!;
  assert.deepEqual([final.status, final.verdict, final.maxForgeryScore], [AnalysisStatus.COMPLETED, Verdict.LIKELY_AUTHENTIC, 0.125]);
  const other = serviceClient(IngestService, address, { apiKey: (await t.tenant()).apiKey });
  try {
    assert.deepEqual(await grpcFailure(getAnalysis(a.analysisId, other)), { code: grpc.status.NOT_FOUND, reason: 'NOT_FOUND' });
  } finally {
    other.close();
  }
});

test('WatchAnalysis sends the analysis now, every stage in pipeline order, then the final state, and ends', async () => {
  const a = await pendingAnalysis(11);
  const steps = watch(a.analysisId);
  const next = async () => (await steps.next()).value as WatchAnalysisResponse;
  const seen = [await next()];
  assert.deepEqual([seen[0].stage, seen[0].analysis?.status], [Stage.INGEST, AnalysisStatus.PENDING]);
  // Only detection's event and the final one come: the stages between are still sent, in order.
  await t.detected(a);
  await t.finish(a, { verdict: Verdict.UNCERTAIN });
  for (let s = await steps.next(); !s.done; s = await steps.next()) seen.push(s.value as WatchAnalysisResponse);
  const pipeline = [Stage.INGEST, ...intermediateEvents().map((e) => e.stage)];
  assert.deepEqual(
    seen.map((s) => [Stage[s.stage], AnalysisStatus[s.analysis!.status]]),
    [...pipeline.map((s) => [Stage[s], 'PENDING']), ['EXPLANATION', 'COMPLETED']],
  );
  assert.equal(seen.at(-1)!.analysis?.verdict, Verdict.UNCERTAIN);
  assert.equal((await grpcFailure(watch('01a21cbd-0000-7000-8000-000000000000').next())).code, grpc.status.NOT_FOUND);
});

test('GetArtifact returns the stored bytes of an artefact the analysis has, and NOT_FOUND for one it lacks', async () => {
  const bytes = await png(12);
  const a = (await getAnalysis((await submit(bytes)).analysisId)).analysis!;
  const original = create(ObjectRefSchema, { bucket: Bucket.originals, key: ObjectKey.original(tenantId, a.contentSha256), sha256: a.contentSha256, contentType: 'image/png' });
  await t.finish(a, { artifacts: { original } });
  const art = await unary<GetArtifactResponse>(client, 'getArtifact', create(GetArtifactRequestSchema, { analysisId: a.analysisId, kind: ArtifactKind.ORIGINAL }));
  assert.equal(sha256Hex(art.content), sha256Hex(bytes));
  assert.equal(art.ref?.key, original.key);
  assert.deepEqual(await grpcFailure(unary(client, 'getArtifact', create(GetArtifactRequestSchema, { analysisId: a.analysisId, kind: ArtifactKind.MASK }))), { code: grpc.status.NOT_FOUND, reason: 'NOT_FOUND' });
});

test('ListAnalyses pages through the tenant\'s analyses newest first; a score outside [0, 1] is INVALID_ARGUMENT', async () => {
  const mine = (await list({ pageSize: 1000 })).analyses.map((a) => a.analysisId);
  assert.ok(mine.length >= 3);
  const walked: string[] = [];
  let pageToken = '';
  do {
    const page = await list({ pageSize: 2, pageToken });
    assert.ok(page.analyses.length <= 2);
    walked.push(...page.analyses.map((a) => a.analysisId));
    pageToken = page.nextPageToken;
  } while (pageToken);
  assert.deepEqual(walked, mine);
  assert.deepEqual([...mine].sort().reverse(), mine, 'uuidv7 ids of analyses submitted one after another sort like their times');
  assert.deepEqual(await grpcFailure(list({ minForgeryScore: 2 })), { code: grpc.status.INVALID_ARGUMENT, reason: 'INVALID_MESSAGE' });
});

test('a refused image is INVALID_ARGUMENT with its code, and its REJECTED analysis is named in tt-analysis-id', async () => {
  const err = await (async () => {
    try {
      await submit(Buffer.from('not an image at all'));
    } catch (e) {
      return e as grpc.ServiceError;
    }
    assert.fail('accepted');
  })();
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(err.metadata.get('tt-error-code')[0], 'UNSUPPORTED_FORMAT');
  await t.bus.idle();
  const rejected = (await getAnalysis(String(err.metadata.get('tt-analysis-id')[0]))).analysis!;
  assert.equal(rejected.status, AnalysisStatus.REJECTED);
});

test('SubmitBatch answers each item in order: accepted, or refused with its own code while the rest go on', async () => {
  const items = [{ source: { case: 'content' as const, value: await png(13) } }, {}, { source: { case: 'content' as const, value: Buffer.from('garbage') } }, { source: { case: 'content' as const, value: await png(14) } }];
  const res = await new Promise<SubmitBatchResponse>((resolve, reject) => {
    const call = (client as unknown as { submitBatch(cb: (err: Error | null, r: SubmitBatchResponse) => void): grpc.ClientWritableStream<unknown> }).submitBatch((err, r) => (err ? reject(err) : resolve(r)));
    for (const item of items) call.write(create(SubmitBatchRequestSchema, { item }));
    call.end();
  });
  assert.deepEqual(res.results.map((r) => r.index), [0, 1, 2, 3]);
  assert.deepEqual(res.results.map((r) => (r.accepted ? 'accepted' : ErrorCode[r.error!.code])), ['accepted', 'EMPTY_INPUT', 'UNSUPPORTED_FORMAT', 'accepted']);
});

