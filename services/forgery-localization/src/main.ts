// forgery-localization service: consumes faces.detected, publishes forgery.localized (distributed mode).
import { Bucket, connectBusAndStore, createLogger, limitsOf, loadConfig, serveStage } from '@tampertrace/shared';
import { loadLocalizer } from './load.ts';
import { FORGERY_LOCALIZATION, forgeryLocalizationStage } from './stage.ts';

const cfg = loadConfig();
const log = createLogger(FORGERY_LOCALIZATION);
const [{ model, entry, localizer }, { bus, store }] = await Promise.all([loadLocalizer(cfg), connectBusAndStore(cfg, log, FORGERY_LOCALIZATION)]);
await store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
await serveStage(cfg, log, bus, forgeryLocalizationStage({ store, localizer, model: entry, limits: limitsOf(cfg) }), () => model.close());
