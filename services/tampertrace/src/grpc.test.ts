// IngestService over real gRPC (grpc-js client and server on loopback) against the embedded pipeline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import sharp from 'sharp';
import { grpc, loadConfig, serviceClient, sha256Hex, stopGrpcServer, unary, type GrpcApi } from '@tampertrace/shared';
import { cameraPng, grpcError } from '@tampertrace/shared/testing';
import { AnalysisStatus, ErrorCode, ManipulationType } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import {
  ArtifactKind,
  GetAnalysisRequestSchema,
  GetArtifactRequestSchema,
  IngestService,
  SubmitRequestSchema,
  WatchAnalysisRequestSchema,
  type GetAnalysisResponse,
  type GetArtifactResponse,
  type SubmitResponse,
  type WatchAnalysisResponse,
} from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { serveGrpc } from '@tampertrace/ingest/grpc';
import { TYPED_LOCALIZER } from '@tampertrace/forgery-localization/contract-model.testing';
import { loadLocalizer } from '@tampertrace/forgery-localization/load';
import { decodeRgb, limitsOf } from '@tampertrace/shared';
import { startEmbedded, type Embedded } from './embedded.ts';

let embedded: Embedded;
let server: GrpcApi;
let client: grpc.Client;

before(async () => {
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: await mkdtemp(path.join(os.tmpdir(), 'tt-grpc-')), TAMPERTRACE_GRPC_PORT: '0', TAMPERTRACE_MAX_INPUT_BYTES: '400000' });
  const log = pino({ level: 'silent' });
  embedded = await startEmbedded(cfg, log);
  const s = await serveGrpc(embedded.ingest, cfg);
  server = s.server;
  client = serviceClient(IngestService, `127.0.0.1:${s.port}`, { apiKey: embedded.apiKey });
});

after(async () => {
  client?.close();
  if (server) await stopGrpcServer(server);
  await embedded?.close();
});

const submit = (content: Uint8Array, extra: { reanalyze?: boolean; sourceName?: string } = {}) =>
  unary<SubmitResponse>(client, 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: content }, ...extra }));

async function watch(analysisId: string): Promise<WatchAnalysisResponse[]> {
  const stream = (client as unknown as { watchAnalysis(r: unknown): AsyncIterable<WatchAnalysisResponse> }).watchAnalysis(create(WatchAnalysisRequestSchema, { analysisId }));
  const steps: WatchAnalysisResponse[] = [];
  for await (const s of stream) steps.push(s);
  return steps;
}

const failure = grpcError;
const statusOf = async (p: Promise<unknown>) => (await grpcError(p)).code;

test('Submit, WatchAnalysis to the final state, GetAnalysis and the mask through GetArtifact', async () => {
  const png = cameraPng();
  const r = await submit(png, { sourceName: 'camera.png', reanalyze: true });
  assert.match(r.analysisId, /^[0-9a-f-]{36}$/);
  assert.equal(r.contentSha256, sha256Hex(png));
  assert.equal(r.deduplicated, false);
  const steps = await watch(r.analysisId);
  const final: Analysis = steps.at(-1)!.analysis!;
  assert.equal(final.status, AnalysisStatus.COMPLETED);
  assert.equal(final.faces.length, 1);
  assert.equal(final.sourceName, 'camera.png');
  const got = (await unary<GetAnalysisResponse>(client, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: r.analysisId }))).analysis!;
  assert.equal(got.status, AnalysisStatus.COMPLETED);
  assert.equal(got.artifacts?.mask?.sha256, final.artifacts?.mask?.sha256);
  const mask = await unary<GetArtifactResponse>(client, 'getArtifact', create(GetArtifactRequestSchema, { analysisId: r.analysisId, kind: ArtifactKind.MASK }));
  assert.equal(sha256Hex(mask.content), final.artifacts!.mask!.sha256);
  const meta = await sharp(mask.content).metadata();
  assert.deepEqual([meta.width, meta.height], [512, 512]);
  const overlay = await unary<GetArtifactResponse>(client, 'getArtifact', create(GetArtifactRequestSchema, { analysisId: r.analysisId, kind: ArtifactKind.OVERLAY }));
  assert.equal((await sharp(overlay.content).metadata()).channels, 3);
});

test('the same bytes again return the existing analysis unless reanalysis is asked for', async () => {
  const png = await sharp(cameraPng()).flop().png().toBuffer();
  const first = await submit(png);
  const again = await submit(png);
  assert.equal(again.deduplicated, true);
  assert.equal(again.analysisId, first.analysisId);
  const fresh = await submit(png, { reanalyze: true });
  assert.equal(fresh.deduplicated, false);
  assert.notEqual(fresh.analysisId, first.analysisId);
  for (const id of [first.analysisId, fresh.analysisId]) assert.equal((await watch(id)).at(-1)!.analysis!.status, AnalysisStatus.COMPLETED);
});

test('bad input ends REJECTED with its code; unknown ids, oversized messages and unserved sources get gRPC status codes', async () => {
  // A refused image is INVALID_ARGUMENT with its reason; its REJECTED analysis exists all the same.
  const refused = await failure(submit(Buffer.from('not an image at all'), { reanalyze: true }));
  assert.equal(refused.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(refused.metadata.get('tt-error-code')[0], 'UNSUPPORTED_FORMAT');
  const garbage = { analysisId: String(refused.metadata.get('tt-analysis-id')[0]) };
  const final = (await watch(garbage.analysisId)).at(-1)!.analysis!;
  assert.equal(final.status, AnalysisStatus.REJECTED);
  assert.equal(final.error?.code, ErrorCode.UNSUPPORTED_FORMAT);
  assert.equal(await statusOf(unary(client, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: '01a21cbd-0000-7000-8000-000000000000' }))), grpc.status.NOT_FOUND);
  assert.equal(await statusOf(unary(client, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: "'; DROP TABLE analyses; --" }))), grpc.status.NOT_FOUND);
  // Over the input limit plus the envelope allowance: refused by grpc-js before our code runs.
  assert.equal(await statusOf(submit(new Uint8Array(400_000 + 2 * 1024 * 1024))), grpc.status.RESOURCE_EXHAUSTED);
  // URLs that point inside (cloud metadata, loopback) or are not https are refused before any connection.
  for (const url of ['https://169.254.169.254/latest/meta-data', 'https://127.0.0.1:1/a.jpg', 'http://example.com/a.jpg', 'file:///etc/passwd']) {
    const err = await failure(unary(client, 'submit', create(SubmitRequestSchema, { source: { case: 'url', value: url } })));
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT, url);
    assert.equal(err.metadata.get('tt-error-code')[0], 'URL_REFUSED', url);
  }
  // No source at all.
  assert.equal((await failure(unary(client, 'submit', create(SubmitRequestSchema, {})))).metadata.get('tt-error-code')[0], 'EMPTY_INPUT');
  assert.equal(await statusOf(unary(client, 'getArtifact', create(GetArtifactRequestSchema, { analysisId: garbage.analysisId, kind: ArtifactKind.MASK }))), grpc.status.NOT_FOUND);
});

test('with the learned localizer, which has a type output, each face in the Analysis carries what the model gave, kinds highest first, and the threshold', async () => {
  const home = await mkdtemp(path.join(os.tmpdir(), 'tt-grpc-types-'));
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home, TAMPERTRACE_GRPC_PORT: '0', TAMPERTRACE_LOCALIZER_MODEL: TYPED_LOCALIZER });
  const typed = await startEmbedded(cfg, pino({ level: 'silent' }));
  const s = await serveGrpc(typed.ingest, cfg);
  const c = serviceClient(IngestService, `127.0.0.1:${s.port}`, { apiKey: typed.apiKey });
  const direct = await loadLocalizer(cfg);
  try {
    const png = cameraPng();
    const r = await unary<SubmitResponse>(c, 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: png } }));
    await typed.result(r.analysisId);
    const a = (await unary<GetAnalysisResponse>(c, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: r.analysisId }))).analysis!;
    assert.equal(a.faces.length, 1);
    const [face] = a.faces;
    const kinds = direct.entry.manipulationTypes!;
    assert.equal(face.manipulations.length, kinds.length);
    assert.deepEqual(face.manipulations.map((m) => ManipulationType[m.type]).sort(), [...kinds].sort());
    const probs = face.manipulations.map((m) => m.probability);
    assert.deepEqual(probs, [...probs].sort((x, y) => y - x), 'highest first');
    assert.equal(face.manipulationThreshold, Math.fround(direct.entry.typeThreshold!));
    // The same numbers as the localizer run directly on the face the pipeline found.
    const img = await decodeRgb(png, limitsOf(cfg));
    const [mine] = (await direct.localizer.localize(img, [{ box: face.box!, score: face.detectionScore, keypoints: face.keypoints }])).faces;
    assert.deepEqual(face.manipulations.map((m) => [ManipulationType[m.type], m.probability]), mine.manipulations.map((m) => [m.type, Math.fround(m.probability)]));
  } finally {
    c.close();
    await stopGrpcServer(s.server);
    await typed.close();
    await direct.model.close();
  }
});

test('with the default localizer, which has no type output, faces carry no manipulation kinds', async () => {
  const r = await submit(cameraPng(), { reanalyze: true });
  const final = (await watch(r.analysisId)).at(-1)!.analysis!;
  assert.deepEqual(final.faces.map((f) => [f.manipulations.length, f.manipulationThreshold]), [[0, 0]]);
});
