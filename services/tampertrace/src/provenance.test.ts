// Provenance as users see it, on the real embedded pipeline: a re-post's Analysis names the
// earlier analysis and its verdict, the explanation cites it, GET /v1/analyses/{id}/related and
// GetRelatedAnalyses answer it, and another tenant sees none of it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import sharp from 'sharp';
import { grpc, loadConfig, serviceClient, stopGrpcServer, unary, type GrpcApi } from '@tampertrace/shared';
import { cameraPng, grpcError } from '@tampertrace/shared/testing';
import { Cue } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { GetRelatedAnalysesRequestSchema, IngestService, type GetRelatedAnalysesResponse } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { serveHttp } from '@tampertrace/ingest/http';
import { serveGrpc } from '@tampertrace/ingest/grpc';
import { startEmbedded, type Embedded } from './embedded.ts';

let embedded: Embedded;
let http: Server;
let grpcApi: GrpcApi;
let base: string;
let grpcPort: number;
let otherKey: string;

before(async () => {
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: await mkdtemp(path.join(os.tmpdir(), 'tt-provenance-')), TAMPERTRACE_HTTP_PORT: '0', TAMPERTRACE_GRPC_PORT: '0' });
  embedded = await startEmbedded(cfg, pino({ level: 'silent' }));
  http = await serveHttp(embedded.ingest, cfg);
  base = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  const g = await serveGrpc(embedded.ingest, cfg);
  grpcApi = g.server;
  grpcPort = g.port;
  otherKey = (await embedded.ingest.tenants.create('other-tenant')).apiKey;
});

after(async () => {
  if (http) await new Promise((r) => http.close(r));
  if (grpcApi) await stopGrpcServer(grpcApi);
  await embedded?.close();
});

const post = async (key: string, body: Uint8Array<ArrayBuffer>, name: string) => {
  const res = await fetch(`${base}/v1/analyses?wait=true`, { method: 'POST', body, headers: { authorization: `Bearer ${key}`, 'x-source-name': name } });
  assert.equal(res.status, 200);
  return res.json();
};

test("a re-post links to the tenant's earlier analysis with its verdict, and the explanation cites it", async () => {
  const first = await post(embedded.apiKey!, new Uint8Array(cameraPng()), 'camera.png');
  assert.equal(first.status, 'ANALYSIS_STATUS_COMPLETED');
  assert.match(first.provenance.perceptualHash, /^[0-9a-f]{16}$/);
  assert.deepEqual(first.provenance.related, []);

  // The same photo again, smaller, mirrored and as JPEG: other bytes, so not deduplicated.
  const repost = await sharp(cameraPng()).resize(400).flop().jpeg({ quality: 70 }).toBuffer();
  const second = await post(embedded.apiKey!, new Uint8Array(repost), 'repost.jpg');
  assert.equal(second.provenance.related.length, 1);
  const link = second.provenance.related[0];
  assert.equal(link.analysisId, first.analysisId);
  assert.equal(link.mirrored, true);
  assert.equal(link.verdict, first.verdict, 'the earlier verdict, recorded from the results topic');
  assert.equal(link.sourceName, 'camera.png');
  const fact = second.explanation.facts.find((f: { cue: string }) => f.cue === Cue[Cue.SEEN_BEFORE] || f.cue === 'CUE_SEEN_BEFORE');
  assert.ok(fact, 'a seen-before fact');
  assert.equal(fact.unit, 'bits');
  assert.ok(second.explanation.text.includes(first.analysisId), second.explanation.text);

  // HTTP and gRPC say the same, with the earlier analysis as it stands now.
  const res = await fetch(`${base}/v1/analyses/${second.analysisId}/related`, { headers: { authorization: `Bearer ${embedded.apiKey}` } });
  assert.equal(res.status, 200);
  const related = await res.json();
  assert.deepEqual(related.related.map((r: { analysisId: string }) => r.analysisId), [first.analysisId]);
  assert.equal(related.analyses[0].analysisId, first.analysisId);
  assert.equal(related.analyses[0].status, 'ANALYSIS_STATUS_COMPLETED');
  const client = serviceClient(IngestService, `127.0.0.1:${grpcPort}`, { apiKey: embedded.apiKey });
  try {
    const r = await unary<GetRelatedAnalysesResponse>(client, 'getRelatedAnalyses', create(GetRelatedAnalysesRequestSchema, { analysisId: second.analysisId }));
    assert.deepEqual(r.related.map((x) => x.analysisId), [first.analysisId]);
    assert.equal(r.analyses[0].status, AnalysisStatus.COMPLETED);
  } finally {
    client.close();
  }
});

test("another tenant gets NOT_FOUND for the tenant's analysis and no link for the same picture", async () => {
  const mine = await post(embedded.apiKey!, new Uint8Array(await sharp(cameraPng()).jpeg({ quality: 90 }).toBuffer()), 'mine.jpg');
  const res = await fetch(`${base}/v1/analyses/${mine.analysisId}/related`, { headers: { authorization: `Bearer ${otherKey}` } });
  assert.equal(res.status, 404);
  const client = serviceClient(IngestService, `127.0.0.1:${grpcPort}`, { apiKey: otherKey });
  try {
    const err = await grpcError(unary(client, 'getRelatedAnalyses', create(GetRelatedAnalysesRequestSchema, { analysisId: mine.analysisId })));
    assert.equal(err.code, grpc.status.NOT_FOUND);
  } finally {
    client.close();
  }
  const theirs = await post(otherKey, new Uint8Array(cameraPng()), 'theirs.png');
  assert.deepEqual(theirs.provenance.related, [], "the other tenant's copy of the same picture links to nothing of ours");
});
