// ExplanationService over gRPC (protos/tampertrace/v1/stages.proto): the explanation stage's own
// handler, run on evidence sent inline (typically a LocalizeResponse) instead of an event.
import { create } from '@bufbuild/protobuf';
import { InvalidInputError, stageCall, unaryHandler, type Config, type GrpcServiceImpl, type Logger } from '@tampertrace/shared';
import type { Face } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ForgeryLocalizedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { ExplainResponseSchema, ExplanationService, type ExplainRequest } from '@tampertrace/shared/gen/tampertrace/v1/stages_pb';
import { parseRegion } from '@tampertrace/shared/region-words';
import type { Explainer } from './explainer.ts';
import { explanationStage } from './stage.ts';

/** A bound on what one call may ask for (the localizer's own per-call bound). */
export const MAX_FACES_PER_CALL = 64;

const unit = (v: number) => Number.isFinite(v) && v >= 0 && v <= 1;

/**
 * Evidence a client sends is checked before it reaches the explainer: in the stream it comes
 * from the localizer and is sound by construction. Region names are held to the region
 * vocabulary (shared/src/region-words.ts: an optional side, then a region word), so the text can
 * name nothing but facial regions.
 */
export function checkEvidence(req: ExplainRequest): void {
  const bad = (msg: string) => new InvalidInputError(ErrorCode.INVALID_MESSAGE, msg);
  if (req.faces.length > MAX_FACES_PER_CALL) throw bad(`${req.faces.length} faces; at most ${MAX_FACES_PER_CALL} per call`);
  if (req.faces.length > 0 && ![Verdict.LIKELY_FORGED, Verdict.LIKELY_AUTHENTIC, Verdict.UNCERTAIN].includes(req.verdict)) {
    throw bad('verdict must be LIKELY_FORGED, LIKELY_AUTHENTIC or UNCERTAIN when faces are given');
  }
  const indices = new Set<number>();
  req.faces.forEach((f: Face, i) => {
    if (indices.has(f.index)) throw bad(`faces[${i}].index ${f.index} is used twice`);
    indices.add(f.index);
    if (!unit(f.forgeryScore)) throw bad(`faces[${i}].forgery_score must be in [0, 1]`);
    if (f.manipulations.some((m) => !unit(m.probability))) throw bad(`faces[${i}].manipulations: probabilities must be in [0, 1]`);
    const names = new Set<string>();
    f.regions.forEach((r, j) => {
      const at = `faces[${i}].regions[${j}]`;
      if (r.name.length > 40 || !parseRegion(r.name) || r.name !== r.name.trim().toLowerCase()) throw bad(`${at}.name "${r.name.slice(0, 40)}" is not a region name ("nose", "left eye", "lips"...)`);
      if (names.has(r.name)) throw bad(`${at}.name "${r.name}" appears twice for this face`);
      names.add(r.name);
      if (!unit(r.score) || !unit(r.coverage)) throw bad(`${at}: score and coverage must be in [0, 1]`);
      const cues = [r.cues?.noiseLogRatio, r.cues?.colourDelta, r.cues?.boundaryStrength];
      if (cues.some((v) => v !== undefined && !Number.isFinite(v))) throw bad(`${at}.cues must be finite`);
    });
  });
}

export function explanationGrpc(deps: { explainer: Explainer }, cfg: Config, log: Logger): GrpcServiceImpl {
  return {
    service: ExplanationService,
    impl: {
      explain: unaryHandler(log, async (req: ExplainRequest) => {
        checkEvidence(req);
        const { meta } = await stageCall(cfg);
        const status = req.faces.length === 0 ? AnalysisStatus.NO_FACE : AnalysisStatus.COMPLETED;
        const out = await explanationStage(deps).handle(create(ForgeryLocalizedSchema, { meta, faces: req.faces, verdict: req.verdict, status }));
        return create(ExplainResponseSchema, { explanation: out.analysis?.explanation });
      }),
    },
  };
}
