/**
 * Crop / mask maths for the forgery-localization stage. Pure functions, no I/O.
 *
 * Coordinate conventions (used everywhere in this service):
 *  - Points are continuous pixel coordinates with a top-left origin: pixel (i, j) covers
 *    [i, i+1) x [j, j+1) and its centre is (i + 0.5, j + 0.5).
 *  - A crop is a square `CropRect` in image pixels (integer position and size, see
 *    `cropRectFor`) that may extend past the image borders (the outside is padded when the
 *    crop is cut). It is resized to `cropSize` x `cropSize` (256 by default) for the model.
 *  - `toCrop` / `toImage` are the exact continuous affine maps between the two frames
 *    (the "align_corners = false" convention used by sharp / PyTorch resize).
 */

export type { Box, Point } from '@tampertrace/shared';
import type { CropRect, Point } from '@tampertrace/shared';
// The crop rectangle is shared with the detection stage, which cuts the crops (face-crops.ts).
export { cropRectFor, type CropRect } from '@tampertrace/shared';

/** Default model input side. */
export const DEFAULT_CROP_SIZE = 256;

/** Image point -> crop point (crop resized to cropSize x cropSize). */
export function toCrop(p: Point, rect: CropRect, cropSize = DEFAULT_CROP_SIZE): Point {
  const s = cropSize / rect.size;
  return { x: (p.x - rect.x) * s, y: (p.y - rect.y) * s };
}

/** Crop point -> image point; exact inverse of `toCrop`. */
export function toImage(p: Point, rect: CropRect, cropSize = DEFAULT_CROP_SIZE): Point {
  const s = rect.size / cropSize;
  return { x: p.x * s + rect.x, y: p.y * s + rect.y };
}

/** Binary mask: 1 where prob >= threshold, else 0 (NaN -> 0). */
export function thresholdMask(prob: Float32Array, threshold: number): Uint8Array {
  const out = new Uint8Array(prob.length);
  for (let i = 0; i < prob.length; i++) out[i] = prob[i] >= threshold ? 1 : 0;
  return out;
}

/**
 * Maps a crop probability map back into full-image coordinates.
 *
 * For every image pixel whose centre lies inside `rect` (and inside the image: the crop is
 * clipped at the borders), the crop prob is sampled bilinearly at the pixel centre (edge
 * values are clamped), then thresholded (`>= threshold`). Set pixels are unioned into
 * `target` (imageWidth*imageHeight, 0/255) with max, so several faces can be pasted into one
 * mask. When `targetHeat` is given (imageWidth*imageHeight, 0..255), the sampled prob as
 * round(255 x prob), clamped to [0, 1] first, is unioned into it with max as well (for every
 * pixel covered by the crop, not only the thresholded ones). Rounding keeps the order, so the
 * max of the bytes is the byte of the max prob: no full-size float map is needed.
 *
 * Returns the number of image pixels this crop marked (>= threshold), before the union.
 */
export function pasteMask(
  cropProb: Float32Array,
  cropSize: number,
  rect: CropRect,
  threshold: number,
  imageWidth: number,
  imageHeight: number,
  target: Uint8Array,
  targetHeat?: Uint8Array,
): number {
  if (cropProb.length !== cropSize * cropSize) {
    throw new RangeError(`cropProb has ${cropProb.length} values, expected ${cropSize}x${cropSize}`);
  }
  const n = imageWidth * imageHeight;
  if (target.length !== n) throw new RangeError(`target has ${target.length} values, expected ${n}`);
  if (targetHeat && targetHeat.length !== n) {
    throw new RangeError(`targetHeat has ${targetHeat.length} values, expected ${n}`);
  }
  if (!(rect.size > 0)) throw new RangeError(`invalid crop size ${rect.size}`);

  const s = cropSize / rect.size;
  const x0 = Math.max(0, Math.floor(rect.x));
  const x1 = Math.min(imageWidth, Math.ceil(rect.x + rect.size));
  const y0 = Math.max(0, Math.floor(rect.y));
  const y1 = Math.min(imageHeight, Math.ceil(rect.y + rect.size));
  if (x0 >= x1 || y0 >= y1) return 0;

  // Per-column sampling (index pair + weight); -1 marks columns whose centre is outside the rect.
  const cols = x1 - x0;
  const cxa = new Int32Array(cols);
  const cxb = new Int32Array(cols);
  const cwx = new Float32Array(cols);
  for (let k = 0; k < cols; k++) {
    const c = x0 + k + 0.5;
    if (c < rect.x || c >= rect.x + rect.size) {
      cxa[k] = -1;
      continue;
    }
    const [a, b, w] = samplePos((c - rect.x) * s - 0.5, cropSize);
    cxa[k] = a;
    cxb[k] = b;
    cwx[k] = w;
  }

  let marked = 0;
  for (let iy = y0; iy < y1; iy++) {
    const c = iy + 0.5;
    if (c < rect.y || c >= rect.y + rect.size) continue;
    const [ya, yb, wy] = samplePos((c - rect.y) * s - 0.5, cropSize);
    const rowA = ya * cropSize;
    const rowB = yb * cropSize;
    const outRow = iy * imageWidth;
    for (let k = 0; k < cols; k++) {
      const xa = cxa[k];
      if (xa < 0) continue;
      const xb = cxb[k];
      const wx = cwx[k];
      const top = cropProb[rowA + xa] * (1 - wx) + cropProb[rowA + xb] * wx;
      const bottom = cropProb[rowB + xa] * (1 - wx) + cropProb[rowB + xb] * wx;
      const v = top * (1 - wy) + bottom * wy;
      const idx = outRow + x0 + k;
      if (targetHeat) {
        const q = Math.round(Math.min(1, Math.max(0, v)) * 255);
        if (q > targetHeat[idx]) targetHeat[idx] = q;
      }
      if (v >= threshold) {
        marked++;
        target[idx] = 255;
      }
    }
  }
  return marked;
}

/** Bilinear sample position along one axis, clamped to [0, size-1]: [lower, upper, weight of upper]. */
function samplePos(t: number, size: number): [number, number, number] {
  const c = Math.min(Math.max(t, 0), size - 1);
  const a = Math.floor(c);
  const b = Math.min(a + 1, size - 1);
  return [a, b, c - a];
}

/** Fraction of the highest prob values averaged by `faceScore`. */
export const FACE_SCORE_TOP_FRACTION = 0.02;

/**
 * Image-level forgery score of one face: the mean of the top `topFraction` (default
 * FACE_SCORE_TOP_FRACTION; the model's manifest sets its own; at least one value) of the prob values inside the face area (`faceMask` non-zero; the
 * whole map when no mask is given). NaN values are ignored; an empty area scores 0.
 *
 * Rationale: a max is too sensitive to single-pixel noise and a global mean dilutes small
 * local edits (a swapped mouth covers a few % of the crop); the top-k mean sits in between.
 * This is the single place the statistic is defined: change it here only.
 */
export function faceScore(prob: Float32Array, faceMask?: Uint8Array, topFraction = FACE_SCORE_TOP_FRACTION): number {
  if (faceMask && faceMask.length !== prob.length) {
    throw new RangeError(`faceMask has ${faceMask.length} values, expected ${prob.length}`);
  }
  const buf = new Float32Array(prob.length);
  let n = 0;
  for (let i = 0; i < prob.length; i++) {
    if (faceMask && faceMask[i] === 0) continue;
    const v = prob[i];
    if (!Number.isNaN(v)) buf[n++] = v;
  }
  if (n === 0) return 0;
  const k = Math.max(1, Math.ceil(n * topFraction));
  // The top k, found by selection rather than sorting all n (a face is 65,536 values, k a
  // few percent of them), then summed in ascending order: the same sum a full sort gives.
  selectNth(buf, n - k, n);
  const top = buf.subarray(n - k, n).sort();
  let sum = 0;
  for (let i = 0; i < k; i++) sum += top[i];
  return sum / k;
}

/**
 * Reorders a[0..n) so that a[nth] holds the value a full ascending sort would put there, with
 * no larger value before it and no smaller one after it (quickselect, three-way partitions so
 * that runs of equal values, common in probability maps, cost nothing extra).
 */
function selectNth(a: Float32Array, nth: number, n: number): void {
  let lo = 0;
  let hi = n - 1;
  while (hi > lo) {
    const x = a[lo], y = a[(lo + hi) >> 1], z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let lt = lo, i = lo, gt = hi;
    while (i <= gt) {
      const v = a[i];
      if (v < pivot) {
        a[i++] = a[lt];
        a[lt++] = v;
      } else if (v > pivot) {
        a[i] = a[gt];
        a[gt--] = v;
      } else i++;
    }
    if (nth < lt) hi = lt - 1;
    else if (nth > gt) lo = gt + 1;
    else return;
  }
}
