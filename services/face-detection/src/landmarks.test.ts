// The face-mesh and iris models as the stage runs them: the ONNX against TFLite's stored outputs,
// landmarks where the faces are, presence, head-pose signs, batching.
// Run: node --import tsx --test services/face-detection/src/landmarks.test.ts
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { decodeRgb, type RgbImage } from '@tampertrace/shared';
import { LEFT_IRIS, MESH, RIGHT_IRIS } from '@tampertrace/shared/face-landmarks';
import { BlazeFaceDetector, type FaceDetection } from './blazeface.ts';
import { FaceLandmarker, IRIS_INPUT, MESH_INPUT, cutRoi, faceRoi, roiToImage } from './landmarks.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const M = (f: string) => resolve(ROOT, 'models', f);
const LIMITS = { maxInputBytes: 1e9, maxPixels: 1e8, minSide: 16 };

let detector: BlazeFaceDetector;
let landmarker: FaceLandmarker;
const images: Record<string, RgbImage> = {};

before(async () => {
  detector = await BlazeFaceDetector.load({ frontModelPath: M('blazeface/blazeface-front-128-batch-n.onnx'), backModelPath: M('blazeface/blazeface-back-256-batch-n.onnx') });
  landmarker = await FaceLandmarker.load({ meshModelPath: M('face-landmark/face_landmark_468.onnx'), irisModelPath: M('face-landmark/iris_landmark.onnx'), maxBatch: 8 });
  for (const name of ['astronaut', 'camera']) images[name] = await decodeRgb(await readFile(resolve(ROOT, `testdata/faces/${name}.png`)), LIMITS);
});
after(async () => {
  await Promise.all([detector?.close(), landmarker?.close()]);
});

/** The RGB bytes of a stored crop as the models' [0, 1] NHWC input. */
function storedCrop(file: string): Float32Array {
  return Float32Array.from(readFileSync(resolve(ROOT, 'testdata/landmarks', file)), (v) => v / 255);
}

test('the ONNX models give TFLite\'s outputs on real crops, in one batched run (dynamic batch)', async () => {
  for (const [model, size, crops, outputs] of [
    ['face_landmark_468.onnx', MESH_INPUT, ['astronaut-192.rgb', 'camera-192.rgb'], ['landmarks', 'face_flag']],
    ['iris_landmark.onnx', IRIS_INPUT, ['astronaut-left-64.rgb', 'astronaut-right-64.rgb', 'camera-left-64.rgb', 'camera-right-64.rgb'], ['eye_contours', 'iris']],
  ] as const) {
    const reference = JSON.parse(readFileSync(resolve(ROOT, `testdata/landmarks/reference-${size}.json`), 'utf8')) as Record<string, number[][]>;
    const session = await ort.InferenceSession.create(M(`face-landmark/${model}`));
    const data = new Float32Array(crops.length * size * size * 3);
    crops.forEach((c, i) => data.set(storedCrop(c), i * size * size * 3));
    const out = await session.run({ input: new ort.Tensor('float32', data, [crops.length, size, size, 3]) });
    for (const name of outputs) {
      const got = out[name].data as Float32Array;
      const want = reference[name].flat();
      assert.equal(got.length, want.length, name);
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      // references are rounded to 1e-5; conversion differences measured at < 2e-4 crop px
      assert.ok(worst < 1e-3, `${model} ${name}: max abs difference ${worst}`);
    }
    await session.release();
  }
});

test('landmarks land on the faces: iris centres at BlazeFace\'s eye keypoints, the mesh inside the box, presence high', async () => {
  for (const name of ['astronaut', 'camera']) {
    const img = images[name];
    const [face] = await detector.detect(img);
    const [g] = await landmarker.locate(img, [face]);
    assert.equal(g.landmarks.length, 478);
    assert.ok(g.presence > 0.9, `${name}: presence ${g.presence}`);
    const eyeDist = Math.hypot(face.keypoints[1].x - face.keypoints[0].x, face.keypoints[1].y - face.keypoints[0].y);
    for (const [iris, kp, contour] of [[RIGHT_IRIS, 0, MESH.rightEye], [LEFT_IRIS, 1, MESH.leftEye]] as const) {
      // near BlazeFace's (coarse) eye keypoint, and inside the mesh's own eye opening's bounds
      const p = g.landmarks[iris];
      const d = Math.hypot(p.x - face.keypoints[kp].x, p.y - face.keypoints[kp].y);
      assert.ok(d < 0.5 * eyeDist, `${name}: iris ${iris} is ${d.toFixed(1)} px from eye keypoint ${kp} (eye distance ${eyeDist.toFixed(1)})`);
      const xs = contour.map((i) => g.landmarks[i].x);
      const ys = contour.map((i) => g.landmarks[i].y);
      assert.ok(p.x > Math.min(...xs) && p.x < Math.max(...xs) && p.y > Math.min(...ys) - 2 && p.y < Math.max(...ys) + 2, `${name}: iris ${iris} outside its eye`);
    }
    // the subject's right eye corners lie on the image left of the left eye's
    assert.ok(g.landmarks[MESH.rightEyeOuter].x < g.landmarks[MESH.leftEyeOuter].x);
    // the chin below the nose tip below the forehead top, on an upright face
    assert.ok(g.landmarks[MESH.foreheadTop].y < g.landmarks[MESH.noseTip].y && g.landmarks[MESH.noseTip].y < g.landmarks[MESH.chin].y);
    const b = face.box;
    const inside = g.landmarks.filter((p) => p.x > b.x - 0.25 * b.width && p.x < b.x + 1.25 * b.width && p.y > b.y - 0.25 * b.height && p.y < b.y + 1.25 * b.height);
    assert.equal(inside.length, g.landmarks.length, `${name}: landmarks outside the face box's neighbourhood`);
  }
});

test('a crop of noise is not a face: presence below MediaPipe\'s 0.5', async () => {
  let seed = 7;
  const data = Uint8Array.from({ length: 256 * 256 * 3 }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) >> 16) & 255);
  const fake: FaceDetection = { box: { x: 64, y: 64, width: 128, height: 128 }, score: 1, keypoints: [{ x: 100, y: 110 }, { x: 156, y: 110 }] };
  const [g] = await landmarker.locate({ width: 256, height: 256, data }, [fake]);
  assert.ok(g.presence < 0.5, `presence ${g.presence}`);
});

/** The image mirrored left-right, or rotated a quarter turn clockwise. */
function mirror(img: RgbImage): RgbImage {
  const { width: W, height: H, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out.set(data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3), (y * W + (W - 1 - x)) * 3);
  return { width: W, height: H, data: out };
}
function rotateCw(img: RgbImage): RgbImage {
  const { width: W, height: H, data } = img;
  const out = new Uint8Array(data.length);
  // (x, y) -> (H - 1 - y, x) in a H-wide, W-high image
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out.set(data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3), (x * H + (H - 1 - y)) * 3);
  return { width: H, height: W, data: out };
}

test('head pose: mirroring flips yaw and roll, a quarter turn clockwise adds 90 degrees of roll, pitch stays', async () => {
  const pose = async (img: RgbImage) => {
    const [face] = await detector.detect(img);
    return (await landmarker.locate(img, [face]))[0].headPose;
  };
  // The cameraman's face is turned well away from the camera: a clear yaw sign.
  const cam = await pose(images.camera);
  assert.ok(cam.yawDeg > 20, `cameraman yaw ${cam.yawDeg}: he turns to his left (faces the image right)`);
  const m = await pose(mirror(images.camera));
  assert.ok(m.yawDeg < -20, `mirrored yaw ${m.yawDeg}`);
  assert.ok(Math.abs(m.yawDeg + cam.yawDeg) < 10, `yaw ${cam.yawDeg} vs mirrored ${m.yawDeg}`);
  assert.ok(Math.abs(m.rollDeg + cam.rollDeg) < 5, `roll ${cam.rollDeg} vs mirrored ${m.rollDeg}`);
  // the mesh model is not exactly symmetric: pitch moved 6.6 degrees when measured
  assert.ok(Math.abs(m.pitchDeg - cam.pitchDeg) < 10, `pitch ${cam.pitchDeg} vs mirrored ${m.pitchDeg}`);
  const astro = await pose(images.astronaut);
  assert.ok(Math.abs(astro.yawDeg) < 15 && Math.abs(astro.rollDeg) < 15, `astronaut is roughly frontal: ${JSON.stringify(astro)}`);
  const r = await pose(rotateCw(images.astronaut));
  const dRoll = ((r.rollDeg - astro.rollDeg + 540) % 360) - 180;
  assert.ok(Math.abs(dRoll - 90) < 6, `roll ${astro.rollDeg} -> ${r.rollDeg} after a quarter turn clockwise`);
  assert.ok(Math.abs(r.yawDeg - astro.yawDeg) < 6 && Math.abs(r.pitchDeg - astro.pitchDeg) < 6, `yaw and pitch survive the turn: ${JSON.stringify(astro)} vs ${JSON.stringify(r)}`);
});

test('faces run batched: two faces in one call give what each gives alone', async () => {
  const img = images.astronaut;
  const [face] = await detector.detect(img);
  const shifted = { ...face, box: { ...face.box, x: face.box.x + 3 } };
  const [a, b] = await landmarker.locate(img, [face, shifted]);
  const [alone] = await landmarker.locate(img, [shifted]);
  assert.equal(a.landmarks.length, 478);
  for (let i = 0; i < alone.landmarks.length; i++) {
    assert.ok(Math.abs(b.landmarks[i].x - alone.landmarks[i].x) < 1e-3 && Math.abs(b.landmarks[i].y - alone.landmarks[i].y) < 1e-3, `point ${i}`);
  }
});

test('crop geometry: a rotated ROI maps its centre and corners back to the image', () => {
  const roi = { cx: 100, cy: 50, side: 40, angle: Math.PI / 2 };
  const c = roiToImage(roi, 192, 96, 96);
  assert.ok(Math.abs(c.x - 100) < 1e-9 && Math.abs(c.y - 50) < 1e-9);
  // the crop's top-left corner: a quarter turn clockwise puts it at the image's top-right of the square
  const tl = roiToImage(roi, 192, 0, 0);
  assert.ok(Math.abs(tl.x - 120) < 1e-9 && Math.abs(tl.y - 30) < 1e-9, JSON.stringify(tl));
  // mirrored crops map x back: left edge of a flipped crop is the right edge of the ROI
  const f = roiToImage({ ...roi, angle: 0 }, 64, 0, 32, true);
  assert.ok(Math.abs(f.x - 120) < 1e-9 && Math.abs(f.y - 50) < 1e-9, JSON.stringify(f));
  // the face ROI is 1.5x the box's longer side, around its centre, along the eye line
  const r = faceRoi({ x: 10, y: 20, width: 100, height: 80 }, [{ x: 40, y: 50 }, { x: 80, y: 90 }]);
  assert.deepEqual([r.cx, r.cy, r.side, Math.round((r.angle * 180) / Math.PI)], [60, 60, 150, 45]);
  // a uniform image crops to its own colour, borders replicated beyond its edge
  const img = { width: 4, height: 4, data: new Uint8Array(48).fill(51) };
  const out = new Float32Array(8 * 8 * 3);
  cutRoi(img, { cx: 0, cy: 0, side: 20, angle: 0.3 }, 8, out);
  assert.ok(out.every((v) => Math.abs(v - 0.2) < 1e-6));
});
