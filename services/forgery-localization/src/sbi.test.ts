import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeSelfBlended } from './sbi.ts';

// A textured 256x256 image with an upright synthetic face layout.
const W = 256;
const img = { data: new Uint8Array(W * W * 3).map((_, i) => (i * 37) % 200 + 20), width: W, height: W };
const face = {
  box: { x: 64, y: 64, width: 128, height: 128 },
  keypoints: [{ x: 100, y: 100 }, { x: 156, y: 100 }, { x: 128, y: 135 }, { x: 128, y: 165 }, { x: 70, y: 120 }, { x: 186, y: 120 }],
};

test('the ground truth sits on the requested region and only there the pixels change', async () => {
  const s = await makeSelfBlended(img, face, { regions: ['nose'], transform: 'colour', seed: 1 });
  let n = 0;
  let sx = 0;
  let sy = 0;
  for (let p = 0; p < s.gt.length; p++) {
    if (!s.gt[p]) continue;
    n++;
    sx += p % W;
    sy += Math.floor(p / W);
  }
  assert.ok(n > 100, `ground truth has ${n} pixels`);
  assert.ok(Math.abs(sx / n - 128) < 6 && Math.abs(sy / n - 125) < 15, `centroid ${sx / n}, ${sy / n}`);
  // Far from the nose (top-left corner) nothing changed; at the nose tip something did.
  for (let c = 0; c < 3; c++) assert.equal(s.rgb.data[(5 * W + 5) * 3 + c], img.data[(5 * W + 5) * 3 + c]);
  const tip = (130 * W + 128) * 3;
  assert.ok([0, 1, 2].some((c) => s.rgb.data[tip + c] !== img.data[tip + c]));
});

test('the same seed gives the same forgery', async () => {
  const a = await makeSelfBlended(img, face, { regions: ['mouth'], transform: 'blur', seed: 9 });
  const b = await makeSelfBlended(img, face, { regions: ['mouth'], transform: 'blur', seed: 9 });
  assert.deepEqual(a.rgb.data, b.rgb.data);
});
