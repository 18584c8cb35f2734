// FaceDetectionService over gRPC (protos/tampertrace/v1/stages.proto): the face-detection stage's
// own handler, run on one image sent inline instead of one taken from the topic.
import { create } from '@bufbuild/protobuf';
import { CallLimit, stageCall, unaryHandler, type Config, type GrpcServiceImpl, type ImageLimits, type Logger } from '@tampertrace/shared';
import { ProvenanceCheckedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { DetectResponseSchema, FaceDetectionService, type DetectRequest } from '@tampertrace/shared/gen/tampertrace/v1/stages_pb';
import { faceDetectionStage, type FaceDetector } from './stage.ts';

export function faceDetectionGrpc(deps: { detector: FaceDetector; limits: ImageLimits }, cfg: Config, log: Logger): GrpcServiceImpl {
  // The stream has its own TAMPERTRACE_STAGE_CONCURRENCY; synchronous calls get as many again.
  const slots = new CallLimit(cfg.TAMPERTRACE_STAGE_CONCURRENCY);
  return {
    service: FaceDetectionService,
    impl: {
      detect: unaryHandler(log, async (req: DetectRequest, signal) => {
        const call = await stageCall(cfg, req.content);
        const out = await slots.run(signal, () =>
          faceDetectionStage({ ...deps, store: call.store }).handle(create(ProvenanceCheckedSchema, { meta: call.meta, original: call.original, image: call.image })),
        );
        return create(DetectResponseSchema, { image: out.image, faces: out.faces, models: out.models });
      }),
    },
  };
}
