// The ingest service's public side, assembled once for both modes: submission, the results view,
// listing and artefacts (one job per module, on one analyses table), tenants and admission,
// submission sources, webhook delivery, the audit trail's reads, and the gRPC and HTTP servers on top.
import type http from 'node:http';
import { AuditStore } from '@tampertrace/shared/audit-trail/store';
import { Bucket, stopGrpcServer, type Config, type DecodedImageCache, type EventBus, type Logger, type ObjectStore, type SqlClient } from '@tampertrace/shared';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import type { ServiceHealth } from '@tampertrace/shared/health';
import { Access } from './access.ts';
import { AnalysesStore } from './analyses.ts';
import { Artifacts } from './artifacts.ts';
import { serveGrpc, type IngestApi } from './grpc.ts';
import { analysisJson, serveHttp } from './http.ts';
import { Listing } from './listing.ts';
import { ResultsView } from './results-view.ts';
import { Submission } from './submission.ts';
import { SubmitSources } from './submission-sources.ts';
import { consumeSubmissions } from './submissions-topic.ts';
import { TenantStore } from './tenants.ts';
import { deliverWebhook } from './webhook.ts';

export interface IngestDeps {
  cfg: Config;
  log: Logger;
  bus: EventBus;
  store: ObjectStore;
  sql: SqlClient;
  /** TAMPERTRACE_API_KEY_PEPPER, or embedded mode's own. */
  pepper: string;
  decoded?: DecodedImageCache;
}

export interface Ingest extends IngestApi {
  /** Submissions as the caller's own (embedded mode's CLI, tests); API callers go through `sources`. */
  submission: Submission;
  tenants: TenantStore;
  /** The audit store on the same database (the audit service writes it; the API reads it). */
  audit: AuditStore;
  /** Webhook deliveries still running (awaited on stop). */
  readonly deliveries: Set<Promise<unknown>>;
  stop(): Promise<void>;
}

export async function openIngest(deps: IngestDeps): Promise<Ingest> {
  const { cfg, log } = deps;
  const tenants = new TenantStore(deps.sql, deps.pepper);
  const deliveries = new Set<Promise<unknown>>();
  const stopping = new AbortController();
  // The replica that records a final result sends its webhook: the per-request URL, else the
  // tenant's. Delivery runs beside the consumer, so a slow receiver never holds up results.
  const onFinal = (a: Analysis, requestUrl: string | undefined) => {
    const p = (async () => {
      const tenant = await tenants.get(a.tenantId);
      const url = requestUrl ?? tenant?.webhookUrl;
      if (!url || !tenant) return;
      const body = new TextEncoder().encode(JSON.stringify(analysisJson(a)));
      const out = await deliverWebhook(url, body, {
        secret: tenant.signingSecret.toString('base64url'),
        allowHttp: cfg.TAMPERTRACE_URL_ALLOW_HTTP,
        allowPrivate: cfg.TAMPERTRACE_URL_ALLOW_PRIVATE,
        timeoutMs: 10_000,
        maxAttempts: cfg.TAMPERTRACE_WEBHOOK_MAX_ATTEMPTS,
        backoffMs: 500,
        deliveryId: a.analysisId,
        signal: stopping.signal,
      });
      const fields = { analysisId: a.analysisId, tenant: a.tenantId, attempts: out.attempts, status: out.status };
      if (out.delivered) log.info(fields, 'webhook delivered');
      else log.warn({ ...fields, err: out.error ? String(out.error) : undefined }, 'webhook not delivered');
    })().catch((err) => log.warn({ analysisId: a.analysisId, err: String(err) }, 'webhook refused'));
    deliveries.add(p);
    void p.finally(() => deliveries.delete(p));
  };
  // The table and buckets exist before anything reads or writes them; the results consumer starts last.
  const analyses = new AnalysesStore(deps.sql);
  await analyses.migrate();
  await deps.store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
  const artifacts = new Artifacts(deps, analyses);
  const submission = new Submission(deps, analyses);
  const listing = new Listing(analyses, artifacts);
  const results = await ResultsView.start({ log, bus: deps.bus, onFinal }, analyses, artifacts);
  const access = new Access(tenants, deps.sql);
  const sources = new SubmitSources(submission, cfg);
  const submissions = await consumeSubmissions({ bus: deps.bus, tenants, sources, log });
  // The API reads the audit tables, which the audit service may not have created yet.
  const audit = new AuditStore(deps.sql);
  await audit.migrate();
  return {
    audit,
    submission,
    results,
    listing,
    artifacts,
    access,
    sources,
    log,
    tenants,
    deliveries,
    async stop() {
      await submissions.stop();
      await results.stop();
      stopping.abort();
      await Promise.allSettled([...deliveries]);
    },
  };
}

/** Both servers of the ingest service; `stop` refuses new calls, lets running ones finish, then closes. */
export async function serveIngest(api: Ingest, cfg: Config): Promise<{ grpcPort: number; httpPort: number; health: ServiceHealth; stop(): Promise<void> }> {
  const { server, port } = await serveGrpc(api, cfg);
  const httpServer: http.Server = await serveHttp(api, cfg);
  const addr = httpServer.address();
  return {
    grpcPort: port,
    health: server.health,
    httpPort: typeof addr === 'object' && addr ? addr.port : 0,
    stop: async () => {
      await Promise.all([stopGrpcServer(server), new Promise<void>((resolve) => httpServer.close(() => resolve()))]);
    },
  };
}

