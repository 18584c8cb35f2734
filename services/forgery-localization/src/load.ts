// Loads the configured localizer (TAMPERTRACE_LOCALIZER_MODEL) from the manifest, sha256-checked.
import { findModel, readManifest, type Config, type ManifestEntry } from '@tampertrace/shared';
import { Localizer } from './localize.ts';
import { OnnxPool } from '@tampertrace/shared/onnx-pool';
import { batchedForgeryModel, loadForgeryModel, type ForgeryModel } from './model.ts';

export async function loadLocalizer(cfg: Config): Promise<{ model: ForgeryModel; entry: ManifestEntry; localizer: Localizer }> {
  const manifest = await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST);
  const entry = findModel(manifest, cfg.TAMPERTRACE_LOCALIZER_MODEL);
  const workers = cfg.TAMPERTRACE_ORT_WORKERS;
  const pool = workers > 0 ? new OnnxPool(workers) : undefined;
  const loaded = await loadForgeryModel(manifest.root, entry, {
    executionProviders: cfg.TAMPERTRACE_EXECUTION_PROVIDERS,
    // In the pool the workers are the parallelism: one thread each unless told otherwise
    // (outputs do not depend on the thread count; checked in model.test.ts).
    intraOpNumThreads: cfg.TAMPERTRACE_ORT_THREADS || (pool ? 1 : undefined),
    pool,
  }).catch(async (err) => {
    await pool?.close();
    throw err;
  });
  const unbatched: ForgeryModel = pool ? { ...loaded, close: async () => (await loaded.close(), await pool.close()) } : loaded;
  const model = batchedForgeryModel(unbatched, {
    maxBatchSize: cfg.TAMPERTRACE_BATCH_MAX_SIZE,
    maxWaitMs: cfg.TAMPERTRACE_BATCH_MAX_WAIT_MS,
    maxQueue: cfg.TAMPERTRACE_BATCH_MAX_QUEUE,
    // A run per worker at once, so that every worker has work.
    maxConcurrentRuns: Math.max(1, workers),
  });
  const localizer = new Localizer(model, { pixel: entry.pixelThreshold!, band: entry.uncertainBand!, faceTopFraction: entry.faceTopFraction, type: entry.typeThreshold }, entry.cropScale);
  return { model, entry, localizer };
}
