// The face-detection stage: fetch the original, decode it (EXIF-oriented), find every face.
import { create } from '@bufbuild/protobuf';
import { Topic, loadOriginal, nextMeta, type DecodedImageCache, type ImageLimits, type ObjectStore, type RgbImage, type StageDefinition, ConsumerGroup } from '@tampertrace/shared';
import { BoxSchema, ModelRefSchema, PointSchema, Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { DetectedFaceSchema, FacesDetectedSchema, ImageIngestedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import type { FaceDetection } from './blazeface.ts';

export const FACE_DETECTION = ConsumerGroup.faceDetection;

/** What the stage needs from a detector; BlazeFaceDetector is the real one. */
export interface FaceDetector {
  detect(img: RgbImage): Promise<FaceDetection[]>;
  readonly models: ReadonlyArray<{ name: string; version: string; sha256: string }>;
}

export function faceDetectionStage(deps: { store: ObjectStore; detector: FaceDetector; limits: ImageLimits; decoded?: DecodedImageCache }): StageDefinition<typeof ImageIngestedSchema, typeof FacesDetectedSchema> {
  return {
    name: FACE_DETECTION,
    stage: Stage.FACE_DETECTION,
    input: { topic: Topic.imageIngested, schema: ImageIngestedSchema },
    output: { topic: Topic.facesDetected, schema: FacesDetectedSchema },
    async handle(event) {
      const rgb = await loadOriginal(deps.store, event.original!, deps.limits, deps.decoded);
      const faces = await deps.detector.detect(rgb);
      return create(FacesDetectedSchema, {
        meta: nextMeta(event.meta!, Stage.FACE_DETECTION, FACE_DETECTION),
        original: event.original,
        image: { ...event.image!, width: rgb.width, height: rgb.height },
        faces: faces.map((f) =>
          create(DetectedFaceSchema, {
            box: create(BoxSchema, f.box),
            score: f.score,
            keypoints: f.keypoints.map((k) => create(PointSchema, k)),
          }),
        ),
        models: deps.detector.models.map((m) => create(ModelRefSchema, m)),
      });
    },
  };
}
