// The provenance sentence of an explanation: "this image matches an earlier analysis judged
// LIKELY_FORGED", grounded in the provenance stage's measured link. Kept apart from the template
// explainer so each can change alone.
import { create } from '@bufbuild/protobuf';
import { Cue, FactSchema, type Fact, type Provenance, type RelatedAnalysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';

const VERDICT_WORDS: Partial<Record<Verdict, string>> = {
  [Verdict.LIKELY_FORGED]: 'likely forged',
  [Verdict.UNCERTAIN]: 'uncertain',
  [Verdict.LIKELY_AUTHENTIC]: 'likely authentic',
};

/**
 * The sentence and its fact about the closest earlier analysis of the same picture, preferring
 * one with a verdict (the closest finished one); undefined when nothing matched.
 */
export function provenanceFact(p: Provenance | undefined): { sentence: string; fact: Fact } | undefined {
  const related = p?.related ?? [];
  if (related.length === 0) return undefined;
  const judged = related.find((r) => r.status === AnalysisStatus.COMPLETED && VERDICT_WORDS[r.verdict]);
  const r: RelatedAnalysis = judged ?? related[0];
  const what = judged ? `, judged ${VERDICT_WORDS[r.verdict]} (score ${r.maxForgeryScore.toFixed(2)})` : '';
  const others = related.length > 1 ? ` It matches ${related.length - 1} more earlier ${related.length === 2 ? 'analysis' : 'analyses'} too.` : '';
  const statement = `${r.mirrored ? 'A mirrored copy of this picture' : 'This picture'} was analysed before (analysis ${r.analysisId})${what}; the two perceptual hashes differ in ${r.hammingDistance} of 64 bits.`;
  return {
    sentence: statement + others,
    fact: create(FactSchema, { cue: Cue.SEEN_BEFORE, value: r.hammingDistance, unit: 'bits', statement }),
  };
}
