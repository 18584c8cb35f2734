// BlazeFace with a dynamic batch dimension (scripts/blazeface-batch-n.mjs): the derived files are
// the manifest's bytes, a batch gives each tile exactly what a single run gives, and a detector
// sharing runs between tiles and images finds exactly what the pinned originals find alone.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { REPO_ROOT, type RgbImage } from "@tampertrace/shared";
import { blazefaceBatchN } from "../../../scripts/blazeface-batch-n.mjs";
import { BlazeFaceDetector } from "./blazeface.ts";

interface Entry {
  name: string;
  path: string;
  sha256: string;
  inputSize: number;
  source?: { derivedFrom?: string };
}
const manifest = JSON.parse(readFileSync(join(REPO_ROOT, "models/manifest.json"), "utf8")) as { models: Entry[] };
const entry = (name: string) => manifest.models.find((m) => m.name === name)!;
const file = (name: string) => join(REPO_ROOT, entry(name).path);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

test("the batch-n copies are derived byte for byte as the manifest pins them", async () => {
  for (const name of ["blazeface-front-128-batch-n", "blazeface-back-256-batch-n"]) {
    const e = entry(name);
    const derived = await blazefaceBatchN(readFileSync(file(e.source!.derivedFrom!)));
    assert.equal(sha(derived), e.sha256, name);
    assert.equal(sha(readFileSync(file(name))), e.sha256, `${name} on disk`);
  }
  await assert.rejects(blazefaceBatchN(readFileSync(file("blazeface-front-128-batch-n"))), /batch dimension is N/);
});

test("one run of a batch gives every tile the outputs of its own run, bit for bit", async () => {
  for (const base of ["blazeface-front-128", "blazeface-back-256"]) {
    const S = entry(base).inputSize;
    const opts = { intraOpNumThreads: 1, logSeverityLevel: 3 as const };
    const single = await ort.InferenceSession.create(file(base), opts);
    const batched = await ort.InferenceSession.create(file(`${base}-batch-n`), opts);
    const n = S * S * 3;
    const B = 3;
    const data = Float32Array.from({ length: B * n }, (_, i) => Math.sin(i * 0.37) * 0.9);
    const all = await batched.run({ [batched.inputNames[0]]: new ort.Tensor("float32", data, [B, S, S, 3]) });
    for (let k = 0; k < B; k++) {
      const one = await single.run({ [single.inputNames[0]]: new ort.Tensor("float32", data.slice(k * n, (k + 1) * n), [1, S, S, 3]) });
      for (const name of single.outputNames) {
        const a = one[name].data as Float32Array;
        const b = (all[name].data as Float32Array).subarray(k * a.length, (k + 1) * a.length);
        assert.deepEqual(b, a, `${base} ${name} tile ${k}`);
      }
    }
    await Promise.all([single.release(), batched.release()]);
  }
});

async function rgb(input: Buffer | string, resize?: number, canvas?: { width: number; height: number; left: number; top: number }): Promise<RgbImage> {
  let p = sharp(input).removeAlpha();
  if (resize) p = sharp(await p.resize(resize).png().toBuffer());
  if (canvas) {
    const layer = await p.png().toBuffer();
    const composed = await sharp({ create: { width: canvas.width, height: canvas.height, channels: 3, background: "#6b7a88" } })
      .composite([{ input: layer, left: canvas.left, top: canvas.top }])
      .png()
      .toBuffer();
    p = sharp(composed).removeAlpha();
  }
  const { data, info } = await p.raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

test("a detector sharing runs between tiles and images finds what the originals find one tile at a time", async () => {
  const faces = join(REPO_ROOT, "testdata/faces");
  // Small faces in wide frames: several back-model tiles per image.
  const images = await Promise.all([
    rgb(join(faces, "astronaut.png")),
    rgb(join(faces, "camera.png")),
    rgb(join(faces, "astronaut.png"), 300, { width: 1920, height: 1080, left: 1400, top: 600 }),
    rgb(join(faces, "camera.png"), 260, { width: 1600, height: 1200, left: 90, top: 800 }),
  ]);
  const original = await BlazeFaceDetector.load({ frontModelPath: file("blazeface-front-128"), backModelPath: file("blazeface-back-256"), intraOpNumThreads: 1, maxBatch: 8 });
  const batched = await BlazeFaceDetector.load({ frontModelPath: file("blazeface-front-128-batch-n"), backModelPath: file("blazeface-back-256-batch-n"), intraOpNumThreads: 1, maxBatch: 8, worker: true });
  try {
    const want = [];
    for (const img of images) want.push(await original.detect(img));
    assert.equal(original.batchStats.back.largest, 1, "a batch-1 file never gets more than one tile");
    const got = await Promise.all(images.map((img) => batched.detect(img)));
    assert.deepEqual(got, want);
    assert.ok(want.slice(2).every((f) => f.length === 1), "the small faces are found");
    assert.ok(batched.batchStats.back.largest > 1, `tiles shared runs (${JSON.stringify(batched.batchStats)})`);
    assert.ok(batched.batchStats.back.runs < batched.batchStats.back.items);
  } finally {
    await Promise.all([original.close(), batched.close()]);
  }
});
