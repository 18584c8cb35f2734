import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cropRectFor, faceScore, pasteMask, thresholdMask, toCrop, toImage } from './geometry.ts';
import type { CropRect } from './geometry.ts';

test('cropRectFor expands 1.5x around the centre of the longer side', () => {
  assert.deepEqual(cropRectFor({ x: 100, y: 50, width: 80, height: 100 }), { x: 65, y: 25, size: 150 });
  assert.deepEqual(cropRectFor({ x: 0, y: 0, width: 100, height: 100 }), { x: -25, y: -25, size: 150 });
  assert.deepEqual(cropRectFor({ x: 10, y: 20, width: 40, height: 40 }, 2), { x: -10, y: 0, size: 80 });
  // Rounded to whole pixels: 33*1.5 = 49.5 -> 50, centre 16.5 -> x = round(-8.5) = -8.
  assert.deepEqual(cropRectFor({ x: 0, y: 0, width: 33, height: 20 }), { x: -8, y: -15, size: 50 });
  assert.throws(() => cropRectFor({ x: 0, y: 0, width: 0, height: 10 }), RangeError);
  assert.throws(() => cropRectFor({ x: 0, y: 0, width: 10, height: 10 }, 0), RangeError);
});

test('toCrop / toImage map corners exactly and round-trip', () => {
  const rect: CropRect = { x: 65, y: 25, size: 150 };
  assert.deepEqual(toCrop({ x: 65, y: 25 }, rect), { x: 0, y: 0 });
  assert.deepEqual(toCrop({ x: 215, y: 175 }, rect), { x: 256, y: 256 });
  assert.deepEqual(toCrop({ x: 140, y: 100 }, rect), { x: 128, y: 128 });
  assert.deepEqual(toImage({ x: 128, y: 128 }, rect), { x: 140, y: 100 });
  assert.deepEqual(toCrop({ x: 75, y: 35 }, { x: 50, y: 10, size: 128 }, 512), { x: 100, y: 100 });
  for (const p of [{ x: 0, y: 0 }, { x: 13.25, y: 200.5 }, { x: -40, y: 300 }, { x: 1e4, y: -7.1 }]) {
    const back = toImage(toCrop(p, rect), rect);
    assert.ok(Math.abs(back.x - p.x) < 1e-9 && Math.abs(back.y - p.y) < 1e-9, JSON.stringify({ p, back }));
    const back2 = toCrop(toImage(p, rect, 128), rect, 128);
    assert.ok(Math.abs(back2.x - p.x) < 1e-9 && Math.abs(back2.y - p.y) < 1e-9);
  }
});

test('thresholdMask is >= threshold, 0/1', () => {
  const m = thresholdMask(Float32Array.from([0, 0.49, 0.5, 0.51, 1, NaN]), 0.5);
  assert.deepEqual([...m], [0, 0, 1, 1, 1, 0]);
});

/** 256x256 crop prob with 1 in [x0,x1) x [y0,y1), 0 elsewhere. */
function squareProb(x0: number, x1: number, y0: number, y1: number, size = 256): Float32Array {
  const p = new Float32Array(size * size);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) p[y * size + x] = 1;
  return p;
}

function setPixels(mask: Uint8Array, w: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(`${i % w},${Math.floor(i / w)}`);
  return out;
}

function bbox(mask: Uint8Array, w: number) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity, n = 0;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const x = i % w, y = Math.floor(i / w);
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); n++;
  }
  return { x0, y0, x1, y1, n };
}

test('pasteMask places a crop square at the right image pixels (2x downscale)', () => {
  const W = 120, H = 100;
  const target = new Uint8Array(W * H);
  const rect: CropRect = { x: 10, y: 20, size: 128 }; // 256 crop px -> 128 image px
  // Crop square [64,128) x [64,128) -> image [10+32, 10+64) x [20+32, 20+64).
  const n = pasteMask(squareProb(64, 128, 64, 128), 256, rect, 0.5, W, H, target);
  assert.deepEqual(bbox(target, W), { x0: 42, y0: 52, x1: 73, y1: 83, n: 32 * 32 });
  assert.equal(n, 32 * 32);
  assert.ok(target.every((v) => v === 0 || v === 255));
});

test('pasteMask upscales (crop smaller than 256 image px) and interpolates bilinearly', () => {
  const W = 600, H = 600;
  const target = new Uint8Array(W * H);
  const heat = new Uint8Array(W * H);
  const rect: CropRect = { x: 0, y: 0, size: 512 }; // 2x upscale
  pasteMask(squareProb(100, 110, 50, 60), 256, rect, 0.5, W, H, target, heat);
  assert.deepEqual(bbox(target, W), { x0: 200, y0: 100, x1: 219, y1: 119, n: 400 });
  // Pixel 199 samples crop x = (199.5)/2 - 0.5 = 99.25 -> 0.25 * 1, as a byte round(0.25 x 255).
  assert.equal(heat[105 * W + 199], 64);
  assert.equal(heat[105 * W + 200], 191);
  assert.equal(heat[105 * W + 205], 255);
  // Outside the rect nothing is touched.
  assert.equal(heat[550 * W + 550], 0);
});

test('pasteMask clips at the image borders (crop extending past every side)', () => {
  const W = 100, H = 80;
  const target = new Uint8Array(W * H);
  const rect: CropRect = { x: -64, y: -32, size: 256 }; // 1:1, covers x -64..191, y -32..223
  // Whole crop = 1: image coverage is the full image.
  pasteMask(new Float32Array(256 * 256).fill(1), 256, rect, 0.5, W, H, target);
  assert.deepEqual(bbox(target, W), { x0: 0, y0: 0, x1: 99, y1: 79, n: W * H });

  // Square straddling the top-left corner: crop [40,80) x [20,50) -> image [-24,16) x [-12,18).
  const t2 = new Uint8Array(W * H);
  const n = pasteMask(squareProb(40, 80, 20, 50), 256, rect, 0.5, W, H, t2);
  assert.deepEqual(bbox(t2, W), { x0: 0, y0: 0, x1: 15, y1: 17, n: 16 * 18 });
  assert.equal(n, 16 * 18);

  // Crop entirely outside the image: nothing happens.
  const t3 = new Uint8Array(W * H);
  assert.equal(pasteMask(new Float32Array(256 * 256).fill(1), 256, { x: 200, y: 0, size: 50 }, 0.5, W, H, t3), 0);
  assert.equal(setPixels(t3, W).length, 0);
});

test('pasteMask unions several faces with max and keeps existing marks', () => {
  const W = 64, H = 32;
  const target = new Uint8Array(W * H);
  const heat = new Uint8Array(W * H);
  target[0] = 255;
  pasteMask(new Float32Array(16 * 16).fill(0.9), 16, { x: 4, y: 4, size: 16 }, 0.5, W, H, target, heat);
  pasteMask(new Float32Array(16 * 16).fill(0.3), 16, { x: 12, y: 4, size: 16 }, 0.5, W, H, target, heat);
  assert.equal(target[0], 255);
  assert.equal(target[10 * W + 14], 255); // overlap: first face marked it, second (0.3) does not erase
  assert.equal(heat[10 * W + 14], 229); // round(255 x 0.9 as float32, 229.49999): the larger of the two
  assert.equal(heat[10 * W + 25], 77); // round(0.3 x 255)
  // Out-of-range probabilities are clamped to 0..255.
  const h2 = new Uint8Array(4 * 4);
  pasteMask(Float32Array.from([1.7, -0.2, 1.7, -0.2]), 2, { x: 0, y: 0, size: 2 }, 0.5, 4, 4, new Uint8Array(16), h2);
  assert.deepEqual([h2[0], h2[1]], [255, 0]);
  assert.equal(target[10 * W + 25], 0);
  assert.throws(() => pasteMask(new Float32Array(10), 16, { x: 0, y: 0, size: 16 }, 0.5, W, H, target), RangeError);
});

test('faceScore = mean of the top 2% inside the face area', () => {
  // 100 values 0.00..0.99: top 2 = 0.99, 0.98.
  const p = Float32Array.from({ length: 100 }, (_, i) => i / 100);
  assert.ok(Math.abs(faceScore(p) - 0.985) < 1e-6);
  // 1000 values, 20 of them at 0.8, rest 0.1 -> 0.8
  const q = new Float32Array(1000).fill(0.1);
  for (let i = 0; i < 20; i++) q[i * 50] = 0.8;
  assert.ok(Math.abs(faceScore(q) - 0.8) < 1e-6);
  // Mask excludes the hot pixels -> 0.1
  const mask = new Uint8Array(1000).fill(1);
  for (let i = 0; i < 20; i++) mask[i * 50] = 0;
  assert.ok(Math.abs(faceScore(q, mask) - 0.1) < 1e-6);
  // Small area: at least one value
  assert.ok(Math.abs(faceScore(Float32Array.from([0.2, 0.7, 0.4])) - 0.7) < 1e-6);
  assert.equal(faceScore(new Float32Array(4), new Uint8Array(4)), 0);
});

test('faceScore selects the top values exactly as a full sort does, ties and NaN included', () => {
  const bySort = (p: Float32Array, top: number) => {
    const v = p.filter((x) => !Number.isNaN(x)).sort();
    const k = Math.max(1, Math.ceil(v.length * top));
    let sum = 0;
    for (let i = v.length - k; i < v.length; i++) sum += v[i];
    return sum / k;
  };
  let seed = 3;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let t = 0; t < 40; t++) {
    const n = 1 + Math.floor(rand() * 70000);
    // Coarse levels make long runs of equal values, as saturated model outputs do.
    const levels = t % 3 === 0 ? 4 : t % 3 === 1 ? 256 : 0;
    const p = Float32Array.from({ length: n }, () => (rand() < 0.01 ? NaN : levels ? Math.floor(rand() * levels) / levels : rand()));
    for (const top of [0.02, 0.1, 1]) assert.equal(faceScore(p, undefined, top), bySort(p, top), `case ${t}, n ${n}, top ${top}`);
  }
});
