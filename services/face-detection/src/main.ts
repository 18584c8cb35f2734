// face-detection service: consumes image.ingested, publishes faces.detected (distributed mode).
import { Bucket, connectBusAndStore, createLogger, limitsOf, loadConfig, serveStage } from '@tampertrace/shared';
import { loadDetector } from './load.ts';
import { FACE_DETECTION, faceDetectionStage } from './stage.ts';

const cfg = loadConfig();
const log = createLogger(FACE_DETECTION);
const [detector, { bus, store }] = await Promise.all([loadDetector(cfg), connectBusAndStore(cfg, log, FACE_DETECTION)]);
await store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
await serveStage(cfg, log, bus, faceDetectionStage({ store, detector, limits: limitsOf(cfg) }), () => detector.close());
