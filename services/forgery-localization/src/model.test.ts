// Dynamic batching must never change a result: each crop's outputs from a shared ONNX run equal
// those of the crop run alone, bit for bit, and so do whole localizations run concurrently.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRgb, findModel, limitsOf, loadConfig, readManifest } from '@tampertrace/shared';
import { ASTRONAUT_FACE, astronautPng } from '@tampertrace/shared/testing';
import { cropRectFor } from './geometry.ts';
import { Localizer, cropFace, type FaceInput, type LocalizationResult } from './localize.ts';
import { batchedForgeryModel, loadForgeryModel, type ForgeryModel, type LocalizerOutput } from './model.ts';
import { makeSelfBlended } from './sbi.ts';
import { OnnxPool } from '@tampertrace/shared/onnx-pool';

// BlazeFace's face in astronaut.png, so this test needs no detector.
const FACE: FaceInput = ASTRONAUT_FACE;

const cfg = loadConfig({ ...process.env, TAMPERTRACE_ORT_THREADS: '1' });
let single: ForgeryModel;
let entry: Awaited<ReturnType<typeof findModel>>;
const images: { data: Uint8Array; width: number; height: number }[] = [];

before(async () => {
  const manifest = await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST);
  entry = findModel(manifest, cfg.TAMPERTRACE_LOCALIZER_MODEL);
  // onnxruntime's own thread count here; the pool's sessions run one thread each.
  single = await loadForgeryModel(manifest.root, entry);
  const real = await decodeRgb(astronautPng(), limitsOf(cfg));
  images.push(real);
  for (const [i, transform] of (['blur', 'colour', 'sharpen'] as const).entries()) {
    images.push((await makeSelfBlended(real, FACE, { regions: i === 1 ? ['nose', 'mouth'] : ['left eye', 'nose'], transform, seed: 7 + i })).rgb);
  }
});

after(async () => {
  await single?.close();
});

function sameOutputs(a: LocalizerOutput, b: LocalizerOutput, what: string): void {
  for (const k of ['prob', 'noise', 'colour', 'boundary', 'types'] as const) {
    // Cue maps and kinds are optional in the contract; what one side has, the other must too.
    if (k !== 'prob' && !a[k] && !b[k]) continue;
    assert.ok(a[k] && b[k], `${what}: ${k} present`);
    assert.ok(Buffer.from(a[k].buffer, a[k].byteOffset, a[k].byteLength).equals(Buffer.from(b[k].buffer, b[k].byteOffset, b[k].byteLength)), `${what}: ${k} differs`);
  }
}

test('a crop run in a batch of several gives exactly the outputs of the crop run alone', async () => {
  const crops = await Promise.all(
    images.flatMap((img) => [1.5, 1.2].map((scale) => cropFace(img, cropRectFor(FACE.box, scale), single.size))),
  );
  const alone: LocalizerOutput[] = [];
  for (const c of crops) alone.push((await single.run([c]))[0]);
  const together = await single.run(crops);
  assert.equal(together.length, crops.length);
  crops.forEach((_, i) => sameOutputs(together[i], alone[i], `crop ${i}`));
});

test('concurrent localizations through the batcher share runs and equal unbatched ones bit for bit', async () => {
  const manifest = await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST);
  const batched = batchedForgeryModel(await loadForgeryModel(manifest.root, entry, { intraOpNumThreads: 1 }), { maxBatchSize: 4, maxWaitMs: 0, maxQueue: 64 });
  const thresholds = { pixel: entry.pixelThreshold!, band: entry.uncertainBand!, faceTopFraction: entry.faceTopFraction };
  const plain = new Localizer(single, thresholds, entry.cropScale);
  const viaBatcher = new Localizer(batched, thresholds, entry.cropScale);
  try {
    // Two faces per image (the second a shifted copy), so both within-image and across-image batching happen.
    const faces = [FACE, { ...FACE, box: { ...FACE.box, x: FACE.box.x + 20 } }];
    const expected: LocalizationResult[] = [];
    for (const img of images) expected.push(await plain.localize(img, faces));
    const got = await Promise.all([...images, ...images].map((img) => viaBatcher.localize(img, faces)));
    assert.ok(batched.batcher.stats.largest > 2, `some run served more than one image (largest batch ${batched.batcher.stats.largest})`);
    got.forEach((r, i) => {
      const e = expected[i % images.length];
      assert.deepEqual(r.faces, e.faces, `image ${i}: faces`);
      assert.equal(r.verdict, e.verdict);
      assert.ok(Buffer.from(r.mask).equals(Buffer.from(e.mask)), `image ${i}: mask`);
      assert.ok(Buffer.from(r.heat).equals(Buffer.from(e.heat)), `image ${i}: heatmap`);
    });
  } finally {
    await batched.close();
  }
});

test('sessions in the worker pool, one thread each, give exactly the outputs of a session on the main thread with onnxruntime\'s default threads', async () => {
  const manifest = await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST);
  const pool = new OnnxPool(2);
  try {
    const pooled = await loadForgeryModel(manifest.root, entry, { intraOpNumThreads: 1, pool });
    const crops = await Promise.all(images.map((img) => cropFace(img, cropRectFor(FACE.box, 1.5), single.size)));
    const here = await single.run(crops);
    // Concurrent runs, so both workers take part.
    const there = (await Promise.all([pooled.run(crops.slice(0, 2)), pooled.run(crops.slice(2))])).flat();
    crops.forEach((_, i) => sameOutputs(there[i], here[i], `crop ${i}`));
  } finally {
    await pool.close();
  }
});
