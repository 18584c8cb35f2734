// forgery-localization service: consumes faces.detected, publishes forgery.localized (distributed
// mode), and serves ForgeryLocalizationService.Localize over gRPC with the same stage.
import { Bucket, connectBusAndStore, createGrpcServer, createLogger, limitsOf, loadConfig, serveStage } from '@tampertrace/shared';
import { forgeryLocalizationGrpc } from './grpc.ts';
import { loadLocalizer } from './load.ts';
import { FORGERY_LOCALIZATION, forgeryLocalizationStage } from './stage.ts';

const cfg = loadConfig();
const log = createLogger(FORGERY_LOCALIZATION);
const limits = limitsOf(cfg);
const [{ model, entry, localizer }, { bus, store }] = await Promise.all([loadLocalizer(cfg), connectBusAndStore(cfg, log, FORGERY_LOCALIZATION)]);
await store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
const api = createGrpcServer(cfg, [forgeryLocalizationGrpc({ localizer, model: entry, limits }, cfg, log)], log);
await serveStage(cfg, log, { bus, store }, forgeryLocalizationStage({ store, localizer, model: entry, limits }), api, () => model.close());
