// The forgery-localization stage: per-face forgery maps, region scores, full-image mask,
// heatmap in object storage, and the image-level verdict.
import { create } from '@bufbuild/protobuf';
import { Bucket, ObjectKey, decodeFaceCrops, encodeGreyPng, loadOriginal, nextMeta, stageWiring, type DecodedImageCache, type ImageLimits, type ObjectStore, type StageDefinition, ConsumerGroup } from '@tampertrace/shared';
import type { ObjectRef } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ArtifactsSchema, FaceQuality, FaceSchema, ManipulationScoreSchema, RegionCuesSchema, RegionScoreSchema } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, BoxSchema, HeadPoseSchema, ManipulationType, ModelRefSchema, PointSchema, PolygonSchema, Stage, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { FacesDetectedSchema, ForgeryLocalizedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { rgbToChw, type FaceInput, type LocalizationResult, type Localizer } from './localize.ts';

export const FORGERY_LOCALIZATION = ConsumerGroup.forgeryLocalization;

export function forgeryLocalizationStage(deps: {
  store: ObjectStore;
  localizer: Localizer;
  model: { name: string; version: string; sha256: string };
  limits: ImageLimits;
  decoded?: DecodedImageCache;
}): StageDefinition<typeof FacesDetectedSchema, typeof ForgeryLocalizedSchema> {
  return {
    ...stageWiring('forgery-localization', FacesDetectedSchema, ForgeryLocalizedSchema),
    async handle(event) {
      const meta = nextMeta(event.meta!, Stage.FORGERY_LOCALIZATION, FORGERY_LOCALIZATION);
      const models = event.faces.length === 0 ? event.models : [...event.models, create(ModelRefSchema, deps.model)];
      const faces: FaceInput[] = event.faces.map((f) => ({
        box: f.box!,
        score: f.score,
        keypoints: f.keypoints,
        ...(f.landmarks.length > 0 ? { landmarks: f.landmarks, landmarkPresence: f.landmarkPresence, headPose: f.headPose } : {}),
      }));
      // The detection stage's crops spare a second fetch and full decode of the original (with no
      // face, only the image's size is needed); without them, or if they were cut for another
      // crop size, the crops are cut here from the original, with the same result.
      const sized = Boolean(event.image?.width && event.image.height);
      const crops =
        faces.length === 0 && sized ? [] : event.faceCrops?.key && sized ? await storedCrops(deps.store, event.faceCrops, deps.localizer, faces) : undefined;
      let img: { width: number; height: number };
      let result: LocalizationResult;
      if (crops) {
        img = { width: event.image!.width, height: event.image!.height };
        result = await deps.localizer.localizeCrops(img, faces, crops);
      } else {
        const rgb = await loadOriginal(deps.store, event.original!, deps.limits, deps.decoded);
        img = rgb;
        result = await deps.localizer.localize(rgb, faces);
      }
      const { tenantId, analysisId } = meta;
      // No overlay here: it is for people and costs more than the rest of the stage at 1080p,
      // so it is rendered when someone asks for it (see overlay.ts).
      const [mask, heatmap] = await Promise.all([
        encodeGreyPng(result.mask, img.width, img.height).then((png) =>
          deps.store.put(Bucket.artifacts, ObjectKey.artifact(tenantId, analysisId, 'mask.png'), png, 'image/png'),
        ),
        encodeGreyPng(result.heat, img.width, img.height).then((png) =>
          deps.store.put(Bucket.artifacts, ObjectKey.artifact(tenantId, analysisId, 'heatmap.png'), png, 'image/png'),
        ),
      ]);
      return create(ForgeryLocalizedSchema, {
        meta,
        image: event.image,
        // With no face the artefacts still exist (an empty mask, the plain image), so consumers need no special case.
        status: event.faces.length === 0 ? AnalysisStatus.NO_FACE : AnalysisStatus.COMPLETED,
        provenance: event.provenance,
        verdict: result.verdict ? Verdict[result.verdict] : Verdict.UNSPECIFIED,
        artifacts: create(ArtifactsSchema, { original: event.original, mask, heatmap }),
        models,
        faces: result.faces.map((f, index) =>
          create(FaceSchema, {
            index,
            box: create(BoxSchema, f.box),
            detectionScore: f.score,
            keypoints: f.keypoints.map((k) => create(PointSchema, { x: k.x, y: k.y })),
            forgeryScore: f.forgeryScore,
            maskedFraction: f.maskedFraction,
            // The detection stage's geometry, copied: the analysis is what readers see.
            landmarks: (f.landmarks ?? []).map((k) => create(PointSchema, { x: k.x, y: k.y })),
            headPose: f.headPose && create(HeadPoseSchema, f.headPose),
            landmarkPresence: f.landmarkPresence ?? 0,
            quality: FaceQuality[f.quality],
            regions: f.regions.map((r) =>
              create(RegionScoreSchema, {
                name: r.name,
                score: r.score,
                coverage: r.coverage,
                cues: create(RegionCuesSchema, r.cues),
                polygons: (r.polygons ?? []).map((p) => create(PolygonSchema, { hole: p.hole, points: p.points.map((q) => create(PointSchema, { x: q.x, y: q.y })) })),
              }),
            ),
            // Kinds were checked against the enum when the model was loaded (checkLocalizerEntry).
            manipulations: f.manipulations.map((m) => create(ManipulationScoreSchema, { type: ManipulationType[m.type as keyof typeof ManipulationType], probability: m.probability })),
            manipulationThreshold: f.manipulations.length ? result.typeThreshold : 0,
          }),
        ),
      });
    },
  };
}

/** The stored crops as model input, or undefined when they are not the ones this localizer would cut. */
async function storedCrops(store: ObjectStore, ref: ObjectRef, localizer: Localizer, faces: FaceInput[]): Promise<Float32Array[] | undefined> {
  const stored = decodeFaceCrops(await store.get(ref.bucket, ref.key));
  const { size } = localizer.cropSpec;
  const rects = localizer.cropRects(faces);
  const same = stored.size === size && stored.rects.length === rects.length && stored.rects.every((r, i) => r.x === rects[i].x && r.y === rects[i].y && r.size === rects[i].size);
  return same ? stored.rgb.map((rgb) => rgbToChw(rgb, size)) : undefined;
}
