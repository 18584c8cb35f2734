import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { renderOverlay } from './overlay.ts';

const W = 64;
const grey = { data: new Uint8Array(W * W * 3).fill(100), width: W, height: W };

test('the overlay tints masked pixels red and draws the face box', async () => {
  const mask = new Uint8Array(W * W);
  mask[30 * W + 30] = 1;
  const png = await renderOverlay(grey, mask, [{ x: 10, y: 10, width: 20, height: 20 }]);
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [W, W, 3]);
  const px = (x: number, y: number) => [...data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3)];
  assert.ok(px(30, 30)[0] > 150 && px(30, 30)[1] < 100, `tinted ${px(30, 30)}`);
  assert.deepEqual(px(10, 15), [0x00, 0xe6, 0x76]);
  assert.deepEqual(px(50, 50), [100, 100, 100]);
});
