// The embedded HTTP endpoint against the real embedded pipeline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import { pino } from 'pino';
import sharp from 'sharp';
import { intermediateEvents, loadConfig, sha256Hex } from '@tampertrace/shared';
import { AnalysisStatus, ErrorCode, Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { cameraPng, pngDeclaring } from '@tampertrace/shared/testing';
import { startEmbedded, type Embedded } from './embedded.ts';
import { serveHttp } from '@tampertrace/ingest/http';
import { TYPED_LOCALIZER } from '@tampertrace/forgery-localization/contract-model.testing';
import { findModel, readManifest } from '@tampertrace/shared';

let embedded: Embedded;
let server: Server;
let base: string;

before(async () => {
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: await mkdtemp(path.join(os.tmpdir(), 'tt-http-')), TAMPERTRACE_HTTP_PORT: '0', TAMPERTRACE_MAX_INPUT_BYTES: '400000' });
  const log = pino({ level: 'silent' });
  embedded = await startEmbedded(cfg, log);
  server = await serveHttp(embedded.ingest, cfg);
  const addr = server.address() as { port: number };
  base = `http://127.0.0.1:${addr.port}`;
});

/** fetch with the tenant's API key. */
const api = (url: string, init: RequestInit = {}) => fetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${embedded.apiKey}` } });

after(async () => {
  if (server) await new Promise((r) => server.close(r));
  await embedded?.close();
});

test('POST an image with wait=true returns the completed analysis; its mask is served', async () => {
  const res = await api(`${base}/v1/analyses?wait=true`, { method: 'POST', body: new Uint8Array(cameraPng()), headers: { 'x-source-name': 'camera.png' } });
  assert.equal(res.status, 200);
  const a = await res.json();
  assert.equal(a.status, 'ANALYSIS_STATUS_COMPLETED');
  assert.equal(a.sourceName, 'camera.png');
  assert.equal(a.faces.length, 1);
  const again = await (await api(`${base}/v1/analyses/${a.analysisId}`)).json();
  assert.equal(again.contentSha256, a.contentSha256);
  const mask = await api(`${base}/v1/analyses/${a.analysisId}/mask.png`);
  assert.equal(mask.headers.get('content-type'), 'image/png');
  const meta = await sharp(Buffer.from(await mask.arrayBuffer())).metadata();
  assert.deepEqual([meta.width, meta.height], [512, 512]);
  // The overlay is rendered on first request, then served from the store.
  for (let i = 0; i < 2; i++) {
    const overlay = await api(`${base}/v1/analyses/${a.analysisId}/overlay.png`);
    assert.equal(overlay.status, 200);
    const om = await sharp(Buffer.from(await overlay.arrayBuffer())).metadata();
    assert.deepEqual([om.width, om.height, om.channels], [512, 512, 3]);
  }
});

test('bad input maps to HTTP codes: 422 for garbage, 413 for too many pixels or bytes, 404 for unknown ids', async () => {
  const garbage = await api(`${base}/v1/analyses?wait=true`, { method: 'POST', body: 'not an image' });
  assert.equal(garbage.status, 422);
  assert.equal((await garbage.json()).error.code, 'ERROR_CODE_UNSUPPORTED_FORMAT');
  const bomb = await api(`${base}/v1/analyses?wait=true`, { method: 'POST', body: new Uint8Array(pngDeclaring(60000, 60000)) });
  assert.equal(bomb.status, 413);
  const big = await api(`${base}/v1/analyses`, { method: 'POST', body: new Uint8Array(500_000) });
  assert.equal(big.status, 413);
  const missing = await api(`${base}/v1/analyses/01a21cbd-0000-7000-8000-000000000000`);
  assert.equal(missing.status, 404);
});

test('a raw body over the size limit gets its REJECTED analysis (TOO_LARGE), like the same input in JSON', async () => {
  const big = Buffer.alloc(500_000, 7);
  const raw = await api(`${base}/v1/analyses?reanalyze=true`, { method: 'POST', body: new Uint8Array(big) });
  const json = await api(`${base}/v1/analyses`, { method: 'POST', body: JSON.stringify({ content: big.toString('base64'), reanalyze: true }), headers: { 'content-type': 'application/json' } });
  for (const res of [raw, json]) {
    assert.equal(res.status, 413);
    const body = await res.json();
    assert.equal(body.error.code, 'ERROR_CODE_TOO_LARGE');
    const a = await embedded.result(body.analysisId);
    assert.equal(a.status, AnalysisStatus.REJECTED);
    assert.equal(a.error?.code, ErrorCode.TOO_LARGE);
    assert.equal(a.contentSha256, sha256Hex(big));
  }
  // With wait=true the answer is the REJECTED analysis itself; without reanalyze, the same bytes deduplicate to it.
  const waited = await api(`${base}/v1/analyses?wait=true`, { method: 'POST', body: new Uint8Array(big) });
  assert.equal(waited.status, 413);
  const a = await waited.json();
  assert.equal(a.status, 'ANALYSIS_STATUS_REJECTED');
  assert.equal(a.error.code, 'ERROR_CODE_TOO_LARGE');
});

test('without wait the endpoint answers 202 with the analysis id at once', async () => {
  const res = await api(`${base}/v1/analyses`, { method: 'POST', body: new Uint8Array(cameraPng()) });
  assert.equal(res.status, 202);
  const { analysisId } = await res.json();
  assert.match(analysisId, /^[0-9a-f-]{36}$/);
  // Known at once: PENDING while the stages run (or already final on a fast machine).
  const early = await api(`${base}/v1/analyses/${analysisId}`);
  assert.equal(early.status, 200);
  assert.ok(['ANALYSIS_STATUS_PENDING', 'ANALYSIS_STATUS_COMPLETED'].includes((await early.json()).status));
  const a = await embedded.result(analysisId);
  assert.equal(a.analysisId, analysisId);
});

/** The events of a server-sent events body, as [event, stage] pairs. */
function sseSteps(body: string): [string, string][] {
  return body.split('\n\n').filter((b) => b.trim()).map((b) => {
    const event = /^event: (.+)$/m.exec(b)![1];
    const data = JSON.parse(/^data: (.+)$/m.exec(b)![1]) as { stage: string; analysis: { status: string } };
    // Only the last event carries a final analysis.
    assert.equal(data.analysis.status === 'ANALYSIS_STATUS_PENDING', event === 'stage', b.slice(0, 200));
    return [event, data.stage];
  });
}

test('the /events stream of a live analysis sends every stage in order, forgery localization included', async () => {
  // Several at once, watched from the moment they are accepted: stages finish between the
  // watcher's looks, and a stage's event may be consumed after the final one.
  const images = await Promise.all([sharp(cameraPng()).flop().png().toBuffer(), sharp(cameraPng()).flip().png().toBuffer(), sharp(cameraPng()).rotate(90).png().toBuffer()]);
  const streams = await Promise.all(images.map(async (img) => {
    const res = await api(`${base}/v1/analyses`, { method: 'POST', body: new Uint8Array(img) });
    assert.equal(res.status, 202);
    const { analysisId } = await res.json();
    const events = await api(`${base}/v1/analyses/${analysisId}/events`);
    assert.equal(events.headers.get('content-type'), 'text/event-stream');
    return events.text();
  }));
  // Every stage of the list before the final one, in the list's order (provenance first).
  const steps = [Stage.INGEST, ...intermediateEvents().map((e) => e.stage)].map((s): [string, string] => ['stage', Stage[s]]);
  for (const body of streams) assert.deepEqual(sseSteps(body), [...steps, ['final', 'EXPLANATION']]);
  // Watching a finished analysis replays the same sequence.
  const res = await api(`${base}/v1/analyses?wait=true`, { method: 'POST', body: new Uint8Array(await sharp(cameraPng()).resize(480).png().toBuffer()) });
  const done = await res.json();
  assert.equal(done.status, 'ANALYSIS_STATUS_COMPLETED');
  assert.deepEqual(sseSteps(await (await api(`${base}/v1/analyses/${done.analysisId}/events`)).text()).map(([, st]) => st), [...steps.map(([, st]) => st), 'EXPLANATION']);
});

test('without an API key, or with a wrong one, every route answers 401 and does nothing', async () => {
  for (const headers of [{}, { authorization: 'Bearer tt_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, { authorization: 'Bearer nonsense' }] as Array<Record<string, string>>) {
    const post = await fetch(`${base}/v1/analyses?wait=true`, { method: 'POST', body: new Uint8Array(cameraPng()), headers });
    assert.equal(post.status, 401);
    assert.equal((await post.json()).error.code, 'ERROR_CODE_UNAUTHENTICATED');
    assert.equal((await fetch(`${base}/v1/analyses/01a21cbd-0000-7000-8000-000000000000`, { headers })).status, 401);
  }
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
});

test('POST /v1/analyses:batch answers each SubmitRequest in order, like SubmitBatch', async () => {
  const items = [
    { content: Buffer.from(await sharp(cameraPng()).resize(400).png().toBuffer()).toString('base64'), sourceName: 'small-camera.png' },
    { url: 'https://169.254.169.254/latest/meta-data/' },
    {},
  ];
  const res = await api(`${base}/v1/analyses:batch`, { method: 'POST', body: JSON.stringify({ items }), headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 200);
  const { results } = await res.json();
  assert.deepEqual(results.map((r: { index?: number }) => r.index ?? 0), [0, 1, 2]);
  assert.match(results[0].accepted.analysisId, /^[0-9a-f-]{36}$/);
  assert.deepEqual(results.slice(1).map((r: { error: { code: string } }) => r.error.code), ['ERROR_CODE_URL_REFUSED', 'ERROR_CODE_EMPTY_INPUT']);
  assert.equal((await embedded.result(results[0].accepted.analysisId)).status, 2 /* COMPLETED */);
});

test('with the learned localizer, which has a type output, the JSON analysis names each face\'s kinds of edit, highest first, with the threshold', async () => {
  const home = await mkdtemp(path.join(os.tmpdir(), 'tt-http-types-'));
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home, TAMPERTRACE_HTTP_PORT: '0', TAMPERTRACE_LOCALIZER_MODEL: TYPED_LOCALIZER });
  const entry = findModel(await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST), cfg.TAMPERTRACE_LOCALIZER_MODEL);
  const typed = await startEmbedded(cfg, pino({ level: 'silent' }));
  const srv = await serveHttp(typed.ingest, cfg);
  try {
    const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/v1/analyses?wait=true`;
    const res = await fetch(url, { method: 'POST', body: new Uint8Array(cameraPng()), headers: { authorization: `Bearer ${typed.apiKey}` } });
    assert.equal(res.status, 200);
    const a = await res.json();
    assert.equal(a.faces.length, 1);
    const ms: Array<{ type: string; probability: number }> = a.faces[0].manipulations;
    assert.deepEqual(ms.map((m) => m.type).sort(), entry.manipulationTypes!.map((k) => `MANIPULATION_TYPE_${k}`).sort());
    for (const m of ms) assert.ok(m.probability >= 0 && m.probability <= 1, `${m.type} ${m.probability}`);
    assert.deepEqual(ms.map((m) => m.probability), ms.map((m) => m.probability).sort((x, y) => y - x), 'highest first');
    assert.equal(a.faces[0].manipulationThreshold, Math.fround(entry.typeThreshold!));
  } finally {
    await new Promise((r) => srv.close(r));
    await typed.close();
  }
});

test('with the default localizer the JSON faces carry an empty list of kinds', async () => {
  const res = await api(`${base}/v1/analyses?wait=true`, { method: 'POST', body: new Uint8Array(await sharp(cameraPng()).flop().png().toBuffer()) });
  const a = await res.json();
  assert.deepEqual(a.faces.map((f: { manipulations: unknown[] }) => f.manipulations), [[]]);
});
