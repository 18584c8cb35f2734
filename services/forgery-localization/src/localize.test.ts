import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cropFace, verdictFor } from './localize.ts';

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

