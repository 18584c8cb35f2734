// Region highlight shapes on the image: the stored polygons, or (older analyses) from a face's keypoints and box.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Face } from './api.ts';
import { regionShape, type GridShape } from './regions.ts';

// An upright face in a 1000x800 image: eyes at y=300, nose tip at 350, mouth at 400.
const face: Face = {
  index: 0,
  box: { x: 400, y: 220, width: 200, height: 240 },
  detectionScore: 0.9,
  keypoints: [
    { x: 450, y: 300 },
    { x: 550, y: 300 },
    { x: 500, y: 350 },
    { x: 500, y: 400 },
    { x: 410, y: 320 },
    { x: 590, y: 320 },
  ],
  forgeryScore: 0.5,
  regions: [],
  maskedFraction: 0,
};

/** The image-pixel bounding box of a shape's set cells. */
function bounds(name: string) {
  const s = regionShape(face, name, 1000, 800) as GridShape;
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (let j = 0; j < s.gh; j++)
    for (let i = 0; i < s.gw; i++)
      if (s.grid[j * s.gw + i]) [x0, y0, x1, y1] = [Math.min(x0, i), Math.min(y0, j), Math.max(x1, i), Math.max(y1, j)];
  const k = s.window.width / s.gw;
  return { x0: s.window.x + x0 * k, y0: s.window.y + y0 * k, x1: s.window.x + (x1 + 1) * k, y1: s.window.y + (y1 + 1) * k };
}

test('each region lies where the keypoints put it, in image pixels', () => {
  const nose = bounds('nose');
  assert.ok(nose.x0 > 460 && nose.x1 < 540 && nose.y0 > 285 && nose.y1 < 375, JSON.stringify(nose));
  const mouth = bounds('mouth');
  assert.ok(mouth.x0 > 445 && mouth.x1 < 555 && mouth.y0 > 375 && mouth.y1 < 425, JSON.stringify(mouth));
  // The subject's left eye is on the image's right.
  const left = bounds('left eye');
  assert.ok(left.x0 > 520 && left.x1 < 580 && Math.abs((left.y0 + left.y1) / 2 - 300) < 6, JSON.stringify(left));
});

test('the grid stays small on a large image, and unknown regions or boxless faces have no shape', () => {
  const big: Face = { ...face, box: { x: 1000, y: 1000, width: 2000, height: 2400 }, keypoints: face.keypoints.map((p) => ({ x: p.x * 10 - 3000, y: p.y * 10 - 2000 })) };
  const s = regionShape(big, 'nose', 6000, 6000) as GridShape;
  assert.ok(Math.max(s.gw, s.gh) <= 160);
  assert.equal(regionShape(face, 'tail', 1000, 800), undefined);
  assert.equal(regionShape({ ...face, box: undefined }, 'nose', 1000, 800), undefined);
});

test('a region with stored polygons is drawn from them, holes kept, not recomputed from the keypoints', () => {
  const lip = {
    name: 'lip',
    score: 0.4,
    coverage: 0.1,
    // proto3 JSON: a zero coordinate and a false hole are left out
    polygons: [
      { points: [{ x: 450, y: 380 }, { x: 550, y: 380 }, { x: 550, y: 420 }, { x: 450, y: 420 }] },
      { points: [{ x: 470, y: 395 }, { x: 530, y: 395 }, { x: 530, y: 405 }, { x: 470, y: 405 }], hole: true },
    ],
  };
  const s = regionShape({ ...face, regions: [lip] }, 'lip', 1000, 800);
  assert.equal(s?.kind, 'polygons');
  if (s?.kind !== 'polygons') return;
  assert.deepEqual(s.window, { x: 450, y: 380, width: 100, height: 40 });
  assert.deepEqual(s.polygons.map((p) => p.hole), [false, true]);
  // A region of the same face without polygons still falls back to the keypoint shape.
  assert.equal(regionShape({ ...face, regions: [lip] }, 'nose', 1000, 800)?.kind, 'grid');
  // Points at the image's origin arrive without x and y.
  const corner = regionShape({ ...face, regions: [{ ...lip, polygons: [{ points: [{}, { x: 10 }, { x: 10, y: 10 }] }] }] }, 'lip', 1000, 800);
  assert.deepEqual(corner?.window, { x: 0, y: 0, width: 10, height: 10 });
});
