// The detection stage's stored face crops stand in for a second decode of the original: the
// localization stage's output from them equals its output from the original, byte for byte,
// and the original is fetched (and decoded) once per analysis instead of twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import sharp from 'sharp';
import { Bucket, FsObjectStore, ObjectKey, decodeRgb, loadConfig, type ObjectStore } from '@tampertrace/shared';
import { astronautPng, cameraPng } from '@tampertrace/shared/testing';
import { EventMetaSchema, FacesDetectedSchema, ForgeryLocalizedSchema, ProvenanceCheckedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { faceDetectionStage } from '@tampertrace/face-detection/stage';
import { forgeryLocalizationStage } from '@tampertrace/forgery-localization/stage';
import { makeSelfBlended, toPng } from '@tampertrace/forgery-localization/sbi';
import { loadModels } from './embedded.ts';

const cfg = loadConfig({ ...process.env, TAMPERTRACE_ORT_THREADS: '1' });
const limits = { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 };
let dir: string;
let models: Awaited<ReturnType<typeof loadModels>>;

/** Counts fetches of originals, i.e. decodes of them (no decoded-image cache here). */
class CountingStore extends FsObjectStore {
  originalGets = 0;
  override async get(bucket: string, key: string): Promise<Buffer> {
    if (bucket === Bucket.originals) this.originalGets++;
    return super.get(bucket, key);
  }
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tt-crops-'));
  models = await loadModels(cfg);
});

after(async () => {
  await Promise.all([models?.detector.close(), models?.model.close()]);
  await rm(dir, { recursive: true, force: true });
});

async function inputs(): Promise<Array<[string, Buffer]>> {
  const astro = astronautPng();
  const rgb = await decodeRgb(astro, limits);
  const face = { box: { x: 178, y: 81, width: 94, height: 94 }, keypoints: (await models.detector.detect(rgb))[0].keypoints };
  const forged = await toPng((await makeSelfBlended(rgb, face, { regions: ['nose', 'mouth'], transform: 'blur', seed: 3 })).rgb);
  // Two faces side by side, and a face cut by the left border (its crop is padded).
  const pair = await sharp({ create: { width: 1024, height: 512, channels: 3, background: '#777' } })
    .composite([
      { input: astro, left: 0, top: 0 },
      { input: cameraPng(), left: 512, top: 0 },
    ])
    .jpeg({ quality: 92 })
    .toBuffer();
  const edge = await sharp(astro).extract({ left: 150, top: 0, width: 362, height: 512 }).jpeg().toBuffer();
  const empty = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#4a6' } }).jpeg().toBuffer();
  return [
    ['astronaut', astro],
    ['forged', forged],
    ['pair', pair],
    ['edge', edge],
    ['no-face', empty],
  ];
}

async function analyse(store: CountingStore, name: string, bytes: Buffer, withCrops: boolean) {
  const meta = create(EventMetaSchema, { eventId: `${name}:ingest`, analysisId: `${name}-${withCrops}`, tenantId: 't1', contentSha256: 'ab'.repeat(32) });
  const original = await store.put(Bucket.originals, ObjectKey.original('t1', `${name}-${withCrops}`), bytes, 'image/octet-stream');
  const detection = faceDetectionStage({ store, detector: models.detector, limits, faceCrops: withCrops ? models.localizer.cropSpec : undefined });
  const detected = await detection.handle(create(ProvenanceCheckedSchema, { meta, original }));
  // Through the wire format, as on the bus: boxes become float32.
  const wire = fromBinary(FacesDetectedSchema, toBinary(FacesDetectedSchema, detected));
  const localization = forgeryLocalizationStage({ store: store as ObjectStore, localizer: models.localizer, model: models.locEntry, limits });
  const localized = await localization.handle(wire);
  const artefact = async (ref: { bucket: string; key: string } | undefined) => (ref ? (await store.get(ref.bucket, ref.key)).toString('base64') : '');
  return {
    faces: detected.faces.length,
    crops: Boolean(detected.faceCrops?.key),
    result: fromBinary(ForgeryLocalizedSchema, toBinary(ForgeryLocalizedSchema, { ...localized, meta: undefined, artifacts: undefined })),
    mask: await artefact(localized.artifacts?.mask),
    heatmap: await artefact(localized.artifacts?.heatmap),
  };
}

test('localization from the stored crops equals localization from the original, with one decode of the original instead of two', async () => {
  const withCrops = new CountingStore(path.join(dir, 'with'));
  const without = new CountingStore(path.join(dir, 'without'));
  const all = await inputs();
  let faces = 0;
  for (const [name, bytes] of all) {
    const a = await analyse(withCrops, name, bytes, true);
    const b = await analyse(without, name, bytes, false);
    faces += a.faces;
    assert.equal(a.crops, a.faces > 0, `${name}: crops stored exactly when there are faces`);
    assert.equal(b.crops, false);
    assert.deepEqual(a.result, b.result, `${name}: same faces, scores, regions and verdict`);
    assert.ok(a.mask === b.mask && a.heatmap === b.heatmap, `${name}: same mask and heatmap PNGs`);
  }
  assert.ok(faces >= 5, `the inputs hold faces (${faces})`);
  // The images with faces: the original once (detection) instead of twice; the face-free one
  // needs only its size in localization, which the event carries, in both modes.
  const withFaces = all.length - 1;
  assert.equal(withCrops.originalGets, all.length);
  assert.equal(without.originalGets, all.length + withFaces);
});

test('crops cut for another crop size are not used: localization cuts its own, with the same result', async () => {
  const store = new CountingStore(path.join(dir, 'other'));
  const bytes = astronautPng();
  const meta = create(EventMetaSchema, { eventId: 'x:ingest', analysisId: 'x', tenantId: 't1', contentSha256: 'cd'.repeat(32) });
  const original = await store.put(Bucket.originals, ObjectKey.original('t1', 'x'), bytes, 'image/png');
  const detection = faceDetectionStage({ store, detector: models.detector, limits, faceCrops: { scale: 1.5, size: 128 } });
  const detected = fromBinary(FacesDetectedSchema, toBinary(FacesDetectedSchema, await detection.handle(create(ProvenanceCheckedSchema, { meta, original }))));
  assert.ok(detected.faceCrops?.key);
  const localized = await forgeryLocalizationStage({ store, localizer: models.localizer, model: models.locEntry, limits }).handle(detected);
  assert.equal(store.originalGets, 2, 'the original was fetched again');
  const reference = await analyse(new CountingStore(path.join(dir, 'ref')), 'x', bytes, false);
  assert.deepEqual(fromBinary(ForgeryLocalizedSchema, toBinary(ForgeryLocalizedSchema, { ...localized, meta: undefined, artifacts: undefined })), reference.result);
});
