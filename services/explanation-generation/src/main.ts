// explanation-generation service: consumes forgery.localized, publishes analysis.completed
// (distributed mode), and serves ExplanationService.Explain over gRPC with the same stage.
import { connectBusAndStore, createGrpcServer, createLogger, limitsOf, loadConfig, localizerEntry, serveStage } from '@tampertrace/shared';
import { createExplainer } from './explainers.ts';
import { explanationGrpc } from './grpc.ts';
import { EXPLANATION, explanationStage } from './stage.ts';

const cfg = loadConfig();
const log = createLogger(EXPLANATION);
// Cue levels and the type threshold are in the localizer's units: they come with its manifest entry.
const [entry, { bus, store }] = await Promise.all([localizerEntry(cfg), connectBusAndStore(cfg, log, EXPLANATION)]);
const explainer = createExplainer(cfg, entry, log);
const api = createGrpcServer(cfg, [explanationGrpc({ explainer }, cfg, log)], log);
await serveStage(cfg, log, { bus, store }, explanationStage({ explainer, store, presignTtlS: cfg.TAMPERTRACE_PRESIGN_TTL_S, limits: limitsOf(cfg) }), api);
