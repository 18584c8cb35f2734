// One JSON logger (pino) for every service. Never log payloads, image bytes or secrets.
// Every line written inside a traced request or message carries its trace_id and span_id, so a
// log search by trace id finds what each service said about one analysis.
import { pino, type Logger } from 'pino';
import { activeTraceIds } from './telemetry.ts';

export type { Logger };

/** Adds the active span's ids to a log line (pino mixin). */
export function traceMixin(): Record<string, string> {
  const ids = activeTraceIds();
  return ids ? { trace_id: ids.traceId, span_id: ids.spanId } : {};
}

export function createLogger(service: string, level = process.env.TAMPERTRACE_LOG_LEVEL ?? 'info'): Logger {
  // stderr, so that CLI output on stdout stays clean.
  return pino(
    {
      name: service,
      level,
      base: { service },
      mixin: traceMixin,
    },
    pino.destination(2),
  );
}
