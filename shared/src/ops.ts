// The operations side of every service process: readiness that checks what the process needs
// (its own start-up, then Kafka, S3 and PostgreSQL answering), liveness, and the HTTP endpoint
// Kubernetes probes and Prometheus scrape (GET /metrics, /livez, /readyz). The same readiness
// drives the gRPC health service, so a gRPC probe and an HTTP probe never disagree.
import http from 'node:http';
import type { Config } from './config.ts';
import type { ServiceHealth } from './health.ts';
import type { Logger } from './log.ts';
import { collectProcessMetrics, METRICS_CONTENT_TYPE, scrape } from './metrics.ts';
import { withTimeout } from './timeout.ts';

/** A dependency the process cannot work without; `check` throws (or times out) when it is down. */
export interface DependencyCheck {
  name: 'kafka' | 's3' | 'object-store' | 'postgresql' | (string & {});
  check(): Promise<void>;
}

export interface ReadinessReport {
  ready: boolean;
  /** "starting", "stopping" or "ok"; then one entry per dependency: "ok" or why not. */
  checks: Record<string, string>;
}

const CHECK_TIMEOUT_MS = 3000;

/**
 * NOT ready while starting (models loading, consumer not yet in its group), while stopping, and
 * while a dependency does not answer; checked every `intervalMs` and on every /readyz.
 */
export class Readiness {
  private phase: 'starting' | 'running' | 'stopping' = 'starting';
  private last: ReadinessReport = { ready: false, checks: { process: 'starting' } };
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly checks: DependencyCheck[],
    private readonly health: ServiceHealth | undefined,
    private readonly log: Logger,
    /** Why the process can no longer work at all (liveness fails), if so. */
    readonly fatal: () => string | undefined = () => undefined,
  ) {}

  /** Start-up is complete (models loaded, consumers joined): dependency checks decide from now on. */
  async started(intervalMs: number): Promise<void> {
    if (this.phase !== 'starting') return;
    this.phase = 'running';
    await this.evaluate();
    this.timer = setInterval(() => void this.evaluate(), intervalMs);
    this.timer.unref();
  }

  /** Stopping: not ready at once, for good. */
  stopping(): void {
    this.phase = 'stopping';
    clearInterval(this.timer);
    this.last = { ready: false, checks: { process: 'stopping' } };
    this.health?.notServing();
  }

  get report(): ReadinessReport {
    return this.last;
  }

  async evaluate(): Promise<ReadinessReport> {
    if (this.phase !== 'running') return this.last;
    const results = await Promise.all(
      this.checks.map(async (c) => {
        try {
          await withTimeout(c.check(), CHECK_TIMEOUT_MS, `${c.name}: no answer within ${CHECK_TIMEOUT_MS} ms`);
          return [c.name, 'ok'] as const;
        } catch (err) {
          return [c.name, err instanceof Error ? err.message.slice(0, 200) : String(err)] as const;
        }
      }),
    );
    if (this.phase !== 'running') return this.last; // stopped while checking
    const checks: Record<string, string> = { process: 'ok', ...Object.fromEntries(results) };
    const ready = results.every(([, r]) => r === 'ok');
    if (ready !== this.last.ready) {
      if (ready) this.log.info({ checks }, 'ready');
      else this.log.warn({ checks }, 'not ready: a dependency does not answer');
    }
    this.last = { ready, checks };
    if (ready) this.health?.serving();
    else this.health?.notServing();
    return this.last;
  }
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * GET /metrics: Prometheus text format. GET /livez: 200 while the event loop answers and nothing
 * fatal happened (else 503, and Kubernetes restarts the pod). GET /readyz: 200 or 503 with the
 * readiness report as JSON. Nothing else; no request body is read.
 */
export async function startOpsServer(cfg: Config, log: Logger, readiness: Readiness): Promise<OpsServer> {
  collectProcessMetrics();
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'text/plain', 'method not allowed\n');
    if (url === '/metrics') {
      scrape().then(
        (text) => reply(200, METRICS_CONTENT_TYPE, text),
        (err) => reply(500, 'text/plain', `metrics failed: ${String(err)}\n`),
      );
      return;
    }
    if (url === '/livez') {
      const fatal = readiness.fatal();
      return fatal ? reply(503, 'text/plain', `${fatal}\n`) : reply(200, 'text/plain', 'ok\n');
    }
    if (url === '/readyz') {
      readiness.evaluate().then(
        (r) => reply(r.ready ? 200 : 503, 'application/json', `${JSON.stringify(r)}\n`),
        // A request fails, the process does not (an unhandled rejection would end it).
        (err) => reply(503, 'text/plain', `readiness failed: ${String(err)}\n`),
      );
      return;
    }
    reply(404, 'text/plain', 'not found: /metrics, /livez, /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.TAMPERTRACE_OPS_PORT, cfg.TAMPERTRACE_OPS_HOST, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.TAMPERTRACE_OPS_PORT;
  log.info({ opsPort: port }, 'ops endpoint: /metrics /livez /readyz');
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
