// forgery-localization service: consumes faces.detected, publishes forgery.localized (distributed mode).
import { Bucket, connectBusAndStore, createLogger, limitsOf, loadConfig, runStage, runUntilSignal } from '@tampertrace/shared';
import { loadLocalizer } from './load.ts';
import { FORGERY_LOCALIZATION, forgeryLocalizationStage } from './stage.ts';

const cfg = loadConfig();
const log = createLogger(FORGERY_LOCALIZATION);
const [{ model, entry, localizer }, { bus, store }] = await Promise.all([loadLocalizer(cfg), connectBusAndStore(cfg, log, FORGERY_LOCALIZATION)]);
await store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
const sub = await runStage(bus, forgeryLocalizationStage({ store, localizer, model: entry, limits: limitsOf(cfg) }), {
  concurrency: cfg.TAMPERTRACE_STAGE_CONCURRENCY,
  maxAttempts: cfg.TAMPERTRACE_MAX_ATTEMPTS,
  log,
});
log.info('ready');
await runUntilSignal(log, async () => {
  await sub.stop();
  await bus.close();
  await model.close();
}, cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS);
