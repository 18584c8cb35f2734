import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { AnalysisSchema, Cue } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { ManipulationType, PolygonSchema } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { explanationRegionMetrics, storedRegionArea, summarizeExplanationMetrics } from './metrics.ts';
import { RegionScoreSchema } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';

const W = 100;
const H = 100;
const rect = (x0: number, y0: number, x1: number, y1: number, hole = false) =>
  create(PolygonSchema, { hole, points: [{ x: x0, y: y0 }, { x: x1, y: y0 }, { x: x1, y: y1 }, { x: x0, y: y1 }] });
/** Ground truth: columns [x0, x1) of rows [y0, y1) edited. */
function maskOf(x0: number, y0: number, x1: number, y1: number): Uint8Array {
  const m = new Uint8Array(W * H);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * W + x] = 255;
  return m;
}

// Three regions of 10 x 10 px: lips at x 0-10, nose at x 20-30, left eye at x 40-50 (rows 0-10).
function analysis(claims: string[], kinds: [ManipulationType, number][] = []) {
  const init: MessageInitShape<typeof AnalysisSchema> = {
    faces: [{
      index: 0,
      regions: [
        { name: 'lip', polygons: [rect(0, 0, 10, 10)] },
        { name: 'nose', polygons: [rect(20, 0, 30, 10)] },
        { name: 'left eye', polygons: [rect(40, 0, 50, 10)] },
      ],
    }],
    explanation: {
      facts: claims.flatMap((r) => [{ faceIndex: 0, region: r, cue: Cue.COVERAGE }, { faceIndex: 0, region: r, cue: Cue.BLUR }]),
      editKinds: kinds.map(([type, probability]) => ({ faceIndex: 0, type, probability })),
    },
  };
  return create(AnalysisSchema, init);
}

test("a stored region's area is its polygons' pixel centres, holes cut out", () => {
  const m = storedRegionArea(undefined as never, create(RegionScoreSchema, { name: 'nose', polygons: [rect(2, 2, 6, 6), rect(3, 3, 5, 5, true)] }), 8, 8)!;
  assert.equal(m.reduce((a, v) => a + v, 0), 16 - 4);
  assert.equal(m[2 * 8 + 2], 1);
  assert.equal(m[3 * 8 + 3], 0);
  assert.equal(m[6 * 8 + 6], 0);
  // Nothing stored, or a name the geometry does not know: unknown.
  assert.equal(storedRegionArea(undefined as never, create(RegionScoreSchema, { name: 'nose' }), 8, 8), undefined);
  assert.equal(storedRegionArea(undefined as never, create(RegionScoreSchema, { name: 'temple', polygons: [rect(2, 2, 6, 6)] }), 8, 8), undefined);
});

test('a region is edited from 15% of its area in the mask; claims are regions with a cue fact', () => {
  // Lips fully edited, nose 20% (2 of 10 columns), eye 10%: edited = lips, nose.
  const mask = new Uint8Array(W * H);
  maskOf(0, 0, 10, 10).forEach((v, i) => (mask[i] |= v));
  maskOf(20, 0, 22, 10).forEach((v, i) => (mask[i] |= v));
  maskOf(40, 0, 41, 10).forEach((v, i) => (mask[i] |= v));
  const m = explanationRegionMetrics(analysis(['lip', 'left eye'], [[ManipulationType.RECOLOUR, 0.8], [ManipulationType.INPAINT, 0.6]]), { mask, width: W, height: H, kinds: [ManipulationType.RECOLOUR] });
  assert.deepEqual(m.edited, ['0:lip', '0:nose']);
  assert.deepEqual(m.claimed, ['0:lip', '0:left eye']);
  assert.deepEqual([m.truePositives, m.falsePositives, m.falseNegatives], [1, 1, 1]);
  assert.equal(m.precision, 0.5);
  assert.equal(m.recall, 0.5);
  assert.deepEqual(m.kindsNamed, [ManipulationType.RECOLOUR, ManipulationType.INPAINT]);
  assert.equal(m.kindCorrect, true);
  assert.equal(m.falseClaimsOnReal, 0);
  // The most probable named kind decides.
  const wrong = explanationRegionMetrics(analysis(['lip'], [[ManipulationType.INPAINT, 0.9], [ManipulationType.RECOLOUR, 0.6]]), { mask, width: W, height: H, kinds: [ManipulationType.RECOLOUR] });
  assert.equal(wrong.kindCorrect, false);
});

test('coverage facts alone are no claim; real photos count every claim as false', () => {
  const a = analysis(['nose']);
  a.explanation!.facts.push({ ...a.explanation!.facts[0], region: 'lip', cue: Cue.COVERAGE });
  const real = explanationRegionMetrics(a, { width: W, height: H });
  assert.deepEqual(real.claimed, ['0:nose']);
  assert.equal(real.falseClaimsOnReal, 1);
  assert.equal(real.recall, undefined);
  assert.deepEqual(real.edited, []);
  const none = explanationRegionMetrics(analysis([]), { mask: new Uint8Array(W * H), width: W, height: H });
  assert.equal(none.precision, undefined);
  assert.equal(none.falseClaimsOnReal, 0);
});

test('regions without polygons use the fallback area, or are reported as unknown', () => {
  const a = analysis(['lip']);
  a.faces[0].regions[0].polygons = [];
  const mask = maskOf(0, 0, 10, 10);
  assert.deepEqual(explanationRegionMetrics(a, { mask, width: W, height: H }).unknownArea, ['0:lip']);
  const withFallback = explanationRegionMetrics(a, { mask, width: W, height: H }, (_f, r, w, h) => (r.name === 'lip' ? storedRegionArea(_f, create(RegionScoreSchema, { name: 'lip', polygons: [rect(0, 0, 10, 10)] }), w, h) : undefined));
  assert.deepEqual(withFallback.edited, ['0:lip']);
  assert.throws(() => explanationRegionMetrics(a, { mask: new Uint8Array(3), width: W, height: H }), RangeError);
});

test('the summary pools forgeries and real photos into the targets of the issue', () => {
  const mask = maskOf(0, 0, 10, 10);
  const f1 = explanationRegionMetrics(analysis(['lip'], [[ManipulationType.RECOLOUR, 0.9]]), { mask, width: W, height: H, kinds: [ManipulationType.RECOLOUR] });
  const f2 = explanationRegionMetrics(analysis(['nose']), { mask, width: W, height: H, kinds: [ManipulationType.SPLICE] });
  const r1 = explanationRegionMetrics(analysis([]), { width: W, height: H });
  const r2 = explanationRegionMetrics(analysis(['left eye']), { width: W, height: H });
  const s = summarizeExplanationMetrics([
    { metrics: f1, real: false, hasKinds: true }, { metrics: f2, real: false, hasKinds: true },
    { metrics: r1, real: true }, { metrics: r2, real: true },
  ]);
  assert.deepEqual(s, { forgeries: 2, realPhotos: 2, precision: 0.5, recall: 0.5, kindAccuracy: 1, kindNotNamed: 1, falseClaimsPerRealPhoto: 0.5, kindsNamedOnReal: 0 });
});
