// The explanation stage: turns the localizer's measured evidence into a grounded text and
// assembles the final Analysis.
import { create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import { nextMeta, presignRefs, stageWiring, type ImageLimits, type ObjectStore, type StageDefinition, ConsumerGroup } from '@tampertrace/shared';
import { AnalysisSchema, Cue, EditKindFactSchema, ExplanationSchema, FaceQuality, FactSchema, type Face } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ManipulationType, ModelRefSchema, Stage, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema, ForgeryLocalizedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { EDIT_KINDS, type EditKind, type Explainer, type FaceEvidence, type Fact, type FaceQualityLabel } from './explainer.ts';
import { faceImageLoader } from './face-image.ts';
import { provenanceFact } from './provenance-fact.ts';

export const EXPLANATION = ConsumerGroup.explanationGeneration;

const CUE: Record<Fact['cue'], Cue> = {
  coverage: Cue.COVERAGE,
  blur: Cue.BLUR,
  sharpening: Cue.SHARPENING,
  colour: Cue.COLOUR,
  boundary: Cue.BOUNDARY,
};

/** The explainer's view of a stored face: its evidence, quality and kinds of edit. */
export function faceEvidence(f: Face): FaceEvidence {
  return {
    faceIndex: f.index,
    forgeryScore: f.forgeryScore,
    regions: f.regions.map((r) => ({ name: r.name, score: r.score, coverage: r.coverage, cues: { ...r.cues } })),
    quality: (FaceQuality[f.quality] ?? 'UNSPECIFIED') as FaceQualityLabel,
    manipulations: f.manipulations
      .map((m) => ({ type: ManipulationType[m.type] as EditKind, probability: m.probability }))
      .filter((m) => EDIT_KINDS.includes(m.type)),
    // The localizer's own threshold for its kinds (0: the analysis has none, the configured one applies).
    typeThreshold: f.manipulationThreshold > 0 ? f.manipulationThreshold : undefined,
  };
}

export interface ExplanationDeps {
  explainer: Explainer;
  /** Where the artefacts are; when it can presign (S3), the final event carries expiring URLs for downstream consumers. */
  store?: ObjectStore;
  presignTtlS?: number;
  /** Decoding limits for the original, when an explainer asks for the face's pixels. */
  limits?: ImageLimits;
}

export function explanationStage(deps: ExplanationDeps): StageDefinition<typeof ForgeryLocalizedSchema, typeof AnalysisCompletedSchema> {
  return {
    ...stageWiring('explanation-generation', ForgeryLocalizedSchema, AnalysisCompletedSchema),
    async handle(event) {
      const meta = nextMeta(event.meta!, Stage.EXPLANATION, EXPLANATION);
      const noFace = event.status === AnalysisStatus.NO_FACE || event.faces.length === 0;
      const analysis = create(AnalysisSchema, {
        analysisId: meta.analysisId,
        tenantId: meta.tenantId,
        contentSha256: meta.contentSha256,
        status: noFace ? AnalysisStatus.NO_FACE : AnalysisStatus.COMPLETED,
        verdict: noFace ? Verdict.UNSPECIFIED : event.verdict,
        image: event.image,
        faces: event.faces,
        models: event.models,
        artifacts: event.artifacts,
        submittedAt: meta.submittedAt,
        sourceName: meta.sourceName,
        maxForgeryScore: Math.max(0, ...event.faces.map((f) => f.forgeryScore)),
        provenance: event.provenance,
      });
      if (!noFace) {
        const e = await deps.explainer.explain({
          verdict: Verdict[event.verdict] as 'LIKELY_FORGED' | 'LIKELY_AUTHENTIC' | 'UNCERTAIN',
          faces: event.faces.map(faceEvidence),
          // Pixels only for explainers that look at them (a vision-language model), read on demand.
          faceImage: deps.store && event.artifacts ? faceImageLoader(deps.store, event.artifacts, event.faces, deps.limits) : undefined,
        });
        analysis.explanation = create(ExplanationSchema, {
          text: e.text,
          facts: e.facts.map((f) => create(FactSchema, { faceIndex: f.faceIndex, region: f.region, cue: CUE[f.cue], value: f.value, unit: f.unit, statement: f.statement })),
          editKinds: e.editKinds.map((k) => create(EditKindFactSchema, { faceIndex: k.faceIndex, type: ManipulationType[k.type], probability: k.probability, threshold: k.threshold, statement: k.statement })),
          generator: create(ModelRefSchema, { name: e.generator.name, version: e.generator.version }),
          fallbackReason: e.fallbackReason ?? '',
        });
        analysis.models.push(analysis.explanation.generator!);
        // A re-post of an earlier analysis's picture says so, with that analysis's verdict.
        const seen = provenanceFact(event.provenance);
        if (seen) {
          analysis.explanation.text = `${analysis.explanation.text} ${seen.sentence}`;
          analysis.explanation.facts.push(seen.fact);
        }
      }
      analysis.completedAt = timestampNow();
      // The explanation stage's own timing is appended by the runner to meta; copy the total in.
      analysis.timings = meta.timings;
      const presign = deps.store?.presignedGetUrl?.bind(deps.store);
      const arts = analysis.artifacts;
      if (presign && arts) await presignRefs(presign, [arts.original, arts.mask, arts.heatmap], deps.presignTtlS ?? 3600);
      return create(AnalysisCompletedSchema, { meta, analysis });
    },
  };
}
