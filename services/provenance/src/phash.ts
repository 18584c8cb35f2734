// The perceptual hash of a whole image (pure): a 64-bit DCT hash in the manner of pHash, taken
// after trimming uniform borders, so that resizing, recompression, light crops and added borders
// move few bits; and the hash the same image mirrored left to right would have, from the same
// coefficients, so that a mirrored copy can be matched too.
import sharp from 'sharp';
import type { RgbImage } from '@tampertrace/shared';

/** Side of the grey thumbnail the DCT runs on. */
const N = 32;
/** Side of the block of lowest frequencies kept (8 x 8 = 64 bits). */
const K = 8;
/** A border row or column is flat: its channels span at most this (0-255)... */
const BORDER_TOLERANCE = 24;
/** ... and it is near black (every channel at most DARK) or near white (every channel at least LIGHT). */
const DARK = 40;
const LIGHT = 215;

export interface PerceptualHash {
  /** The image's hash; bit 63 is coefficient (0, 0), then row by row. */
  hash: bigint;
  /** The hash of the image mirrored left to right. */
  mirrored: bigint;
}

/**
 * The rectangle left once uniform black or white borders (a frame, letterboxing) are cut off; the
 * whole image when there are none. Only near-black and near-white rows and columns count, and
 * each must be flat on its own (not compared with a corner), so that a sky or a wall is never
 * taken for a border and a mirrored copy is trimmed alike.
 */
export function trimBorders(img: RgbImage): { left: number; top: number; width: number; height: number } {
  const { data, width, height } = img;
  const border = (x0: number, y0: number, dx: number, dy: number, n: number) => {
    let lo = 255;
    let hi = 0;
    for (let k = 0, x = x0, y = y0; k < n; k++, x += dx, y += dy) {
      const i = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) {
        lo = Math.min(lo, data[i + c]);
        hi = Math.max(hi, data[i + c]);
      }
    }
    return hi - lo <= BORDER_TOLERANCE && (hi <= DARK || lo >= LIGHT);
  };
  let top = 0;
  let bottom = height;
  let left = 0;
  let right = width;
  // At most a third of each side goes: a picture that is mostly black or white is not a border.
  while (top < height / 3 && border(0, top, 1, 0, width)) top++;
  while (height - bottom < height / 3 && border(0, bottom - 1, 1, 0, width)) bottom--;
  while (left < width / 3 && border(left, top, 0, 1, bottom - top)) left++;
  while (width - right < width / 3 && border(right - 1, top, 0, 1, bottom - top)) right--;
  return { left, top, width: right - left, height: bottom - top };
}

/** The grey N x N thumbnail of the image inside its borders (area-averaged by libvips); `inset`: the share cut from each side first. */
export async function thumbnail(img: RgbImage, inset = 0): Promise<Float64Array> {
  const t = trimBorders(img);
  const dx = Math.floor(t.width * inset);
  const dy = Math.floor(t.height * inset);
  const r = { left: t.left + dx, top: t.top + dy, width: t.width - 2 * dx, height: t.height - 2 * dy };
  const grey = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .extract(r)
    .resize(N, N, { fit: 'fill', kernel: 'cubic' })
    .greyscale()
    .raw()
    .toBuffer();
  return Float64Array.from(grey.subarray(0, N * N));
}

const COS = (() => {
  const c = new Float64Array(K * N);
  for (let u = 0; u < K; u++) for (let x = 0; x < N; x++) c[u * N + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * N));
  return c;
})();

/** The K x K lowest DCT-II coefficients of an N x N block, row (vertical frequency) by row. */
export function lowFrequencies(px: Float64Array): Float64Array {
  // Separable: first along rows (horizontal frequency u), then along columns (vertical v).
  const rows = new Float64Array(N * K);
  for (let y = 0; y < N; y++) {
    for (let u = 0; u < K; u++) {
      let s = 0;
      for (let x = 0; x < N; x++) s += px[y * N + x] * COS[u * N + x];
      rows[y * K + u] = s;
    }
  }
  const out = new Float64Array(K * K);
  for (let v = 0; v < K; v++) {
    for (let u = 0; u < K; u++) {
      let s = 0;
      for (let y = 0; y < N; y++) s += rows[y * K + u] * COS[v * N + y];
      out[v * K + u] = s;
    }
  }
  return out;
}

/** One bit per coefficient: above the median of the 63 AC coefficients (the DC term, the mean brightness, always is). */
function bits(coeffs: Float64Array): bigint {
  const ac = Array.from(coeffs.subarray(1)).sort((a, b) => a - b);
  const median = (ac[31] + ac[32]) / 2;
  let h = 0n;
  for (let i = 0; i < K * K; i++) h = (h << 1n) | (coeffs[i] > median ? 1n : 0n);
  return h;
}

/** Mirroring left to right flips the sign of every odd horizontal frequency. */
function mirrorCoefficients(c: Float64Array): Float64Array {
  return c.map((x, i) => (i % K) % 2 === 1 ? -x : x);
}

export function hashCoefficients(coeffs: Float64Array): PerceptualHash {
  return { hash: bits(coeffs), mirrored: bits(mirrorCoefficients(coeffs)) };
}

export async function perceptualHash(img: RgbImage, inset = 0): Promise<PerceptualHash> {
  return hashCoefficients(lowFrequencies(await thumbnail(img, inset)));
}

/** Bits that differ between two 64-bit hashes. */
export function hamming(a: bigint, b: bigint): number {
  let x = (a ^ b) & 0xffff_ffff_ffff_ffffn;
  let n = 0;
  while (x) {
    x &= x - 1n;
    n++;
  }
  return n;
}

/** 16 lower-case hex digits. */
export function hashHex(h: bigint): string {
  return h.toString(16).padStart(16, '0');
}
