// ForgeryLocalizationService over real gRPC (grpc-js client and server on loopback) with the
// real localizer, on a test photo and on a self-blended forgery of it with a known mask.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import sharp from 'sharp';
import { createGrpcServer, decodeRgb, grpc, limitsOf, loadConfig, serviceClient, startGrpcServer, stopGrpcServer, unary, type GrpcApi } from '@tampertrace/shared';
import { checkHealth } from '@tampertrace/shared/health';
import { ASTRONAUT_FACE, astronautPng, grpcFailure } from '@tampertrace/shared/testing';
import { Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { DetectedFaceSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { ForgeryLocalizationService, LocalizeRequestSchema, type LocalizeResponse } from '@tampertrace/shared/gen/tampertrace/v1/stages_pb';
import { forgeryLocalizationGrpc } from './grpc.ts';
import { loadLocalizer } from './load.ts';
import type { Localizer } from './localize.ts';
import type { ForgeryModel } from './model.ts';
import { makeSelfBlended, toPng } from './sbi.ts';

// BlazeFace's face in astronaut.png (what Detect returns for it), so this test needs no detector.
const ASTRONAUT = create(DetectedFaceSchema, ASTRONAUT_FACE);

const cfg = loadConfig({ ...process.env, TAMPERTRACE_GRPC_PORT: '0', TAMPERTRACE_STAGE_CONCURRENCY: '1' });
let model: ForgeryModel;
let localizer: Localizer;
let api: GrpcApi;
let address: string;
let client: grpc.Client;
/** Localizer runs so far, and a gate the test can close to hold a run in progress. */
let runs = 0;
let gate: Promise<void> = Promise.resolve();

before(async () => {
  const log = pino({ level: 'silent' });
  const loaded = await loadLocalizer(cfg);
  model = loaded.model;
  localizer = loaded.localizer;
  // The real localizer, counted and holdable.
  const counted = Object.create(localizer) as Localizer;
  counted.localize = async (img, faces) => {
    runs++;
    await gate;
    return localizer.localize(img, faces);
  };
  api = createGrpcServer(cfg, [forgeryLocalizationGrpc({ localizer: counted, model: loaded.entry, limits: limitsOf(cfg) }, cfg, log)]);
  address = `127.0.0.1:${await startGrpcServer(api, cfg, log)}`;
  api.health.serving();
  client = serviceClient(ForgeryLocalizationService, address);
});

after(async () => {
  client?.close();
  if (api) await stopGrpcServer(api);
  await model?.close();
});

const localize = (content: Uint8Array, faces = [ASTRONAUT], options: grpc.CallOptions = {}) =>
  unary<LocalizeResponse>(client, 'localize', create(LocalizeRequestSchema, { content, faces }), options);

const failure = grpcFailure;

/** A grey PNG as its pixels; checks it is single-channel and the image's size. */
async function grey(png: Uint8Array): Promise<Uint8Array> {
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.width, meta.height, meta.channels], [512, 512, 1]);
  return sharp(png).extractChannel(0).raw().toBuffer();
}

test('Localize on the real photo: LIKELY_AUTHENTIC, region scores for the face, an almost empty mask', async () => {
  const r = await localize(astronautPng());
  assert.equal(r.verdict, Verdict.LIKELY_AUTHENTIC);
  assert.equal(r.model?.name, 'forensic-inconsistency');
  assert.equal(r.faces.length, 1);
  const f = r.faces[0];
  assert.equal(f.index, 0);
  assert.ok(f.forgeryScore < 0.437, `below the model's uncertainty band: ${f.forgeryScore}`);
  assert.ok(f.regions.length >= 10, `${f.regions.length} regions`);
  assert.ok(f.regions.some((x) => x.name === 'nose') && f.regions.some((x) => x.name === 'left eye'));
  for (const x of f.regions) assert.ok(x.score >= 0 && x.score <= 1 && x.coverage >= 0 && x.coverage <= 1, JSON.stringify(x));
  assert.deepEqual(
    f.regions.map((x) => x.score),
    [...f.regions.map((x) => x.score)].sort((a, b) => b - a),
    'regions ranked by score',
  );
  const mask = await grey(r.maskPng);
  const on = mask.reduce((n, v) => n + (v === 255 ? 1 : 0), 0);
  assert.ok(mask.every((v) => v === 0 || v === 255), 'binary');
  assert.ok(on / mask.length < 0.005, `${on} masked pixels`);
  const heat = await grey(r.heatmapPng);
  assert.ok(heat.some((v) => v > 0), 'the heatmap has the face crop');
});

test('Localize on a self-blended forgery: the nose is found, the mask covers the blended pixels, as the localizer computes them', async () => {
  const src = await decodeRgb(astronautPng(), limitsOf(cfg));
  const sample = await makeSelfBlended(src, { box: ASTRONAUT.box!, keypoints: ASTRONAUT.keypoints }, { regions: ['nose'], transform: 'blur', seed: 3 });
  const r = await localize(await toPng(sample.rgb));
  assert.equal(r.verdict, Verdict.LIKELY_FORGED);
  const f = r.faces[0];
  assert.ok(f.forgeryScore >= 0.628, `above the band: ${f.forgeryScore}`);
  assert.equal(f.regions[0].name, 'nose');
  assert.ok(f.regions[0].coverage > 0.8, `nose coverage ${f.regions[0].coverage}`);
  assert.ok(f.regions[0].cues?.noiseLogRatio !== undefined && f.regions[0].cues.noiseLogRatio < 0, 'the nose is smoother than the face');
  const mask = await grey(r.maskPng);
  let gt = 0;
  let hit = 0;
  for (let i = 0; i < mask.length; i++) {
    if (!sample.gt[i]) continue;
    gt++;
    if (mask[i] === 255) hit++;
  }
  assert.ok(gt > 200 && hit / gt > 0.8, `${hit} of ${gt} blended pixels masked`);
  // The same numbers as the localizer itself gives (float32 on the wire).
  const direct = await localizer.localize(sample.rgb, [{ box: ASTRONAUT.box!, score: ASTRONAUT.score, keypoints: ASTRONAUT.keypoints }]);
  assert.ok(Math.abs(direct.faces[0].forgeryScore - f.forgeryScore) < 1e-6);
  assert.equal(Buffer.compare(Buffer.from(direct.mask.map((v) => (v ? 255 : 0))), Buffer.from(mask)), 0, 'same mask');
});

test('no face: VERDICT_UNSPECIFIED, no model named, an empty mask of the image size', async () => {
  const r = await localize(astronautPng(), []);
  assert.equal(r.verdict, Verdict.UNSPECIFIED);
  assert.equal(r.faces.length, 0);
  assert.equal(r.model, undefined);
  assert.ok((await grey(r.maskPng)).every((v) => v === 0));
});

test('bad input fails with INVALID_ARGUMENT and the error code in the trailer; the localizer never sees it', async () => {
  const before = runs;
  assert.deepEqual(await failure(localize(Buffer.from('not an image at all'))), { code: grpc.status.INVALID_ARGUMENT, reason: 'UNSUPPORTED_FORMAT' });
  const face = (box: { x: number; y: number; width: number; height: number }) => create(DetectedFaceSchema, { box, score: 0.9 });
  for (const f of [face({ x: 600, y: 10, width: 50, height: 50 }), face({ x: 10, y: 10, width: 0, height: 50 }), face({ x: 10, y: 10, width: NaN, height: 50 }), face({ x: 0, y: 0, width: 5000, height: 5000 }), create(DetectedFaceSchema, { score: 1 })]) {
    assert.deepEqual(await failure(localize(astronautPng(), [f])), { code: grpc.status.INVALID_ARGUMENT, reason: 'INVALID_MESSAGE' }, JSON.stringify(f.box));
  }
  assert.deepEqual(await failure(localize(astronautPng(), Array(65).fill(ASTRONAUT))), { code: grpc.status.INVALID_ARGUMENT, reason: 'INVALID_MESSAGE' });
  assert.equal(runs, before);
});

test('a call that passes its deadline while waiting for a turn leaves without running the model', async () => {
  let open!: () => void;
  gate = new Promise((r) => (open = r));
  const before = runs;
  const first = localize(astronautPng()); // takes the only slot (TAMPERTRACE_STAGE_CONCURRENCY=1) and is held
  while (runs === before) await new Promise((r) => setTimeout(r, 5));
  const second = failure(localize(astronautPng(), [ASTRONAUT], { deadline: Date.now() + 300 }));
  assert.equal((await second).code, grpc.status.DEADLINE_EXCEEDED);
  // The client gave up on its own timer; let the server see the cancellation before a turn frees up.
  await new Promise((r) => setTimeout(r, 50));
  open();
  gate = Promise.resolve();
  assert.equal((await first).faces.length, 1);
  assert.equal(runs, before + 1, 'the second call never reached the localizer');
  assert.equal((await localize(astronautPng())).faces.length, 1, 'its place in the queue was given up');
});

test('Health answers SERVING for ForgeryLocalizationService', async () => {
  assert.equal(await checkHealth(address, 'tampertrace.v1.ForgeryLocalizationService'), 'SERVING');
});
