// Face geometry for each BlazeFace face: MediaPipe's 468-point face mesh and its iris points, on
// MediaPipe's own roll-aligned crops, batched over faces, mapped back to oriented image pixels,
// with the mesh model's face-presence score and the head pose (yaw, pitch, roll) from the mesh.
// Models: models/face-landmark (converted from the mediapipe 0.10.14 wheel, see its card).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DynamicBatcher } from '@tampertrace/shared/batcher';
import { createWithCpuFallback } from '@tampertrace/shared/execution-providers';
import { MESH, MESH_POINTS } from '@tampertrace/shared/face-landmarks';
import { observeInference } from '@tampertrace/shared/observe';
import { OnnxPool, localOnnxRunner, type OnnxRunner } from '@tampertrace/shared/onnx-pool';
import type { Box, Point, RgbImage } from '@tampertrace/shared';

/** The mesh model's crop side and the iris model's. */
export const MESH_INPUT = 192;
export const IRIS_INPUT = 64;
/** MediaPipe's face ROI: 1.5x the detection box's longer side (face_detection_front_detection_to_roi). */
export const FACE_ROI_SCALE = 1.5;
/** MediaPipe's eye ROI: 2.3x the eye-corner distance (iris_landmark_landmarks_to_roi). */
/**
 * Roll left between the detection's crop and the face's own eye line (degrees) beyond which the
 * mesh runs a second time on the crop its landmarks give: BlazeFace's eye keypoints are coarse
 * on rolled faces (27 degrees off on a face turned a quarter, measured), and the mesh model
 * corrects only part of a residual roll.
 */
export const RECROP_ROLL_DEG = 8;
export const EYE_ROI_SCALE = 2.3;

/** A square, rotated crop: centre and side in image pixels, angle in radians (clockwise, y down). */
export interface Roi {
  cx: number;
  cy: number;
  side: number;
  angle: number;
}

/** Head orientation, degrees; conventions in HeadPose (common.proto) and the README. */
export interface HeadPose {
  yawDeg: number;
  pitchDeg: number;
  rollDeg: number;
}

export interface FaceGeometry {
  /** 468 mesh points then 5 iris points per eye (subject's right, then left), image pixels. */
  landmarks: Point[];
  /** The mesh model's face-presence score in [0, 1]. */
  presence: number;
  headPose: HeadPose;
}

/**
 * MediaPipe's face ROI from a BlazeFace detection: the box centre, side 1.5x the box's longer
 * side, rotated so that the eye keypoints (0: subject's right eye, 1: left eye) lie on a
 * horizontal line of the crop.
 */
export function faceRoi(box: Box, keypoints: readonly Point[]): Roi {
  const [re, le] = keypoints;
  const angle = re && le ? Math.atan2(le.y - re.y, le.x - re.x) : 0;
  return { cx: box.x + box.width / 2, cy: box.y + box.height / 2, side: FACE_ROI_SCALE * Math.max(box.width, box.height), angle };
}

/**
 * MediaPipe's eye ROI from the two eye-corner landmarks: centred between them, rotated along
 * them, 2.3x their distance. (MediaPipe takes 2.3x the longer side of their axis-aligned bounds,
 * which shrinks the crop on a rolled face; the distance does not.)
 */
export function eyeRoi(a: Point, b: Point): Roi {
  return { cx: (a.x + b.x) / 2, cy: (a.y + b.y) / 2, side: EYE_ROI_SCALE * Math.hypot(b.x - a.x, b.y - a.y), angle: Math.atan2(b.y - a.y, b.x - a.x) };
}

/**
 * MediaPipe's face ROI from the face's own landmarks (face_landmark_landmarks_to_roi, what it
 * tracks with in video): rotated along the outer eye corners (33 -> 263), 1.5x the landmarks'
 * extent. The extent is measured along the rotated axes rather than the image's (MediaPipe's
 * axis-aligned bounds grow the crop on a rolled face).
 */
export function landmarkRoi(landmarks: readonly Point[]): Roi {
  const a = landmarks[MESH.rightEyeOuter];
  const b = landmarks[MESH.leftEyeOuter];
  const angle = Math.atan2(b.y - a.y, b.x - a.x);
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  let u0 = Infinity;
  let u1 = -Infinity;
  let v0 = Infinity;
  let v1 = -Infinity;
  for (let i = 0; i < MESH_POINTS; i++) {
    const p = landmarks[i];
    const u = p.x * c + p.y * s;
    const v = -p.x * s + p.y * c;
    u0 = Math.min(u0, u);
    u1 = Math.max(u1, u);
    v0 = Math.min(v0, v);
    v1 = Math.max(v1, v);
  }
  const um = (u0 + u1) / 2;
  const vm = (v0 + v1) / 2;
  return { cx: um * c - vm * s, cy: um * s + vm * c, side: FACE_ROI_SCALE * Math.max(u1 - u0, v1 - v0), angle };
}

/** Crop pixels (0..size, continuous) to image pixels. `flip`: the crop was mirrored left-right. */
export function roiToImage(roi: Roi, size: number, x: number, y: number, flip = false): Point {
  const u = ((flip ? size - x : x) / size - 0.5) * roi.side;
  const v = (y / size - 0.5) * roi.side;
  const c = Math.cos(roi.angle);
  const s = Math.sin(roi.angle);
  return { x: roi.cx + u * c - v * s, y: roi.cy + u * s + v * c };
}

/**
 * Cuts a rotated square crop as NHWC floats in [0, 1]: each output pixel averages n x n bilinear
 * samples (n grows with the downscale, so large faces are not aliased), borders replicated as
 * MediaPipe's BORDER_REPLICATE does. Writes into `out` (size*size*3) at `offset`.
 */
export function cutRoi(img: RgbImage, roi: Roi, size: number, out: Float32Array, offset = 0, flip = false): void {
  const { width: W, height: H, data } = img;
  const step = roi.side / size;
  const n = Math.max(1, Math.min(4, Math.ceil(step)));
  const c = Math.cos(roi.angle) * step;
  const s = Math.sin(roi.angle) * step;
  const inv = 1 / (255 * n * n);
  let o = offset;
  for (let j = 0; j < size; j++) {
    for (let i = 0; i < size; i++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let sy = 0; sy < n; sy++) {
        const v = j + (sy + 0.5) / n - size / 2;
        for (let sx = 0; sx < n; sx++) {
          const ii = flip ? size - i - (sx + 0.5) / n : i + (sx + 0.5) / n;
          const u = ii - size / 2;
          // image position of this sample, then bilinear between pixel centres
          const x = Math.min(Math.max(roi.cx + u * c - v * s - 0.5, 0), W - 1);
          const y = Math.min(Math.max(roi.cy + u * s + v * c - 0.5, 0), H - 1);
          const x0 = Math.floor(x);
          const y0 = Math.floor(y);
          const x1 = Math.min(x0 + 1, W - 1);
          const y1 = Math.min(y0 + 1, H - 1);
          const fx = x - x0;
          const fy = y - y0;
          const p00 = (y0 * W + x0) * 3;
          const p01 = (y0 * W + x1) * 3;
          const p10 = (y1 * W + x0) * 3;
          const p11 = (y1 * W + x1) * 3;
          const w00 = (1 - fx) * (1 - fy);
          const w01 = fx * (1 - fy);
          const w10 = (1 - fx) * fy;
          const w11 = fx * fy;
          r += data[p00] * w00 + data[p01] * w01 + data[p10] * w10 + data[p11] * w11;
          g += data[p00 + 1] * w00 + data[p01 + 1] * w01 + data[p10 + 1] * w10 + data[p11 + 1] * w11;
          b += data[p00 + 2] * w00 + data[p01 + 2] * w01 + data[p10 + 2] * w10 + data[p11 + 2] * w11;
        }
      }
      out[o++] = r * inv;
      out[o++] = g * inv;
      out[o++] = b * inv;
    }
  }
}

/**
 * Head pose from the mesh's 3D points (x, y in crop pixels, z in the same units, larger away from
 * the camera), in the crop's frame, then the crop's roll added back:
 *  - the face's x axis runs from the subject's right to left (oval points 234 -> 454 plus eye
 *    corners 33 -> 263), its down axis from the forehead top (10) to the chin (152), made
 *    orthogonal to x; the face normal points out of the face (x cross down, towards the camera);
 *  - roll: the angle of the x axis in the image, clockwise positive (y down);
 *  - yaw: the normal's turn towards the image right (the subject's left), after removing roll;
 *  - pitch: the normal's turn towards the image top (looking up), after removing roll.
 * Pitch is 0 when the forehead top and chin points are at the same depth, which the mesh's own
 * face shape makes only roughly "straight ahead": read it to +-10 degrees.
 */
export function headPose(mesh: Float32Array | number[], offset: number, cropAngle: number): HeadPose {
  const P = (i: number) => [mesh[offset + 3 * i], mesh[offset + 3 * i + 1], mesh[offset + 3 * i + 2]];
  const subv = (a: number[], b: number[]) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
  const add = (a: number[], b: number[]) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
  const norm = (a: number[]) => {
    const l = Math.hypot(a[0], a[1], a[2]) || 1;
    return [a[0] / l, a[1] / l, a[2] / l];
  };
  const dotv = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const cross = (a: number[], b: number[]) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const x = norm(add(subv(P(MESH.leftCheekSide), P(MESH.rightCheekSide)), subv(P(MESH.leftEyeOuter), P(MESH.rightEyeOuter))));
  const d0 = subv(P(MESH.chin), P(MESH.foreheadTop));
  const down = norm(subv(d0, x.map((c) => c * dotv(d0, x))));
  // x right, y down, z away: x cross down points away from the camera; the face normal is its opposite.
  const n = cross(x, down).map((c) => -c);
  const inPlane = Math.atan2(x[1], x[0]);
  // remove the in-plane angle from the normal before reading yaw and pitch
  const c = Math.cos(-inPlane);
  const s = Math.sin(-inPlane);
  const nx = n[0] * c - n[1] * s;
  const ny = n[0] * s + n[1] * c;
  const deg = 180 / Math.PI;
  const wrap = (a: number) => {
    let r = a;
    while (r <= -180) r += 360;
    while (r > 180) r -= 360;
    return r;
  };
  return {
    yawDeg: Math.atan2(nx, -n[2]) * deg,
    pitchDeg: Math.atan2(-ny, -n[2]) * deg,
    rollDeg: wrap((inPlane + cropAngle) * deg),
  };
}

export interface LandmarkerOptions {
  meshModelPath: string;
  irisModelPath: string;
  /** Names and versions reported in ModelRef (the manifest's); default the bundled models'. */
  meshModel?: { name: string; version: string };
  irisModel?: { name: string; version: string };
  executionProviders?: string[];
  intraOpNumThreads?: number;
  /** Sessions in a worker thread of their own (off the event loop). */
  worker?: boolean;
  /** Most crops in one session run. Default 16. */
  maxBatch?: number;
}

interface Loaded {
  session: OnnxRunner;
  info: { name: string; version: string; sha256: string };
}

async function load(path: string, ref: { name: string; version: string }, o: LandmarkerOptions, pool: OnnxPool | undefined): Promise<Loaded> {
  const bytes = await readFile(path);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const { session } = await createWithCpuFallback(path, o.executionProviders ?? ['cpu'], (executionProviders) => {
    const options = { executionProviders, intraOpNumThreads: o.intraOpNumThreads ?? 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' as const, logSeverityLevel: 3 as const };
    return pool ? pool.open({ path, sha256 }, options) : localOnnxRunner(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), options);
  });
  return { session, info: { name: ref.name, version: ref.version, sha256 } };
}

/** Runs a model on batches of crops and splits every output per crop. */
function cropBatcher(m: Loaded, size: number, outputs: readonly string[], maxBatch: number): DynamicBatcher<Float32Array, Float32Array[]> {
  const n = size * size * 3;
  return new DynamicBatcher(
    async (crops: Float32Array[]) => {
      const B = crops.length;
      const data = B === 1 ? crops[0] : new Float32Array(B * n);
      if (B > 1) crops.forEach((c, i) => data.set(c, i * n));
      const out = await observeInference(m.info.name, B, () => m.session.run({ input: { data, dims: [B, size, size, 3] } }));
      return crops.map((_, i) =>
        outputs.map((name) => {
          const all = out[name].data;
          const per = all.length / B;
          return all.subarray(i * per, (i + 1) * per);
        }),
      );
    },
    { maxBatchSize: maxBatch, maxWaitMs: 0, maxQueue: 1024 },
  );
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-Math.max(-100, Math.min(100, x))));

export class FaceLandmarker {
  readonly models: { name: string; version: string; sha256: string }[];
  private readonly mesh: DynamicBatcher<Float32Array, Float32Array[]>;
  private readonly iris: DynamicBatcher<Float32Array, Float32Array[]>;

  private constructor(
    private readonly meshModel: Loaded,
    private readonly irisModel: Loaded,
    private readonly pool: OnnxPool | undefined,
    maxBatch: number,
  ) {
    this.models = [meshModel.info, irisModel.info];
    this.mesh = cropBatcher(meshModel, MESH_INPUT, ['landmarks', 'face_flag'], maxBatch);
    this.iris = cropBatcher(irisModel, IRIS_INPUT, ['iris'], 2 * maxBatch);
  }

  static async load(o: LandmarkerOptions): Promise<FaceLandmarker> {
    const pool = o.worker ? new OnnxPool(1) : undefined;
    let mesh: Loaded | undefined;
    try {
      mesh = await load(o.meshModelPath, o.meshModel ?? { name: 'mediapipe-face-landmark-468', version: '0.10.14' }, o, pool);
      const iris = await load(o.irisModelPath, o.irisModel ?? { name: 'mediapipe-iris-landmark', version: '0.10.14' }, o, pool);
      return new FaceLandmarker(mesh, iris, pool, Math.max(1, o.maxBatch ?? 16));
    } catch (err) {
      await mesh?.session.release();
      await pool?.close();
      throw err;
    }
  }

  /** Geometry of each face (same order); all faces of an image go through each model together. */
  async locate(img: RgbImage, faces: ReadonlyArray<{ box: Box; keypoints: readonly Point[] }>): Promise<FaceGeometry[]> {
    if (faces.length === 0) return [];
    const rois = faces.map((f) => faceRoi(f.box, f.keypoints));
    let geometry = await this.runMesh(img, rois);
    // Second pass, as MediaPipe's tracking does, for faces whose crop was rolled off their eye line.
    const redo = geometry.flatMap((g, k) => {
      const roi = landmarkRoi(g.landmarks);
      const off = Math.abs(((((roi.angle - rois[k].angle) * 180) / Math.PI + 540) % 360) - 180);
      return off > RECROP_ROLL_DEG ? [{ k, roi }] : [];
    });
    if (redo.length > 0) {
      const again = await this.runMesh(img, redo.map((r) => r.roi));
      geometry = geometry.slice();
      redo.forEach((r, j) => (geometry[r.k] = again[j]));
    }
    // Iris: the crop around each eye's corners; the model knows one eye (the subject's right), so
    // the left eye's crop is mirrored, as MediaPipe does.
    const eyes = geometry.flatMap((g) => [
      { roi: eyeRoi(g.landmarks[MESH.rightEyeOuter], g.landmarks[MESH.rightEyeInner]), flip: false },
      { roi: eyeRoi(g.landmarks[MESH.leftEyeInner], g.landmarks[MESH.leftEyeOuter]), flip: true },
    ]);
    const eyeCrops = eyes.map((e) => {
      const t = new Float32Array(IRIS_INPUT * IRIS_INPUT * 3);
      cutRoi(img, e.roi, IRIS_INPUT, t, 0, e.flip);
      return t;
    });
    const irisOut = await Promise.all(this.iris.submitMany(eyeCrops));
    irisOut.forEach(([iris], j) => {
      const { roi, flip } = eyes[j];
      for (let i = 0; i < 5; i++) geometry[j >> 1].landmarks.push(roiToImage(roi, IRIS_INPUT, iris[3 * i], iris[3 * i + 1], flip));
    });
    return geometry;
  }

  /** The mesh model on these crops, points mapped back to the image. */
  private async runMesh(img: RgbImage, rois: Roi[]): Promise<FaceGeometry[]> {
    const crops = rois.map((roi) => {
      const t = new Float32Array(MESH_INPUT * MESH_INPUT * 3);
      cutRoi(img, roi, MESH_INPUT, t);
      return t;
    });
    const out = await Promise.all(this.mesh.submitMany(crops));
    return out.map(([raw, flag], k): FaceGeometry => {
      const roi = rois[k];
      const landmarks: Point[] = [];
      for (let i = 0; i < MESH_POINTS; i++) landmarks.push(roiToImage(roi, MESH_INPUT, raw[3 * i], raw[3 * i + 1]));
      return { landmarks, presence: sigmoid(flag[0]), headPose: headPose(raw, 0, roi.angle) };
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.mesh.close(), this.iris.close()]);
    await Promise.all([this.meshModel.session.release(), this.irisModel.session.release()]);
    await this.pool?.close();
  }
}

/** A detector whose faces carry their geometry: BlazeFace, then the landmark models on its faces. */
export class DetectorWithGeometry {
  readonly models: { name: string; version: string; sha256: string }[];

  constructor(
    private readonly detector: { detect(img: RgbImage): Promise<Array<{ box: Box; score: number; keypoints: Point[] }>>; readonly models: { name: string; version: string; sha256: string }[]; close(): Promise<void> },
    private readonly landmarker: FaceLandmarker,
  ) {
    this.models = [...detector.models, ...landmarker.models];
  }

  async detect(img: RgbImage): Promise<Array<{ box: Box; score: number; keypoints: Point[]; geometry?: FaceGeometry }>> {
    const faces = await this.detector.detect(img);
    const geometry = await this.landmarker.locate(img, faces);
    return faces.map((f, i) => ({ ...f, geometry: geometry[i] }));
  }

  async close(): Promise<void> {
    await Promise.all([this.detector.close(), this.landmarker.close()]);
  }
}
