// face-detection service: consumes image.ingested, publishes faces.detected (distributed mode),
// and serves FaceDetectionService.Detect over gRPC with the same stage.
import { Bucket, connectBusAndStore, createGrpcServer, createLogger, limitsOf, loadConfig, serveStage } from '@tampertrace/shared';
import { faceDetectionGrpc } from './grpc.ts';
import { loadDetector, localizerCropSpec } from './load.ts';
import { FACE_DETECTION, faceDetectionStage } from './stage.ts';

const cfg = loadConfig();
const log = createLogger(FACE_DETECTION);
const limits = limitsOf(cfg);
const [detector, faceCrops, { bus, store }] = await Promise.all([loadDetector(cfg), localizerCropSpec(cfg), connectBusAndStore(cfg, log, FACE_DETECTION)]);
await store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
const api = createGrpcServer(cfg, [faceDetectionGrpc({ detector, limits }, cfg, log)], log);
await serveStage(cfg, log, { bus, store }, faceDetectionStage({ store, detector, limits, faceCrops }), api, () => detector.close());
