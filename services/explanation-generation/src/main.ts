// explanation-generation service: consumes forgery.localized, publishes analysis.completed (distributed mode).
import { connectBusAndStore, createLogger, loadConfig, runStage, runUntilSignal } from '@tampertrace/shared';
import { localizerEntry } from '@tampertrace/forgery-localization/load';
import { TemplateExplainer } from './explainer.ts';
import { EXPLANATION, explanationStage } from './stage.ts';

const cfg = loadConfig();
const log = createLogger(EXPLANATION);
// Cue thresholds are in the localizer's units, so they come with the localizer's manifest entry.
const [entry, { bus }] = await Promise.all([localizerEntry(cfg), connectBusAndStore(cfg, log, EXPLANATION)]);
const sub = await runStage(bus, explanationStage({ explainer: new TemplateExplainer(entry.cueThresholds) }), {
  concurrency: cfg.TAMPERTRACE_STAGE_CONCURRENCY,
  maxAttempts: cfg.TAMPERTRACE_MAX_ATTEMPTS,
  log,
});
log.info('ready');
await runUntilSignal(log, async () => {
  await sub.stop();
  await bus.close();
}, cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS);
