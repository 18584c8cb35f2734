// The localizer contract (models/README.md), checked on every forgery-localization model in the
// manifest and on a contract-v2 stub: the names and shapes the manifest promises, values in
// [0, 1], and batch-size independence.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, checkLocalizerEntry, decodeRgb, loadVerifiedModel, readManifest, type ManifestEntry } from '@tampertrace/shared';
import { localOnnxRunner, type OnnxRunner, type TensorData } from '@tampertrace/shared/onnx-pool';
import { ASTRONAUT_FACE, astronautPng, cameraPng } from '@tampertrace/shared/testing';
import { cropRectFor } from './geometry.ts';
import { cropFace } from './localize.ts';
import { MANIPULATION_KINDS } from './model.ts';
import { makeSelfBlended } from './sbi.ts';
import { writeContractManifest } from './contract-model.testing.ts';

const limits = { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 };
/** The manifests checked: the repository's and one with the v2 stub (whose other entries repeat the repository's). */
const manifests = [path.join(REPO_ROOT, 'models', 'manifest.json')];
const entries: Array<{ entry: ManifestEntry; root: string }> = [];
const crops = new Map<number, Float32Array[]>();

before(async () => {
  manifests.push(await writeContractManifest(await mkdtemp(path.join(os.tmpdir(), 'tt-contract-'))));
  const seen = new Set<string>();
  for (const file of manifests) {
    const m = await readManifest(file);
    for (const entry of m.models) {
      if (entry.task !== 'forgery-localization' || seen.has(entry.name)) continue;
      seen.add(entry.name);
      entries.push({ entry, root: m.root });
    }
  }
});

/** Eight crops of the evaluation faces, real and self-blended, at the model's crop convention. */
async function cropsFor(e: ManifestEntry): Promise<Float32Array[]> {
  const size = e.inputSize;
  const cached = crops.get(size);
  if (cached) return cached;
  const astronaut = await decodeRgb(astronautPng(), limits);
  const camera = await decodeRgb(cameraPng(), limits);
  const forged = await Promise.all(
    (['blur', 'colour', 'sharpen'] as const).map(async (transform, i) => (await makeSelfBlended(astronaut, ASTRONAUT_FACE, { regions: [['nose'], ['mouth', 'lip'], ['left eye']][i], transform, seed: 31 + i })).rgb),
  );
  const rect = cropRectFor(ASTRONAUT_FACE.box, e.cropScale ?? 1.5);
  const shifted = { ...rect, x: rect.x + 17, y: rect.y - 9 };
  // camera.png's face sits near the astronaut's box in its own 512x512 frame closely enough for a contract check.
  const out = await Promise.all([astronaut, ...forged, camera].map((img) => cropFace(img, rect, size)));
  out.push(await cropFace(astronaut, shifted, size), await cropFace(camera, shifted, size), await cropFace(forged[0], shifted, size));
  crops.set(size, out);
  return out;
}

function batchOf(cs: Float32Array[], size: number): TensorData {
  const data = new Float32Array(cs.length * 3 * size * size);
  cs.forEach((c, i) => data.set(c, i * c.length));
  return { data, dims: [cs.length, 3, size, size] };
}

function inUnit(t: TensorData, what: string): void {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of t.data) {
    if (!(v >= 0 && v <= 1)) assert.fail(`${what}: value ${v} outside [0, 1]`);
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  assert.ok(hi > lo, `${what}: constant output ${lo}`);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

test('every forgery-localization model meets the contract: names, shapes, [0, 1] values, batch 1 equals batch 8 within 1e-4', async () => {
  assert.ok(entries.some((x) => x.entry.name === 'forensic-inconsistency'), 'the bundled localizer is checked');
  assert.ok(entries.some((x) => x.entry.typesOutput), 'at least one model with a type output is checked');
  for (const { entry: e, root } of entries) {
    checkLocalizerEntry(e, MANIPULATION_KINDS);
    const { bytes } = await loadVerifiedModel(root, e);
    const session: OnnxRunner = await localOnnxRunner(bytes, { intraOpNumThreads: 1 });
    try {
      const S = e.inputSize;
      const input = e.input ?? 'face';
      const output = e.output ?? 'forgery_prob';
      assert.deepEqual([...session.inputNames], [input], `${e.name}: its one input`);
      const shape = session.inputMetadata.find((m) => m.name === input)?.shape;
      if (shape) {
        assert.equal(shape.length, 4, `${e.name}: input rank`);
        assert.equal(typeof shape[0], 'string', `${e.name}: the batch dimension is dynamic`);
        assert.deepEqual(shape.slice(1), [3, S, S], `${e.name}: input [N, 3, S, S]`);
      }
      assert.ok(session.outputNames.includes(output), `${e.name}: output ${output}`);
      const cues = ['cue_noise', 'cue_colour', 'cue_boundary'].filter((c) => session.outputNames.includes(c));
      if (e.typesOutput) assert.ok(session.outputNames.includes(e.typesOutput), `${e.name}: types output ${e.typesOutput}`);

      const cs = await cropsFor(e);
      assert.equal(cs.length, 8);
      const eight = await session.run({ [input]: batchOf(cs, S) });
      assert.deepEqual([...eight[output].dims], [8, 1, S, S], `${e.name}: ${output} [N, 1, S, S]`);
      inUnit(eight[output], `${e.name} ${output}`);
      for (const c of cues) assert.deepEqual([...eight[c].dims], [8, 1, S, S], `${e.name}: ${c} [N, 1, S, S]`);
      if (e.typesOutput) {
        assert.deepEqual([...eight[e.typesOutput].dims], [8, e.manipulationTypes!.length], `${e.name}: ${e.typesOutput} [N, K], K = manipulationTypes`);
        inUnit(eight[e.typesOutput], `${e.name} ${e.typesOutput}`);
      }
      const plane = S * S;
      for (let i = 0; i < cs.length; i++) {
        const one = await session.run({ [input]: batchOf([cs[i]], S) });
        for (const [name, per] of [[output, plane], ...cues.map((c) => [c, plane] as const), ...(e.typesOutput ? [[e.typesOutput, e.manipulationTypes!.length] as const] : [])] as const) {
          const d = maxDiff(one[name].data, eight[name].data.subarray(i * per, (i + 1) * per));
          assert.ok(d <= 1e-4, `${e.name}: ${name} of crop ${i} differs by ${d} between batch 1 and batch 8`);
        }
      }
    } finally {
      await session.release();
    }
  }
});

test('a manifest entry with half of the type fields, or a kind the proto lacks, is refused before loading', () => {
  const base = entries.find((x) => x.entry.typesOutput)!.entry;
  assert.throws(() => checkLocalizerEntry({ ...base, typeThreshold: undefined }, MANIPULATION_KINDS), /go together/);
  assert.throws(() => checkLocalizerEntry({ ...base, manipulationTypes: ['BLEND', 'MORPH'] }, MANIPULATION_KINDS), /unknown manipulation types MORPH/);
  assert.throws(() => checkLocalizerEntry({ ...base, typeThreshold: 0 }, MANIPULATION_KINDS), /typeThreshold/);
  assert.doesNotThrow(() => checkLocalizerEntry({ ...base, typesOutput: undefined, manipulationTypes: undefined, typeThreshold: undefined }, MANIPULATION_KINDS));
});

