// Writes the crops the detection stage feeds the landmark models for the two test faces
// (testdata/landmarks/<face>-192.rgb, <face>-<eye>-64.rgb, packed RGB) so that convert.py can
// check the ONNX against TFLite on real crops and store TFLite's outputs as test references;
// also the faces' geometry (testdata/landmarks/<face>-geometry.json) for the region tests.
// Usage: node --import tsx models/face-landmark/reference-crops.ts
import { readFile, writeFile } from 'node:fs/promises';
import { decodeRgb } from '@tampertrace/shared';
import { BlazeFaceDetector } from '../../services/face-detection/src/blazeface.ts';
import { FaceLandmarker, IRIS_INPUT, MESH_INPUT, cutRoi, eyeRoi, faceRoi } from '../../services/face-detection/src/landmarks.ts';
import { MESH } from '@tampertrace/shared/face-landmarks';

const root = new URL('../../', import.meta.url).pathname;
const det = await BlazeFaceDetector.load({ frontModelPath: root + 'models/blazeface/blazeface-front-128-batch-n.onnx', backModelPath: root + 'models/blazeface/blazeface-back-256-batch-n.onnx' });
const lm = await FaceLandmarker.load({ meshModelPath: root + 'models/face-landmark/face_landmark_468.onnx', irisModelPath: root + 'models/face-landmark/iris_landmark.onnx' });
const bytes = (f: Float32Array) => Uint8Array.from(f, (v) => Math.round(v * 255));
for (const name of ['astronaut', 'camera']) {
  const img = await decodeRgb(await readFile(`${root}testdata/faces/${name}.png`), { maxInputBytes: 1e9, maxPixels: 1e8, minSide: 16 });
  const [face] = await det.detect(img);
  const crop = new Float32Array(MESH_INPUT * MESH_INPUT * 3);
  cutRoi(img, faceRoi(face.box, face.keypoints), MESH_INPUT, crop);
  await writeFile(`${root}testdata/landmarks/${name}-${MESH_INPUT}.rgb`, bytes(crop));
  const [g] = await lm.locate(img, [face]);
  const L = g.landmarks;
  // The face's geometry as the stage reports it, for tests of the region polygons (shared/).
  const round = (v: number) => Math.round(v * 100) / 100;
  const geometry = { box: face.box, keypoints: face.keypoints, presence: g.presence, headPose: g.headPose, landmarks: L.map((p) => ({ x: round(p.x), y: round(p.y) })) };
  await writeFile(`${root}testdata/landmarks/${name}-geometry.json`, JSON.stringify(geometry) + '\n');
  for (const [eye, a, b, flip] of [['right', MESH.rightEyeOuter, MESH.rightEyeInner, false], ['left', MESH.leftEyeInner, MESH.leftEyeOuter, true]] as const) {
    const t = new Float32Array(IRIS_INPUT * IRIS_INPUT * 3);
    cutRoi(img, eyeRoi(L[a], L[b]), IRIS_INPUT, t, 0, flip);
    await writeFile(`${root}testdata/landmarks/${name}-${eye}-${IRIS_INPUT}.rgb`, bytes(t));
  }
}
await Promise.all([det.close(), lm.close()]);
