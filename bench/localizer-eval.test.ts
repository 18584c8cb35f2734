import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { auc, bootstrap, compareWithBaseline, readEvalIndex, report, typeCorrect, type EvalItem, type Outcome } from './localizer-eval.ts';

const item = (x: Partial<EvalItem>): EvalItem => ({ file: 'a.png', mask: 'a-mask.png', recipe: 'inpaint_telea', laundering: 'clean', types: ['INPAINT'], real: false, heldOut: false, identity: 'astronaut', seed: 1, ...x });

test('AUC counts ties one half and is 1 when every positive scores above every negative', () => {
  assert.equal(auc([0.9, 0.8], [0.1, 0.2]), 1);
  assert.equal(auc([0.1], [0.9]), 0);
  assert.equal(auc([0.5, 0.5], [0.5]), 0.5);
  assert.equal(auc([0.3, 0.7], [0.5, 0.1]), 0.75);
  assert.ok(Number.isNaN(auc([], [0.1])));
});

test('a bootstrap interval contains its value, is the same on a rerun and narrows with more data', () => {
  const small = Array.from({ length: 10 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const big = Array.from({ length: 400 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const a = bootstrap([small], mean);
  assert.ok(a.lo <= a.value && a.value <= a.hi, JSON.stringify(a));
  assert.deepEqual(bootstrap([small], mean), a);
  const b = bootstrap([big], mean);
  assert.ok(b.hi - b.lo < (a.hi - a.lo) / 3, `${b.hi - b.lo} against ${a.hi - a.lo}`);
  assert.ok(Number.isNaN(bootstrap([[] as number[]], mean).lo));
});

test('a type is right when the top kind is a true one and reaches the threshold; a model without types has no type accuracy', () => {
  const o = (x: Partial<Outcome>): Outcome => ({ item: item({ types: ['SPLICE', 'SMOOTH'] }), faces: 1, score: 0.7, verdict: 'LIKELY_FORGED', typeThreshold: 0.5, ...x });
  assert.equal(typeCorrect(o({ topType: 'SMOOTH', topProbability: 0.6 })), true);
  assert.equal(typeCorrect(o({ topType: 'SMOOTH', topProbability: 0.4 })), false, 'below the threshold: no edit found');
  assert.equal(typeCorrect(o({ topType: 'BLEND', topProbability: 0.9 })), false);
  assert.equal(typeCorrect(o({ typeThreshold: undefined })), undefined);
  assert.equal(typeCorrect(o({ item: item({ real: true, types: [], mask: null }) })), undefined);
});

test('the index is read line by line; groups split trained from held-out recipes and clean from laundered', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tt-eval-'));
  const lines = [
    item({ file: 'f1.png', recipe: 'inpaint_telea' }),
    item({ file: 'f2.png', recipe: 'inpaint_patch', heldOut: true, laundering: 'half_jpeg80' }),
    item({ file: 'r1.png', mask: null, recipe: 'real_recompress', types: [], real: true }),
    item({ file: 'r2.png', mask: null, recipe: 'real_resize', types: [], real: true, laundering: 'half_jpeg80', identity: 'camera' }),
  ];
  await writeFile(path.join(dir, 'index.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const items = await readEvalIndex(dir);
  assert.deepEqual(items, lines);
  const outcome = (i: EvalItem, score: number, iou?: number): Outcome => ({ item: i, faces: 1, score, verdict: score >= 0.6 ? 'LIKELY_FORGED' : score >= 0.4 ? 'UNCERTAIN' : 'LIKELY_AUTHENTIC', iou });
  const r = report([outcome(items[0], 0.9, 0.5), outcome(items[1], 0.3, 0.1), outcome(items[2], 0.5), outcome(items[3], 0.2)]);
  assert.equal(r.trainedRecipes.forged, 1);
  assert.equal(r.heldOutRecipes.forged, 1);
  assert.equal(r.trainedRecipes.meanIou.value, 0.5);
  assert.equal(r.heldOutRecipes.imageAuc.value, 0.5, 'held-out forgery 0.3 against reals 0.5 and 0.2');
  assert.equal(r.overall.imageAuc.value, 0.75);
  assert.equal(r.overall.realUncertain.value, 0.5);
  assert.equal(r.overall.realForged.value, 0);
  assert.deepEqual(Object.keys(r.byLaundering), ['clean', 'half_jpeg80']);
  assert.equal(r.byRecipe.inpaint_patch.heldOut, true);
  assert.ok(Number.isNaN(r.overall.typeAccuracy.value), 'no type output, no type accuracy');

  await writeFile(path.join(dir, 'index.jsonl'), JSON.stringify({ file: 'x.png', recipe: 'splice', laundering: 'clean', real: false }) + '\n');
  await assert.rejects(readEvalIndex(dir), /line 1: a forged image needs its mask/);
});

test('the default-model rule needs higher IoU and image AUC in every recipe/laundering cell and no more real photos called forged', () => {
  const o = (i: EvalItem, score: number, iou?: number): Outcome => ({ item: i, faces: 1, score, verdict: score >= 0.6 ? 'LIKELY_FORGED' : 'LIKELY_AUTHENTIC', iou });
  const a = item({ recipe: 'splice' });
  const b = item({ recipe: 'splice', laundering: 'half_jpeg80' });
  const r = item({ real: true, mask: null, types: [] });
  const old = report([o(a, 0.25, 0.2), o(b, 0.5, 0.2), o(r, 0.3)]);
  const better = report([o(a, 0.7, 0.4), o(b, 0.5, 0.3), o(r, 0.2)]);
  const c = compareWithBaseline(old, better);
  assert.equal(c.cells, 2);
  assert.equal(c.beatsOnEveryCell, false, 'the laundered cell\'s image AUC only ties');
  assert.deepEqual(c.losses, ['splice/half_jpeg80: image AUC 1.000 vs 1.000']);
  assert.equal(compareWithBaseline(old, report([o(a, 0.7, 0.4), o(b, 0.5, 0.3), o(r, 0.65)])).losses.at(-1), 'real photos called LIKELY_FORGED: 1.000 vs 0.000');
});
