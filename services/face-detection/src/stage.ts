// The face-detection stage: fetch the original, decode it (EXIF-oriented), find every face.
import { create } from '@bufbuild/protobuf';
import {
  Bucket,
  ObjectKey,
  cropRectFor,
  cutFaceCrop,
  encodeFaceCrops,
  loadOriginal,
  nextMeta,
  type DecodedImageCache,
  type FaceCropSpec,
  type ImageLimits,
  type ObjectStore,
  type RgbImage,
  type StageDefinition,
  ConsumerGroup,
  stageWiring,
} from '@tampertrace/shared';
import type { ObjectRef } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { BoxSchema, HeadPoseSchema, ModelRefSchema, PointSchema, Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { DetectedFaceSchema, FacesDetectedSchema, ProvenanceCheckedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import type { FaceDetection } from './blazeface.ts';
import type { FaceGeometry } from './landmarks.ts';

export const FACE_DETECTION = ConsumerGroup.faceDetection;

/** What the stage needs from a detector; BlazeFaceDetector is the real one. */
export interface FaceDetector {
  /** Faces with their geometry when the landmark models ran (DetectorWithGeometry). */
  detect(img: RgbImage): Promise<Array<FaceDetection & { geometry?: FaceGeometry }>>;
  readonly models: ReadonlyArray<{ name: string; version: string; sha256: string }>;
}

/**
 * faceCrops: the localizer's crop spec; with it, the stage also stores every face's crop for the
 * localization stage (FacesDetected.face_crops), so that the original is decoded once per analysis.
 */
export function faceDetectionStage(deps: {
  store: ObjectStore;
  detector: FaceDetector;
  limits: ImageLimits;
  decoded?: DecodedImageCache;
  faceCrops?: FaceCropSpec;
}): StageDefinition<typeof ProvenanceCheckedSchema, typeof FacesDetectedSchema> {
  return {
    ...stageWiring('face-detection', ProvenanceCheckedSchema, FacesDetectedSchema),
    async handle(event) {
      const rgb = await loadOriginal(deps.store, event.original!, deps.limits, deps.decoded);
      const faces = await deps.detector.detect(rgb);
      const meta = nextMeta(event.meta!, Stage.FACE_DETECTION, FACE_DETECTION);
      const faceCrops = deps.faceCrops && faces.length > 0 ? await storeFaceCrops(deps.store, meta, rgb, faces, deps.faceCrops) : undefined;
      return create(FacesDetectedSchema, {
        meta,
        faceCrops,
        original: event.original,
        image: { ...event.image!, width: rgb.width, height: rgb.height },
        provenance: event.provenance,
        faces: faces.map((f) =>
          create(DetectedFaceSchema, {
            box: create(BoxSchema, f.box),
            score: f.score,
            keypoints: f.keypoints.map((k) => create(PointSchema, k)),
            landmarks: f.geometry?.landmarks.map((k) => create(PointSchema, k)) ?? [],
            headPose: f.geometry && create(HeadPoseSchema, f.geometry.headPose),
            landmarkPresence: f.geometry?.presence ?? 0,
          }),
        ),
        models: deps.detector.models.map((m) => create(ModelRefSchema, m)),
      });
    },
  };
}

async function storeFaceCrops(store: ObjectStore, meta: { tenantId: string; analysisId: string }, rgb: RgbImage, faces: FaceDetection[], spec: FaceCropSpec): Promise<ObjectRef> {
  // Boxes travel as float32: cut at the box the localization stage will read, or its crop
  // rectangle could differ by a pixel and the crops would not be used.
  const rects = faces.map((f) =>
    cropRectFor({ x: Math.fround(f.box.x), y: Math.fround(f.box.y), width: Math.fround(f.box.width), height: Math.fround(f.box.height) }, spec.scale),
  );
  const crops = await Promise.all(rects.map((r) => cutFaceCrop(rgb, r, spec.size)));
  const bytes = encodeFaceCrops({ size: spec.size, rects, rgb: crops });
  return store.put(Bucket.artifacts, ObjectKey.artifact(meta.tenantId, meta.analysisId, 'face-crops.bin'), bytes, 'application/octet-stream');
}
