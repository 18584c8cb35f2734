// What the face geometry costs per face: the face-mesh and iris models with their crops (the
// detection stage's FaceLandmarker), one image's faces in one call, at several face counts.
// Usage: node --import tsx bench/landmarks.ts [rounds]   (one ORT thread, on the calling thread)
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { decodeRgb } from '@tampertrace/shared';
import { BlazeFaceDetector } from '../services/face-detection/src/blazeface.ts';
import { FaceLandmarker } from '../services/face-detection/src/landmarks.ts';
import { median } from './stats.ts';

const rounds = Number(process.argv[2] ?? 20);
const root = new URL('../', import.meta.url).pathname;
const det = await BlazeFaceDetector.load({ frontModelPath: root + 'models/blazeface/blazeface-front-128-batch-n.onnx', backModelPath: root + 'models/blazeface/blazeface-back-256-batch-n.onnx' });
const lm = await FaceLandmarker.load({ meshModelPath: root + 'models/face-landmark/face_landmark_468.onnx', irisModelPath: root + 'models/face-landmark/iris_landmark.onnx', intraOpNumThreads: 1, maxBatch: 16 });
const img = await decodeRgb(await readFile(root + 'testdata/faces/astronaut.png'), { maxInputBytes: 1e9, maxPixels: 1e8, minSide: 16 });
const [face] = await det.detect(img);
await lm.locate(img, [face]); // first runs allocate
console.log(`cpu: ${os.cpus()[0]?.model} x${os.availableParallelism()}, ${rounds} rounds, face box ${Math.round(face.box.width)} px`);
for (const n of [1, 4, 16]) {
  // n copies of the face, shifted a little so that no two crops are the same
  const faces = Array.from({ length: n }, (_, i) => ({ ...face, box: { ...face.box, x: face.box.x + i * 0.5 } }));
  const ms: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    await lm.locate(img, faces);
    ms.push(performance.now() - t);
  }
  console.log(`${n} face(s) per call: median ${median(ms).toFixed(1)} ms per call, ${(median(ms) / n).toFixed(1)} ms per face`);
}
await Promise.all([det.close(), lm.close()]);
