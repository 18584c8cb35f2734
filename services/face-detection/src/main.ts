// face-detection service: consumes image.ingested, publishes faces.detected (distributed mode).
import { Bucket, connectBusAndStore, createLogger, limitsOf, loadConfig, runStage, runUntilSignal } from '@tampertrace/shared';
import { loadDetector } from './load.ts';
import { FACE_DETECTION, faceDetectionStage } from './stage.ts';

const cfg = loadConfig();
const log = createLogger(FACE_DETECTION);
const [detector, { bus, store }] = await Promise.all([loadDetector(cfg), connectBusAndStore(cfg, log, FACE_DETECTION)]);
await store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
const sub = await runStage(bus, faceDetectionStage({ store, detector, limits: limitsOf(cfg) }), { concurrency: cfg.TAMPERTRACE_STAGE_CONCURRENCY, maxAttempts: cfg.TAMPERTRACE_MAX_ATTEMPTS, log });
log.info('ready');
await runUntilSignal(log, async () => {
  await sub.stop();
  await bus.close();
  await detector.close();
}, cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS);
