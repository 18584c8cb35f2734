// Loads the configured localizer (TAMPERTRACE_LOCALIZER_MODEL) from the manifest, sha256-checked.
import { findModel, readManifest, type Config, type ManifestEntry } from '@tampertrace/shared';
import { Localizer } from './localize.ts';
import { batchedForgeryModel, loadForgeryModel, type ForgeryModel } from './model.ts';

export async function localizerEntry(cfg: Config): Promise<ManifestEntry> {
  return findModel(await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST), cfg.TAMPERTRACE_LOCALIZER_MODEL);
}

export async function loadLocalizer(cfg: Config): Promise<{ model: ForgeryModel; entry: ManifestEntry; localizer: Localizer }> {
  const manifest = await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST);
  const entry = findModel(manifest, cfg.TAMPERTRACE_LOCALIZER_MODEL);
  const model = batchedForgeryModel(
    await loadForgeryModel(manifest.root, entry, {
      executionProviders: cfg.TAMPERTRACE_EXECUTION_PROVIDERS,
      intraOpNumThreads: cfg.TAMPERTRACE_ORT_THREADS || undefined,
    }),
    { maxBatchSize: cfg.TAMPERTRACE_BATCH_MAX_SIZE, maxWaitMs: cfg.TAMPERTRACE_BATCH_MAX_WAIT_MS, maxQueue: cfg.TAMPERTRACE_BATCH_MAX_QUEUE },
  );
  const localizer = new Localizer(model, { pixel: entry.pixelThreshold!, band: entry.uncertainBand!, faceTopFraction: entry.faceTopFraction }, entry.cropScale);
  return { model, entry, localizer };
}
