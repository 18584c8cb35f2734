// ForgeryLocalizationService over gRPC (protos/tampertrace/v1/stages.proto): the localization
// stage's own handler, run on one image and its faces sent inline; the mask and heatmap it
// stores go into the call's private store and come back in the response.
import { create } from '@bufbuild/protobuf';
import { CallLimit, InvalidInputError, stageCall, unaryHandler, type Config, type GrpcServiceImpl, type ImageLimits, type Logger } from '@tampertrace/shared';
import { ErrorCode, type ImageInfo } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { FacesDetectedSchema, type DetectedFace } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { ForgeryLocalizationService, LocalizeResponseSchema, type LocalizeRequest } from '@tampertrace/shared/gen/tampertrace/v1/stages_pb';
import type { Localizer } from './localize.ts';
import { forgeryLocalizationStage } from './stage.ts';

/** Each face costs a model run and a crop: a bound on what one call may ask for. */
export const MAX_FACES_PER_CALL = 64;

/**
 * Faces a client sends are checked before they reach the localizer: in the stream they come from
 * the detector and are sound by construction; here a box could be empty, NaN, or large enough
 * to make the padded crop an allocation bomb.
 */
export function checkFaces(faces: readonly DetectedFace[], image: ImageInfo): void {
  const bad = (msg: string) => new InvalidInputError(ErrorCode.INVALID_MESSAGE, msg);
  if (faces.length > MAX_FACES_PER_CALL) throw bad(`${faces.length} faces; at most ${MAX_FACES_PER_CALL} per call`);
  const longest = Math.max(image.width, image.height);
  faces.forEach((f, i) => {
    const b = f.box;
    if (!b) throw bad(`faces[${i}] has no box`);
    if (![b.x, b.y, b.width, b.height, f.score].every(Number.isFinite) || b.width <= 0 || b.height <= 0) throw bad(`faces[${i}].box must be finite with a positive width and height`);
    if (b.x >= image.width || b.y >= image.height || b.x + b.width <= 0 || b.y + b.height <= 0) throw bad(`faces[${i}].box lies outside the ${image.width}x${image.height} image`);
    if (Math.max(b.width, b.height) > 2 * longest) throw bad(`faces[${i}].box is more than twice the image's longer side`);
    if (f.keypoints.length > 6) throw bad(`faces[${i}] has ${f.keypoints.length} keypoints; at most 6 (MediaPipe order)`);
  });
}

export function forgeryLocalizationGrpc(
  deps: { localizer: Localizer; model: { name: string; version: string; sha256: string }; limits: ImageLimits },
  cfg: Config,
  log: Logger,
): GrpcServiceImpl {
  // The stream has its own TAMPERTRACE_STAGE_CONCURRENCY; synchronous calls get as many again.
  const slots = new CallLimit(cfg.TAMPERTRACE_STAGE_CONCURRENCY);
  return {
    service: ForgeryLocalizationService,
    impl: {
      localize: unaryHandler(log, async (req: LocalizeRequest, signal) => {
        const call = await stageCall(cfg, req.content);
        checkFaces(req.faces, call.image!);
        const out = await slots.run(signal, () =>
          forgeryLocalizationStage({ ...deps, store: call.store }).handle(
            create(FacesDetectedSchema, { meta: call.meta, original: call.original, image: call.image, faces: req.faces }),
          ),
        );
        const { mask, heatmap } = out.artifacts!;
        const [maskPng, heatmapPng] = await Promise.all([call.store.get(mask!.bucket, mask!.key), call.store.get(heatmap!.bucket, heatmap!.key)]);
        // No detector models came in, so the localizer is the only model, present when it ran.
        return create(LocalizeResponseSchema, { faces: out.faces, verdict: out.verdict, maskPng, heatmapPng, model: out.models[0] });
      }),
    },
  };
}
