// Which explainer a process runs, from config: the template, or a vision-language model in front
// of it (the template writes whatever the model does not).
import { type Config, type Logger, type ManifestEntry } from '@tampertrace/shared';
import { explainerOptions, TemplateExplainer, type Explainer } from './explainer.ts';
import { VlmExplainer } from './vlm.ts';

/** Cue levels and typeThreshold come with the localizer's manifest entry: they are in its units. */
export function createExplainer(cfg: Config, localizer: ManifestEntry | undefined, log?: Logger): Explainer {
  const template = new TemplateExplainer(explainerOptions(localizer));
  if (cfg.TAMPERTRACE_EXPLAINER !== 'openai') return template;
  return new VlmExplainer(
    {
      url: cfg.TAMPERTRACE_EXPLAINER_URL,
      model: cfg.TAMPERTRACE_EXPLAINER_MODEL,
      apiKey: cfg.TAMPERTRACE_EXPLAINER_API_KEY || undefined,
      timeoutMs: cfg.TAMPERTRACE_EXPLAINER_TIMEOUT_MS,
      maxConcurrency: cfg.TAMPERTRACE_EXPLAINER_MAX_CONCURRENCY,
      breakerFailures: cfg.TAMPERTRACE_EXPLAINER_BREAKER_FAILURES,
      breakerResetMs: cfg.TAMPERTRACE_EXPLAINER_BREAKER_RESET_MS,
      responseFormat: cfg.TAMPERTRACE_EXPLAINER_RESPONSE_FORMAT,
    },
    template,
    log,
  );
}
