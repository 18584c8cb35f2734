// Loads the BlazeFace models named in the manifest, each checked against its sha256: the copies
// with a dynamic batch dimension (derived from the pinned originals, same outputs bit for bit),
// so that tiles share session runs.
import path from 'node:path';
import { findModel, loadVerifiedModel, readManifest, type Config, type FaceCropSpec } from '@tampertrace/shared';
import { BlazeFaceDetector } from './blazeface.ts';
import { DetectorWithGeometry, FaceLandmarker } from './landmarks.ts';

/** BlazeFace with the face-mesh and iris models on its faces (each model sha256-checked). */
export async function loadDetector(cfg: Config): Promise<DetectorWithGeometry> {
  const manifest = await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST);
  const mesh = findModel(manifest, 'mediapipe-face-landmark-468');
  const iris = findModel(manifest, 'mediapipe-iris-landmark');
  await Promise.all([loadVerifiedModel(manifest.root, mesh), loadVerifiedModel(manifest.root, iris)]);
  const [detector, landmarker] = await Promise.all([
    loadFaceBoxes(cfg),
    FaceLandmarker.load({
      meshModelPath: path.resolve(manifest.root, mesh.path),
      irisModelPath: path.resolve(manifest.root, iris.path),
      meshModel: mesh,
      irisModel: iris,
      executionProviders: cfg.TAMPERTRACE_EXECUTION_PROVIDERS,
      intraOpNumThreads: cfg.TAMPERTRACE_ORT_THREADS || undefined,
      worker: cfg.TAMPERTRACE_ORT_WORKERS > 0,
    }),
  ]);
  return new DetectorWithGeometry(detector, landmarker);
}

/** BlazeFace alone (boxes and six keypoints). */
export async function loadFaceBoxes(cfg: Config): Promise<BlazeFaceDetector> {
  const manifest = await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST);
  const front = findModel(manifest, 'blazeface-front-128-batch-n');
  const back = findModel(manifest, 'blazeface-back-256-batch-n');
  await Promise.all([loadVerifiedModel(manifest.root, front), loadVerifiedModel(manifest.root, back)]);
  return BlazeFaceDetector.load({
    frontModelPath: path.resolve(manifest.root, front.path),
    backModelPath: path.resolve(manifest.root, back.path),
    minScore: cfg.TAMPERTRACE_MIN_FACE_SCORE,
    executionProviders: cfg.TAMPERTRACE_EXECUTION_PROVIDERS,
    intraOpNumThreads: cfg.TAMPERTRACE_ORT_THREADS || undefined,
    // Off the event loop with the localizer's sessions (TAMPERTRACE_ORT_WORKERS), in its own worker.
    worker: cfg.TAMPERTRACE_ORT_WORKERS > 0,
    maxBatch: cfg.TAMPERTRACE_DETECTOR_BATCH_MAX_SIZE,
  });
}

/** The crops the configured localizer takes, which the stage cuts for it (face-crops.ts). */
export async function localizerCropSpec(cfg: Config): Promise<FaceCropSpec> {
  const entry = findModel(await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST), cfg.TAMPERTRACE_LOCALIZER_MODEL);
  // 1.5 is the Localizer's default when the manifest names no crop scale.
  return { scale: entry.cropScale ?? 1.5, size: entry.inputSize };
}
