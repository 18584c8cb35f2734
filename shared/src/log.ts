// One JSON logger (pino) for every service. Never log payloads, image bytes or secrets.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(service: string, level = process.env.TAMPERTRACE_LOG_LEVEL ?? 'info'): Logger {
  // stderr, so that CLI output on stdout stays clean.
  return pino({ name: service, level, base: { service } }, pino.destination(2));
}
