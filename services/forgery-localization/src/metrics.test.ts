import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskScores, pixelAuc } from './metrics.ts';

test('pixel AUC: perfect, inverted, chance and tied rankings', () => {
  const labels = new Uint8Array([0, 0, 1, 1]);
  assert.equal(pixelAuc(new Uint8Array([10, 20, 200, 250]), labels), 1);
  assert.equal(pixelAuc(new Uint8Array([250, 200, 20, 10]), labels), 0);
  assert.equal(pixelAuc(new Uint8Array([5, 5, 5, 5]), labels), 0.5);
  // one positive above both negatives, one tied with a negative: (1 + 1 + 1 + 0.5) / 4
  assert.equal(pixelAuc(new Uint8Array([10, 50, 50, 90]), labels), 0.875);
  assert.ok(Number.isNaN(pixelAuc(new Uint8Array([1, 2]), new Uint8Array([1, 1]))));
});

test('pixel AUC ignores pixels outside the area', () => {
  const scores = new Uint8Array([255, 10, 200]);
  const labels = new Uint8Array([0, 0, 1]);
  assert.equal(pixelAuc(scores, labels), 0.5);
  assert.equal(pixelAuc(scores, labels, new Uint8Array([0, 1, 1])), 1);
});

test('IoU, F1, precision and recall on a known overlap', () => {
  const pred = new Uint8Array([1, 1, 1, 0, 0, 0]);
  const gt = new Uint8Array([0, 1, 1, 1, 0, 0]);
  const s = maskScores(pred, gt);
  assert.equal(s.iou, 2 / 4);
  assert.equal(s.precision, 2 / 3);
  assert.equal(s.recall, 2 / 3);
  assert.ok(Math.abs(s.f1 - 2 / 3) < 1e-12);
  assert.equal(maskScores(new Uint8Array(3), new Uint8Array(3)).iou, 1);
});
