import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { faceRegions } from '@tampertrace/shared/face-regions';
import { Localizer, cropFace, verdictFor, type FaceInput } from './localize.ts';
import type { ForgeryModel } from './model.ts';

const W = 64;

test('verdict from the highest face score and the uncertainty band', () => {
  const t = { pixel: 0.5, band: [0.4, 0.6] as [number, number] };
  assert.equal(verdictFor([], t), undefined);
  assert.equal(verdictFor([0.1, 0.39], t), 'LIKELY_AUTHENTIC');
  assert.equal(verdictFor([0.1, 0.4], t), 'UNCERTAIN');
  assert.equal(verdictFor([0.59, 0.6], t), 'LIKELY_FORGED');
});

test('a crop leaving the image is padded with the border pixels, not black', async () => {
  const img = { data: new Uint8Array(W * W * 3), width: W, height: W };
  for (let i = 0; i < W * W; i++) img.data.fill(i % W < W / 2 ? 50 : 200, i * 3, i * 3 + 3);
  const crop = await cropFace(img, { x: -32, y: 0, size: 64 }, 64);
  // Left half of the crop lies outside the image: it repeats the left border (50/255).
  assert.ok(Math.abs(crop[10 * 64 + 5] - 50 / 255) < 0.02);
  assert.ok(Math.abs(crop[10 * 64 + 60] - 50 / 255) < 0.02, 'image column 28 is still dark');
});

/** The detection stage's geometry of the astronaut's face (testdata/landmarks, from the landmark models). */
const GEOMETRY = JSON.parse(readFileSync(fileURLToPath(new URL('../../../testdata/landmarks/astronaut-geometry.json', import.meta.url)), 'utf8')) as Required<Pick<FaceInput, 'box' | 'keypoints' | 'landmarks' | 'headPose'>> & { presence: number };

/** A model whose forgery map is 1 on the crop's left half (the image left: the subject's right side), 0 elsewhere. */
const leftHalf: ForgeryModel = {
  entry: { name: 'left-half', version: '0', task: 'forgery-localization', path: '', sha256: '', inputSize: 64, licence: '' },
  size: 64,
  close: async () => {},
  async run(crops) {
    const prob = Float32Array.from({ length: 64 * 64 }, (_, i) => (i % 64 < 32 ? 1 : 0));
    return crops.map(() => ({ prob }));
  },
};

test('faces with landmarks are scored on the landmark polygons, which are stored in image pixels; without landmarks or too degraded, the keypoint regions', async () => {
  const localizer = new Localizer(leftHalf, { pixel: 0.5, band: [0.4, 0.6] });
  const face: FaceInput = { box: GEOMETRY.box, score: 0.9, keypoints: GEOMETRY.keypoints, landmarks: GEOMETRY.landmarks, landmarkPresence: GEOMETRY.presence, headPose: GEOMETRY.headPose };
  const dims = { width: 512, height: 512 };
  const crop = () => new Float32Array(3 * 64 * 64);
  const { faces: [withMesh] } = await localizer.localizeCrops(dims, [face], [crop()]);
  assert.equal(withMesh.quality, 'JUDGEABLE');
  const by = new Map(withMesh.regions.map((r) => [r.name, r]));
  // every polygon region is stored exactly as faceRegions drew it in the image
  const expected = faceRegions(GEOMETRY.landmarks, GEOMETRY.headPose.yawDeg)!;
  for (const r of expected) assert.deepEqual(by.get(r.name)?.polygons, r.polygons, r.name);
  assert.ok(by.has('right pupil') && by.has('beard'), 'pupils and zones are scored too');
  // the subject's right eye is on the image left, where the map is 1
  assert.equal(by.get('right eye')!.score, 1);
  assert.equal(by.get('left eye')!.score, 0);

  const { faces: [degraded, bare] } = await localizer.localizeCrops(dims, [{ ...face, landmarkPresence: 0.1 }, { box: face.box, score: 0.9, keypoints: face.keypoints }], [crop(), crop()]);
  assert.equal(degraded.quality, 'TOO_DEGRADED');
  assert.equal(bare.quality, 'UNSPECIFIED');
  for (const f of [degraded, bare]) {
    assert.ok(f.regions.length > 0 && f.regions.every((r) => r.polygons === undefined), 'keypoint regions, no polygons');
    assert.ok(!f.regions.some((r) => r.name === 'right pupil'));
  }
});
