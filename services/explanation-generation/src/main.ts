// explanation-generation service: consumes forgery.localized, publishes analysis.completed
// (distributed mode), and serves ExplanationService.Explain over gRPC with the same stage.
import { connectBusAndStore, createGrpcServer, createLogger, loadConfig, serveStage } from '@tampertrace/shared';
import { localizerEntry } from '@tampertrace/shared';
import { TemplateExplainer } from './explainer.ts';
import { explanationGrpc } from './grpc.ts';
import { EXPLANATION, explanationStage } from './stage.ts';

const cfg = loadConfig();
const log = createLogger(EXPLANATION);
// Cue thresholds are in the localizer's units, so they come with the localizer's manifest entry.
const [entry, { bus, store }] = await Promise.all([localizerEntry(cfg), connectBusAndStore(cfg, log, EXPLANATION)]);
const explainer = new TemplateExplainer(entry.cueThresholds);
const api = createGrpcServer(cfg, [explanationGrpc({ explainer }, cfg, log)]);
await serveStage(cfg, log, { bus, store }, explanationStage({ explainer, store, presignTtlS: cfg.TAMPERTRACE_PRESIGN_TTL_S }), api);
