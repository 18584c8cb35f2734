// OverlayRenderer on a real object store (a folder) and real images: concurrent first requests
// for one overlay share a single render, renders at once are capped (and excess beyond the
// queue is refused with a retry hint), and a 7000x7000 image is rendered within the pixel cap.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import sharp from 'sharp';
import { Bucket, CallerError, FsObjectStore, ObjectKey, sha256Hex, type ObjectStore } from './index.ts';
import { AnalysisSchema, ArtifactsSchema, FaceSchema, type Analysis } from './gen/tampertrace/v1/analysis_pb.ts';
import { AnalysisStatus, BoxSchema, ErrorCode, type ObjectRef } from './gen/tampertrace/v1/common_pb.ts';
import { OverlayRenderer } from './overlay.ts';

const SIDE = 7000;
const CAP = 2048 * 2048;
const LIMITS = { maxInputBytes: 50 * 1024 * 1024, maxPixels: 50_000_000, minSide: 32 };

let dir: string;
let store: ObjectStore;
let original: ObjectRef;
let mask: ObjectRef;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tt-overlay-'));
  store = new FsObjectStore(dir);
  await store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
  const png = await sharp({ create: { width: SIDE, height: SIDE, channels: 3, background: { r: 120, g: 130, b: 140 } } }).png({ compressionLevel: 1 }).toBuffer();
  original = await store.put(Bucket.originals, ObjectKey.original('t1', sha256Hex(png)), png, 'image/png');
  const px = Buffer.alloc(SIDE * SIDE);
  for (let y = 3000; y < 4000; y++) px.fill(255, y * SIDE + 3000, y * SIDE + 4000);
  const maskPng = await sharp(px, { raw: { width: SIDE, height: SIDE, channels: 1 } }).png({ compressionLevel: 1 }).toBuffer();
  mask = await store.put(Bucket.artifacts, 'shared/mask.png', maskPng, 'image/png');
});

after(() => rm(dir, { recursive: true, force: true }));

/** A completed analysis of the 7000x7000 image (each call a fresh copy, as each request reads its own). */
const analysis = (analysisId: string): Analysis =>
  create(AnalysisSchema, {
    analysisId,
    tenantId: 't1',
    status: AnalysisStatus.COMPLETED,
    artifacts: create(ArtifactsSchema, { original, mask }),
    faces: [create(FaceSchema, { box: create(BoxSchema, { x: 2900, y: 2900, width: 1200, height: 1200 }) })],
  });

const id = (n: number) => `0190aaaa-0000-7000-8000-${String(n).padStart(12, '0')}`;

test('10 concurrent first requests for the overlay of a 7000x7000 image share one render, scaled within the pixel cap, in bounded memory', async () => {
  const renderer = new OverlayRenderer(store, LIMITS, { maxPixels: CAP, renders: 2 });
  // Memory: the full image decoded is 147 MB of RGB; each request rendering its own took about
  // 3.3 GB at peak for these 10. Sampled, so a short peak can be missed, never invented.
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const refs = await Promise.all(Array.from({ length: 10 }, () => renderer.overlayOf(analysis(id(1)))));
  clearInterval(sampler);
  assert.ok(peak - before < 600e6, `RSS grew by ${Math.round((peak - before) / 1e6)} MB`);
  assert.equal(renderer.rendered, 1);
  assert.equal(new Set(refs.map((r) => r?.sha256)).size, 1);
  const png = await store.get(refs[0]!.bucket, refs[0]!.key);
  const meta = await sharp(png).metadata();
  assert.ok(meta.width! * meta.height! <= CAP, `${meta.width}x${meta.height}`);
  assert.equal(meta.width, meta.height);
  // The mask still lands where it was: the centre of the scaled overlay is tinted red, a corner is not.
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => [...data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3)];
  const c = Math.floor(info.width / 2);
  assert.ok(at(c, c)[0] > at(c, c)[1] + 50, `centre ${at(c, c)}`);
  assert.deepEqual(at(5, 5), [120, 130, 140]);
  // Once stored, later requests read it back instead of rendering.
  await renderer.overlayOf(analysis(id(1)));
  assert.equal(renderer.rendered, 1);
});

test('renders at once are capped, and requests beyond the queue are refused with QUOTA_EXCEEDED and a retry hint', async () => {
  const renderer = new OverlayRenderer(store, LIMITS, { maxPixels: CAP / 4, renders: 1 });
  // One render slot and 8 queue places: of 12 different overlays requested at once, 9 get theirs.
  const out = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => renderer.overlayOf(analysis(id(100 + i)))));
  const refused = out.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as CallerError);
  assert.equal(renderer.maxConcurrent, 1);
  assert.equal(renderer.rendered, 9);
  assert.equal(refused.length, 3);
  for (const e of refused) {
    assert.ok(e instanceof CallerError);
    assert.equal(e.code, ErrorCode.QUOTA_EXCEEDED);
    assert.ok(e.retryAfterMs! > 0);
  }
});
