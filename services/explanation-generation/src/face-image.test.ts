// The face image a vision-language explainer is shown: the localizer's crop, mask drawn on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { faceWithMask, FACE_IMAGE_SIZE } from './face-image.ts';

test('the crop is the face box x1.5, square, with the masked area tinted red and outlined', async () => {
  const W = 200;
  const H = 160;
  const grey = Buffer.alloc(W * H * 3, 100);
  // Mask: the right half of the face box (x 80..120, y 60..100).
  const mask = Buffer.alloc(W * H * 3, 0);
  for (let y = 60; y < 100; y++) for (let x = 100; x < 120; x++) mask.fill(255, (y * W + x) * 3, (y * W + x) * 3 + 3);
  const png = await faceWithMask({ width: W, height: H, data: grey }, { width: W, height: H, data: mask }, { box: { x: 80, y: 60, width: 40, height: 40 } as never });
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [FACE_IMAGE_SIZE, FACE_IMAGE_SIZE, 3]);
  const at = (fx: number, fy: number) => [...data.subarray((Math.round(fy * FACE_IMAGE_SIZE) * FACE_IMAGE_SIZE + Math.round(fx * FACE_IMAGE_SIZE)) * 3).subarray(0, 3)];
  // The crop spans x 70..130: its left third is unmasked grey, the masked area is reddened.
  assert.deepEqual(at(0.3, 0.5), [100, 100, 100]);
  const red = at(0.6, 0.5);
  assert.ok(red[0] > 130 && red[1] < 80 && red[2] < 80, `tinted: ${red}`);
  // Without a mask it is the plain crop.
  const plain = await sharp(await faceWithMask({ width: W, height: H, data: grey }, undefined, { box: { x: 80, y: 60, width: 40, height: 40 } as never })).raw().toBuffer();
  assert.ok(plain.every((v) => v === 100));
});
