// The provenance sentence: grounded in the closest judged earlier analysis, silent without one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { Cue, ProvenanceSchema, RelatedAnalysisSchema } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { provenanceFact } from './provenance-fact.ts';

const related = (analysisId: string, hammingDistance: number, status: AnalysisStatus, verdict: Verdict, mirrored = false) =>
  create(RelatedAnalysisSchema, { analysisId, hammingDistance, status, verdict, mirrored, maxForgeryScore: 0.91 });

test('nothing related: no sentence', () => {
  assert.equal(provenanceFact(undefined), undefined);
  assert.equal(provenanceFact(create(ProvenanceSchema, {})), undefined);
});

test('the closest finished analysis with a verdict is cited, with its distance as the fact', () => {
  const p = create(ProvenanceSchema, {
    related: [related('a-pending', 0, AnalysisStatus.PENDING, Verdict.UNSPECIFIED), related('b-forged', 3, AnalysisStatus.COMPLETED, Verdict.LIKELY_FORGED, true)],
  });
  const f = provenanceFact(p)!;
  assert.equal(
    f.sentence,
    'A mirrored copy of this picture was analysed before (analysis b-forged), judged likely forged (score 0.91); the two perceptual hashes differ in 3 of 64 bits. It matches 1 more earlier analysis too.',
  );
  assert.equal(f.fact.cue, Cue.SEEN_BEFORE);
  assert.equal(f.fact.value, 3);
  assert.equal(f.fact.unit, 'bits');
  assert.equal(f.fact.region, '');
});

test('without a judged one, the closest is named without a verdict', () => {
  const f = provenanceFact(create(ProvenanceSchema, { related: [related('p', 1, AnalysisStatus.PENDING, Verdict.UNSPECIFIED)] }))!;
  assert.equal(f.sentence, 'This picture was analysed before (analysis p); the two perceptual hashes differ in 1 of 64 bits.');
});
