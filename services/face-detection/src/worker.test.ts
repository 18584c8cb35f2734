// The detector's sessions in a worker thread (off the event loop) find exactly what they find on
// the main thread: same boxes, keypoints and scores, bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT, decodeRgb } from '@tampertrace/shared';
import { astronautPng, cameraPng } from '@tampertrace/shared/testing';
import { BlazeFaceDetector } from './blazeface.ts';

const FRONT = path.join(REPO_ROOT, 'models', 'blazeface', 'face_detection_front_128x128_barracuda.onnx');
const BACK = path.join(REPO_ROOT, 'models', 'blazeface', 'face_detection_back_256x256_barracuda.onnx');
const limits = { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 };

test('detections from the worker thread equal those from the main thread, on every pass and tile', async () => {
  const here = await BlazeFaceDetector.load({ frontModelPath: FRONT, backModelPath: BACK });
  const there = await BlazeFaceDetector.load({ frontModelPath: FRONT, backModelPath: BACK, worker: true });
  try {
    // A 1080p frame with two small faces exercises the tiled back-model passes too.
    const frame = await sharp({ create: { width: 1920, height: 1080, channels: 3, background: '#667' } })
      .composite([
        { input: await sharp(astronautPng()).resize(500).toBuffer(), left: 100, top: 300 },
        { input: await sharp(cameraPng()).resize(480).toBuffer(), left: 1300, top: 200 },
      ])
      .png()
      .toBuffer();
    let faces = 0;
    for (const bytes of [astronautPng(), cameraPng(), frame]) {
      const img = await decodeRgb(bytes, limits);
      const expected = await here.detect(img);
      // Concurrent calls too: they queue, and each gets its own result.
      const [a, b] = await Promise.all([there.detect(img), there.detect(img)]);
      assert.deepEqual(a, expected);
      assert.deepEqual(b, expected);
      faces += expected.length;
    }
    assert.ok(faces >= 3, `faces found (${faces})`);
  } finally {
    await Promise.all([here.close(), there.close()]);
  }
});
