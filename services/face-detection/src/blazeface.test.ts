// Run: node scripts/fetch-models.mjs && node --import tsx --test services/face-detection/src/blazeface.test.ts
// The integration tests need the ONNX models (fetched by scripts/fetch-models.mjs);
// without them they are skipped with a message saying so.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import {
  BlazeFaceDetector,
  clipToImage,
  copyTile,
  decodeDetections,
  generateAnchors,
  iou,
  planPasses,
  resampleImage,
  sigmoid,
  touchesInteriorEdge,
  weightedNms,
  type Box,
  type FaceDetection,
  type RgbImage,
  type TilePlan,
} from "./blazeface.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const FRONT = join(ROOT, "models/blazeface/face_detection_front_128x128_barracuda.onnx");
const BACK = join(ROOT, "models/blazeface/face_detection_back_256x256_barracuda.onnx");
const FACES = join(ROOT, "testdata/faces");
const MODELS_PRESENT = existsSync(FRONT) && existsSync(BACK);
const SKIP_REASON = "models not fetched: run `node scripts/fetch-models.mjs`";

// Reference face boxes (testdata/faces/LICENSE.md)
const ASTRONAUT_FACE: Box = { x: 178, y: 81, width: 94, height: 94 };
const CAMERA_FACE: Box = { x: 171, y: 116, width: 90, height: 90 };

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a.toFixed(2)} not within ${tol} of ${b.toFixed(2)}`);

function det(box: Box, score: number, kp = 0): FaceDetection {
  return { box, score, keypoints: Array.from({ length: 6 }, () => ({ x: kp, y: kp })) };
}

// ---------------------------------------------------------------------------
// Pure helpers

describe("generateAnchors", () => {
  test("896 anchors in model output order, fixed-size, centred in their cells", () => {
    for (const size of [128, 256]) {
      const a = generateAnchors(size);
      assert.equal(a.length, 896);
      // layer 1: 16x16 cells, 2 anchors each
      assert.deepEqual(a[0], { x: 0.5 / 16, y: 0.5 / 16 });
      assert.deepEqual(a[1], { x: 0.5 / 16, y: 0.5 / 16 });
      assert.deepEqual(a[2], { x: 1.5 / 16, y: 0.5 / 16 });
      assert.deepEqual(a[32], { x: 0.5 / 16, y: 1.5 / 16 });
      assert.deepEqual(a[511], { x: 15.5 / 16, y: 15.5 / 16 });
      // layer 2: 8x8 cells, 6 anchors each
      assert.deepEqual(a[512], { x: 0.5 / 8, y: 0.5 / 8 });
      assert.deepEqual(a[517], { x: 0.5 / 8, y: 0.5 / 8 });
      assert.deepEqual(a[518], { x: 1.5 / 8, y: 0.5 / 8 });
      assert.deepEqual(a[895], { x: 7.5 / 8, y: 7.5 / 8 });
    }
    // in pixels of the 128 input: first centre (4,4), last (120,120)
    const a = generateAnchors(128);
    assert.equal(a[0].x * 128, 4);
    assert.equal(a[895].y * 128, 120);
  });
  test("rejects sizes the anchor grids do not fit", () => {
    assert.throws(() => generateAnchors(100), /multiple of 16/);
    assert.throws(() => generateAnchors(0), /multiple of 16/);
  });
});

describe("sigmoid", () => {
  test("logistic with clipping", () => {
    assert.equal(sigmoid(0), 0.5);
    close(sigmoid(2), 1 / (1 + Math.exp(-2)), 1e-12, "sigmoid(2)");
    assert.equal(sigmoid(1e6), sigmoid(100));
    assert.equal(sigmoid(-1e6), sigmoid(-100));
    assert.ok(sigmoid(-1e6) > 0 && Number.isFinite(sigmoid(-1e6)));
    assert.equal(sigmoid(10, 2), sigmoid(2));
    assert.equal(sigmoid(-10, 2), sigmoid(-2));
  });
});

describe("decodeDetections", () => {
  const anchors = generateAnchors(128);
  const logits = new Float32Array(896).fill(-10);
  const regs = new Float32Array(896 * 16);
  // anchor 0: centre (4,4) px of the 128 input
  logits[0] = 3;
  regs.set([2, -1, 20, 30, 1, 1, 3, 1, 2, 3, 2, 5, 0, 2, 4, 2], 0);
  // anchor 895 (layer 2, last cell): centre (120,120)
  logits[895] = 0.5;
  regs.set([-4, 6, 40, 40, -10, -5, 10, -5, 0, 0, 0, 10, -20, 0, 20, 0], 895 * 16);

  test("boxes and keypoints are anchor centre + offset (input pixels)", () => {
    const d = decodeDetections(logits, regs, anchors, 128, 0.5);
    assert.equal(d.length, 2);
    assert.deepEqual(d[0].box, { x: 4 + 2 - 10, y: 4 - 1 - 15, width: 20, height: 30 });
    close(d[0].score, sigmoid(3), 1e-7, "score");
    assert.deepEqual(d[0].keypoints[0], { x: 5, y: 5 });
    assert.deepEqual(d[0].keypoints[5], { x: 8, y: 6 });
    assert.equal(d[0].keypoints.length, 6);
    assert.deepEqual(d[1].box, { x: 120 - 4 - 20, y: 120 + 6 - 20, width: 40, height: 40 });
    assert.deepEqual(d[1].keypoints[3], { x: 120, y: 130 });
  });
  test("minScore filters on the sigmoid score", () => {
    assert.equal(decodeDetections(logits, regs, anchors, 128, sigmoid(0.5) + 1e-6).length, 1);
    assert.equal(decodeDetections(logits, regs, anchors, 128, 0.99).length, 0);
  });
  test("maps through an input-to-image transform", () => {
    const [d] = decodeDetections(logits, regs, anchors, 128, 0.9, { scaleX: 2, scaleY: 3, offsetX: 10, offsetY: 20 });
    assert.deepEqual(d.box, { x: 10 + -4 * 2, y: 20 + -12 * 3, width: 40, height: 90 });
    assert.deepEqual(d.keypoints[1], { x: 10 + 7 * 2, y: 20 + 5 * 3 });
  });
  test("rejects short outputs", () => {
    assert.throws(() => decodeDetections(new Float32Array(10), regs, anchors, 128, 0.5), /expected 896/);
  });
});

describe("iou", () => {
  test("hand-computed overlaps", () => {
    const a: Box = { x: 0, y: 0, width: 10, height: 10 };
    assert.equal(iou(a, a), 1);
    assert.equal(iou(a, { x: 5, y: 0, width: 10, height: 10 }), 50 / 150);
    assert.equal(iou(a, { x: 0, y: 0, width: 5, height: 5 }), 0.25);
    assert.equal(iou(a, { x: 5, y: 5, width: 10, height: 10 }), 25 / 175);
    assert.equal(iou(a, { x: 10, y: 0, width: 10, height: 10 }), 0); // touching
    assert.equal(iou(a, { x: 30, y: 30, width: 10, height: 10 }), 0);
    assert.equal(iou({ x: 0, y: 0, width: 0, height: 0 }, { x: 0, y: 0, width: 0, height: 0 }), 0);
  });
});

describe("weightedNms", () => {
  test("merges overlapping candidates into their score-weighted mean, keeps the top score", () => {
    const out = weightedNms(
      [
        det({ x: 1, y: 1, width: 10, height: 10 }, 0.6, 20),
        det({ x: 50, y: 50, width: 10, height: 10 }, 0.8, 55),
        det({ x: 0, y: 0, width: 10, height: 10 }, 0.9, 10),
      ],
      0.3,
    );
    assert.equal(out.length, 2);
    assert.equal(out[0].score, 0.9);
    close(out[0].box.x, (0 * 0.9 + 1 * 0.6) / 1.5, 1e-12, "x");
    close(out[0].box.y, 0.4, 1e-12, "y");
    close(out[0].box.width, 10, 1e-12, "width");
    close(out[0].box.height, 10, 1e-12, "height");
    close(out[0].keypoints[2].x, (10 * 0.9 + 20 * 0.6) / 1.5, 1e-12, "keypoint x");
    assert.deepEqual(out[1], det({ x: 50, y: 50, width: 10, height: 10 }, 0.8, 55));
  });
  test("only the top candidate decides the cluster (no chaining); IoU must exceed the threshold", () => {
    const a = det({ x: 0, y: 0, width: 10, height: 10 }, 0.9);
    const b = det({ x: 4, y: 0, width: 10, height: 10 }, 0.8); // IoU(a,b) = 60/140
    const c = det({ x: 8, y: 0, width: 10, height: 10 }, 0.7); // IoU(a,c) = 20/180, IoU(b,c) = 60/140
    const out = weightedNms([c, b, a], 0.3);
    assert.equal(out.length, 2);
    close(out[0].box.x, (4 * 0.8) / 1.7, 1e-12, "a+b");
    assert.deepEqual(out[1].box, c.box);
    // equal to the threshold: not merged
    const half = det({ x: 5, y: 0, width: 10, height: 10 }, 0.5); // IoU(a, half) = 1/3
    assert.equal(weightedNms([a, half], 1 / 3).length, 2);
    assert.equal(weightedNms([a, half], 0.33).length, 1);
  });
  test("caps the output and handles empty input", () => {
    const many = Array.from({ length: 5 }, (_, i) => det({ x: i * 100, y: 0, width: 10, height: 10 }, 0.5 + i / 10));
    const out = weightedNms(many, 0.3, 2);
    assert.deepEqual(
      out.map((d) => d.score),
      [0.9, 0.8],
    );
    assert.deepEqual(weightedNms([], 0.3), []);
  });
});

describe("planPasses", () => {
  test("1080p: front letterbox + two overlapping back tiles", () => {
    const plan = planPasses(1920, 1080);
    assert.equal(plan.length, 2);
    const [front, back] = plan;
    assert.equal(front.model, "front");
    assert.deepEqual([front.scaledWidth, front.scaledHeight], [128, 72]);
    assert.deepEqual(front.tiles.map((t) => [t.x, t.y]), [[0, -28]]); // centred letterbox
    assert.equal(back.model, "back");
    assert.equal(back.tiles.length, 2);
    // a 64 px face is >= 14 px in the back model input
    assert.ok((64 * back.scaledWidth) / 1920 >= 14, `back scale ${back.scaledWidth / 1920}`);
    assert.ok(back.scaledHeight <= 256);
    assert.equal(back.tiles[0].x, 0);
    assert.equal(back.tiles[1].x + 256, back.scaledWidth);
    assert.deepEqual(back.tiles[0].interior, { left: false, top: false, right: true, bottom: false });
    assert.deepEqual(back.tiles[1].interior, { left: true, top: false, right: false, bottom: false });
  });
  test("every face from 64 px (or the tile cap's limit) up to the front pass's range lies whole in some back tile", () => {
    for (const [w, h] of [
      [1920, 1080],
      [1080, 1920],
      [1280, 720],
      [2560, 1440],
      [3840, 2160],
    ]) {
      const plan = planPasses(w, h);
      const frontMin = (20 * Math.max(w, h)) / 128;
      const backs = plan.filter((p) => p.model === "back");
      // the 12-tile cap raises the smallest face on 4K frames
      const minFace = Math.max(64, 14 / (backs[0].scaledWidth / w));
      if (w * h <= 2560 * 1440) assert.equal(minFace, 64, `${w}x${h}`);
      for (let size = minFace; size <= frontMin * 1.1; size *= 1.15) {
        for (let k = 0; k < 50; k++) {
          const x = ((k * 0.6180339887) % 1) * (w - size);
          const y = ((k * 0.7548776662) % 1) * (h - size);
          const ok = backs.some((p) => {
            const s = p.scaledWidth / w;
            if (size * s < 14 - 1e-9) return false; // too small for this level
            const box = { x: x * s, y: y * s, width: size * s, height: size * s };
            return p.tiles.some(
              (t) =>
                box.x >= t.x && box.y >= t.y && box.x + box.width <= t.x + 256 && box.y + box.height <= t.y + 256 &&
                !touchesInteriorEdge(box, t, 256),
            );
          });
          assert.ok(ok, `${w}x${h}: face ${size.toFixed(0)} px at (${x.toFixed(0)}, ${y.toFixed(0)}) not whole in any tile`);
        }
      }
    }
  });
  test("small images: one back tile, no upsampling; huge images: tile cap", () => {
    const p512 = planPasses(512, 512);
    assert.deepEqual(
      p512.map((p) => [p.model, p.scaledWidth, p.scaledHeight, p.tiles.length]),
      [
        ["front", 128, 128, 1],
        ["back", 256, 256, 1],
      ],
    );
    const tiny = planPasses(100, 60);
    assert.deepEqual([tiny[1].scaledWidth, tiny[1].scaledHeight], [100, 60]);
    for (const [w, h] of [
      [4032, 3024],
      [8000, 6000],
    ]) {
      const tiles = planPasses(w, h)
        .filter((p) => p.model === "back")
        .reduce((n, p) => n + p.tiles.length, 0);
      assert.ok(tiles <= 12, `${w}x${h}: ${tiles} back tiles`);
    }
    assert.throws(() => planPasses(0, 10), /bad image size/);
  });
});

describe("resampling", () => {
  test("exact box average for integer factors, RGB mapped to [-1, 1]", () => {
    // 4x2 image, factor 2 in both axes -> 2x1
    const data = new Uint8Array([
      0, 0, 0, 255, 255, 255, 10, 20, 30, 30, 40, 50,
      255, 255, 255, 0, 0, 0, 50, 60, 70, 70, 80, 90,
    ]);
    const out = resampleImage({ data, width: 4, height: 2 }, 2, 1, 4);
    const expect = [127.5, 127.5, 127.5, 40, 50, 60].map((v) => v / 127.5 - 1);
    for (let i = 0; i < 6; i++) close(out[i], expect[i], 1e-6, `channel ${i}`);
    // the generic path agrees with the 2x2 fast path
    const generic = resampleImage({ data, width: 4, height: 2 }, 2, 1, 3);
    for (let i = 0; i < 6; i++) close(generic[i], out[i], 1e-6, `generic ${i}`);
  });
  test("copyTile pads with black and keeps offsets", () => {
    const scaled = new Float32Array(3 * 2 * 3).map((_, i) => i / 100); // 3x2 scaled image
    const tile = copyTile(scaled, 3, 2, -1, 1, 2); // 2x2 window starting at (-1, 1)
    assert.deepEqual(Array.from(tile.subarray(0, 3)), [-1, -1, -1]); // x=-1
    assert.deepEqual(Array.from(tile.subarray(3, 6)), Array.from(scaled.subarray(9, 12))); // (0,1)
    assert.deepEqual(Array.from(tile.subarray(6, 12)), [-1, -1, -1, -1, -1, -1]); // y=2
  });
});

describe("post-processing helpers", () => {
  const tile: TilePlan = { x: 100, y: 0, interior: { left: true, top: false, right: true, bottom: false } };
  test("touchesInteriorEdge drops cut faces only at shared edges", () => {
    assert.equal(touchesInteriorEdge({ x: 98, y: 10, width: 40, height: 40 }, tile, 256), true);
    assert.equal(touchesInteriorEdge({ x: 120, y: 10, width: 40, height: 40 }, tile, 256), false);
    assert.equal(touchesInteriorEdge({ x: 320, y: 10, width: 40, height: 40 }, tile, 256), true);
    assert.equal(touchesInteriorEdge({ x: 120, y: -5, width: 40, height: 40 }, tile, 256), false); // image border
  });
  test("clipToImage clips boxes and keypoints", () => {
    const d = clipToImage(
      { box: { x: -10, y: 5, width: 50, height: 200 }, score: 0.7, keypoints: [{ x: -3, y: 300 }] },
      100,
      100,
    );
    assert.deepEqual(d.box, { x: 0, y: 5, width: 40, height: 95 });
    assert.deepEqual(d.keypoints, [{ x: 0, y: 100 }]);
  });
});

// ---------------------------------------------------------------------------
// Integration: real models, real photos

async function loadRgb(file: string): Promise<RgbImage> {
  const { data, info } = await sharp(file).removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

function blank(width: number, height: number, value: number): RgbImage {
  return { data: new Uint8Array(width * height * 3).fill(value), width, height };
}

/** Deterministic smooth noise (two octaves of upscaled random colour grids + fine grain) around grey. */
async function noisyBackground(width: number, height: number, seed: number): Promise<RgbImage> {
  let s = seed >>> 0;
  const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const octave = async (cells: number) => {
    const gw = cells;
    const gh = Math.max(2, Math.round((cells * height) / width));
    const grid = Uint8Array.from({ length: gw * gh * 3 }, () => Math.floor(rnd() * 256));
    return sharp(grid, { raw: { width: gw, height: gh, channels: 3 } }).resize(width, height, { fit: "fill" }).raw().toBuffer();
  };
  const coarse = await octave(8);
  const fine = await octave(64);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) {
    const v = 128 + (coarse[i] - 128) * 0.4 + (fine[i] - 128) * 0.15 + (rnd() - 0.5) * 16;
    data[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return { data, width, height };
}

function paste(dst: RgbImage, src: RgbImage, x: number, y: number): void {
  for (let j = 0; j < src.height; j++) {
    const dy = y + j;
    if (dy < 0 || dy >= dst.height) continue;
    for (let i = 0; i < src.width; i++) {
      const dx = x + i;
      if (dx < 0 || dx >= dst.width) continue;
      const s = (j * src.width + i) * 3;
      const d = (dy * dst.width + dx) * 3;
      dst.data[d] = src.data[s];
      dst.data[d + 1] = src.data[s + 1];
      dst.data[d + 2] = src.data[s + 2];
    }
  }
}

/** The astronaut's face with context (1.8x its box), resized so the face box is `faceSize` px. */
async function astronautFace(faceSize: number): Promise<{ img: RgbImage; face: Box }> {
  const f = ASTRONAUT_FACE;
  const side = Math.round(f.width * 1.8);
  const left = Math.round(f.x + f.width / 2 - side / 2);
  const top = Math.round(f.y + f.height / 2 - side / 2);
  const k = faceSize / f.width;
  const out = Math.round(side * k);
  const { data, info } = await sharp(join(FACES, "astronaut.png"))
    .removeAlpha()
    .extract({ left, top, width: side, height: side })
    .resize(out, out)
    .raw()
    .toBuffer({ resolveWithObject: true });
  return {
    img: { data: new Uint8Array(data), width: info.width, height: info.height },
    face: { x: (f.x - left) * k, y: (f.y - top) * k, width: faceSize, height: faceSize },
  };
}

function assertFaceNear(d: FaceDetection, want: Box, tol: number, label: string): void {
  close(d.box.x, want.x, tol, `${label} box.x`);
  close(d.box.y, want.y, tol, `${label} box.y`);
  close(d.box.width, want.width, tol, `${label} box.width`);
  close(d.box.height, want.height, tol, `${label} box.height`);
}

function assertPlausibleKeypoints(d: FaceDetection, label: string): void {
  const { box, keypoints: k } = d;
  assert.equal(k.length, 6);
  const inside = (p: { x: number; y: number }, m: number) =>
    p.x >= box.x - m && p.x <= box.x + box.width + m && p.y >= box.y - m && p.y <= box.y + box.height + m;
  for (let i = 0; i < 4; i++) assert.ok(inside(k[i], 0), `${label}: keypoint ${i} ${JSON.stringify(k[i])} outside ${JSON.stringify(box)}`);
  for (let i = 4; i < 6; i++) assert.ok(inside(k[i], 0.15 * box.width), `${label}: ear ${i} far outside the box`);
  const [rEye, lEye, nose, mouth, rEar, lEar] = k;
  assert.ok(rEye.y < mouth.y && lEye.y < mouth.y, `${label}: eyes below the mouth`);
  assert.ok(nose.y < mouth.y, `${label}: nose below the mouth`);
  assert.ok(rEye.x < lEye.x, `${label}: subject's right eye should be image-left`);
  assert.ok(rEar.x < lEar.x, `${label}: subject's right ear should be image-left`);
}

const centre = (b: Box) => ({ x: b.x + b.width / 2, y: b.y + b.height / 2 });

describe("BlazeFaceDetector (real models)", { skip: MODELS_PRESENT ? false : SKIP_REASON }, () => {
  let detector: BlazeFaceDetector;
  before(async () => {
    detector = await BlazeFaceDetector.load({ frontModelPath: FRONT, backModelPath: BACK, intraOpNumThreads: 1 });
  });
  after(async () => {
    await detector?.close();
  });

  test("reports the loaded models with their manifest hashes", () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, "models/manifest.json"), "utf8")) as {
      models: { name: string; version: string; sha256: string; path: string }[];
    };
    for (const m of detector.models) {
      const entry = manifest.models.find((e) => e.name === m.name);
      assert.ok(entry, `${m.name} not in models/manifest.json`);
      assert.equal(m.version, entry.version);
      assert.equal(m.sha256, entry.sha256);
      assert.equal(createHash("sha256").update(readFileSync(join(ROOT, entry.path))).digest("hex"), m.sha256);
    }
    assert.deepEqual(
      detector.models.map((m) => m.name),
      ["blazeface-front-128", "blazeface-back-256"],
    );
  });

  test("astronaut.png: one face at the reference box, keypoints in MediaPipe order", async () => {
    const faces = await detector.detect(await loadRgb(join(FACES, "astronaut.png")));
    assert.equal(faces.length, 1, JSON.stringify(faces.map((f) => f.box)));
    assertFaceNear(faces[0], ASTRONAUT_FACE, 15, "astronaut");
    assert.ok(faces[0].score >= 0.85, `score ${faces[0].score}`);
    assertPlausibleKeypoints(faces[0], "astronaut");
  });

  test("camera.png (greyscale): one face at the reference box", async () => {
    const faces = await detector.detect(await loadRgb(join(FACES, "camera.png")));
    assert.equal(faces.length, 1, JSON.stringify(faces.map((f) => f.box)));
    assertFaceNear(faces[0], CAMERA_FACE, 15, "camera");
    assert.ok(faces[0].score >= 0.7, `score ${faces[0].score}`);
    assertPlausibleKeypoints(faces[0], "camera");
  });

  test("1920x1080: a 90 px face is found once, at the known spot, wherever it is", async () => {
    const { img: crop, face } = await astronautFace(90);
    // left part, across the tile seam of the back pass, bottom-right corner area
    for (const [x, y] of [
      [300, 200],
      [880, 460],
      [1700, 880],
    ]) {
      const img = await noisyBackground(1920, 1080, x * 7 + y);
      paste(img, crop, x, y);
      const want = { ...face, x: face.x + x, y: face.y + y };
      const faces = await detector.detect(img);
      assert.equal(faces.length, 1, `at (${x},${y}): ${JSON.stringify(faces.map((f) => f.box))}`);
      const c = centre(faces[0].box);
      const wc = centre(want);
      close(c.x, wc.x, 15, `centre x at (${x},${y})`);
      close(c.y, wc.y, 15, `centre y at (${x},${y})`);
      close(faces[0].box.width, 90, 20, `width at (${x},${y})`);
      assertPlausibleKeypoints(faces[0], `1080p (${x},${y})`);
    }
  });

  test("several faces of different sizes in one 1080p frame: all found, no duplicates", async () => {
    const img = await noisyBackground(1920, 1080, 42);
    const placed: Box[] = [];
    for (const [size, x, y] of [
      [90, 120, 700],
      [150, 860, 120], // straddles the back-pass tile seam
      [400, 1250, 250], // large: front full-frame pass
    ] as const) {
      const { img: crop, face } = await astronautFace(size);
      paste(img, crop, x, y);
      placed.push({ ...face, x: face.x + x, y: face.y + y });
    }
    const faces = await detector.detect(img);
    assert.equal(faces.length, placed.length, JSON.stringify(faces.map((f) => f.box)));
    for (const want of placed) {
      const hits = faces.filter((f) => iou(f.box, want) > 0.4);
      assert.equal(hits.length, 1, `face ${JSON.stringify(want)}: ${hits.length} detections`);
      const c = centre(hits[0].box);
      const wc = centre(want);
      close(c.x, wc.x, 0.15 * want.width, "centre x");
      close(c.y, wc.y, 0.15 * want.width, "centre y");
      close(hits[0].box.width, want.width, 0.25 * want.width, "width");
    }
    // sorted by score
    for (let i = 1; i < faces.length; i++) assert.ok(faces[i - 1].score >= faces[i].score);
  });

  test("both photos side by side: two faces, one per photo", async () => {
    const a = await loadRgb(join(FACES, "astronaut.png"));
    const c = await loadRgb(join(FACES, "camera.png"));
    const img = blank(1024, 512, 0);
    paste(img, a, 0, 0);
    paste(img, c, 512, 0);
    const faces = await detector.detect(img);
    assert.equal(faces.length, 2, JSON.stringify(faces.map((f) => f.box)));
    const left = faces.find((f) => centre(f.box).x < 512);
    const right = faces.find((f) => centre(f.box).x >= 512);
    assert.ok(left && right);
    assertFaceNear(left, ASTRONAUT_FACE, 15, "astronaut (left)");
    assertFaceNear(right, { ...CAMERA_FACE, x: CAMERA_FACE.x + 512 }, 15, "camera (right)");
  });

  test("concurrent detect() calls give the same results as sequential ones", async () => {
    const a = await loadRgb(join(FACES, "astronaut.png"));
    const c = await loadRgb(join(FACES, "camera.png"));
    const sequential = [await detector.detect(a), await detector.detect(c)];
    const concurrent = await Promise.all([detector.detect(a), detector.detect(c), detector.detect(a)]);
    assert.deepEqual(concurrent, [...sequential, sequential[0]]);
  });

  test("maxFaces caps the result", async () => {
    const capped = await BlazeFaceDetector.load({ frontModelPath: FRONT, backModelPath: BACK, maxFaces: 1, intraOpNumThreads: 1 });
    try {
      const img = blank(1024, 512, 0);
      paste(img, await loadRgb(join(FACES, "astronaut.png")), 0, 0);
      paste(img, await loadRgb(join(FACES, "camera.png")), 512, 0);
      const faces = await capped.detect(img);
      assert.equal(faces.length, 1);
      assert.ok(centre(faces[0].box).x < 512, "the astronaut (higher score) is kept");
    } finally {
      await capped.close();
    }
  });

  test("a face cut by the image border: box clipped to the image", async () => {
    const a = await loadRgb(join(FACES, "astronaut.png"));
    const cut = 190; // the face box starts at x=178: 12 px of it are cut away
    const img = blank(512 - cut, 512, 0);
    for (let y = 0; y < 512; y++) img.data.set(a.data.subarray((y * 512 + cut) * 3, (y + 1) * 512 * 3), y * (512 - cut) * 3);
    const faces = await detector.detect(img);
    assert.equal(faces.length, 1);
    const b = faces[0].box;
    assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.width <= img.width && b.y + b.height <= img.height, JSON.stringify(b));
    assert.equal(b.x, 0);
    close(b.x + b.width, ASTRONAUT_FACE.x + ASTRONAUT_FACE.width - cut, 15, "right edge");
    for (const p of faces[0].keypoints) assert.ok(p.x >= 0 && p.x <= img.width && p.y >= 0 && p.y <= img.height);
  });

  test("blank and noise-only images: no faces", async () => {
    assert.deepEqual(await detector.detect(blank(1920, 1080, 128)), []);
    assert.deepEqual(await detector.detect(blank(640, 480, 0)), []);
    assert.deepEqual(await detector.detect(blank(1, 1, 255)), []);
    assert.deepEqual(await detector.detect(await noisyBackground(1920, 1080, 7)), []);
  });

  test("rejects malformed input and use after close", async () => {
    await assert.rejects(detector.detect({ data: new Uint8Array(10), width: 4, height: 4 }), /packed RGB/);
    await assert.rejects(detector.detect({ data: new Uint8Array(0), width: 0, height: 0 }), /bad image size/);
    const other = await BlazeFaceDetector.load({ frontModelPath: FRONT, backModelPath: BACK });
    await other.close();
    await assert.rejects(other.detect(blank(8, 8, 0)), /after close/);
    await assert.rejects(
      BlazeFaceDetector.load({ frontModelPath: BACK, backModelPath: FRONT }),
      /input shape \[1,256,256,3\], expected \[N or 1,128,128,3\]/,
    );
  });

  test("cost: 1920x1080 detection time (single intra-op thread)", async (t) => {
    const { img: crop } = await astronautFace(90);
    const img = await noisyBackground(1920, 1080, 3);
    paste(img, crop, 900, 500);
    for (let i = 0; i < 5; i++) await detector.detect(img);
    const times: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      await detector.detect(img);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const median = times[times.length >> 1];
    t.diagnostic(`1920x1080 detect: median ${median.toFixed(1)} ms, min ${times[0].toFixed(1)} ms over ${times.length} runs`);
    assert.ok(median < 250, `median ${median.toFixed(1)} ms: far slower than expected`);
  });
});
