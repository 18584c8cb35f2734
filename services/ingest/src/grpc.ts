// IngestService over gRPC (protos/tampertrace/v1/ingest.proto), a thin adapter over the ingest
// service's modules (submission sources, the results view, listing, artefacts).
// Every call is authenticated by its API key (`authorization: Bearer <key>` metadata), which
// decides the tenant; another tenant's analysis answers NOT_FOUND, so existence does not leak.
// The same server also serves AuditService (services/audit/src/grpc.ts) with the same keys.
import { create } from '@bufbuild/protobuf';
import {
  CallerError,
  InvalidInputError,
  callFailure,
  callSignal,
  classify,
  createGrpcServer,
  failStream,
  grpc,
  startGrpcServer,
  toErrorInfo,
  unaryHandler,
  type Config,
  type GrpcApi,
  type GrpcServiceImpl,
  type Logger,
} from '@tampertrace/shared';
import { ErrorCode, Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import {
  GetAnalysisResponseSchema,
  GetArtifactResponseSchema,
  IngestService,
  SubmitBatchItemResultSchema,
  SubmitBatchResponseSchema,
  SubmitResponseSchema,
  WatchAnalysisResponseSchema,
  type GetAnalysisRequest,
  type GetRelatedAnalysesRequest,
  type GetArtifactRequest,
  type ListAnalysesRequest,
  type SubmitBatchItemResult,
  type SubmitBatchRequest,
  type SubmitRequest,
  type SubmitResponse,
  type WatchAnalysisRequest,
} from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { AuditService, auditServiceImpl } from '@tampertrace/shared/audit-trail/grpc';
import type { AuditStore } from '@tampertrace/shared/audit-trail/store';
import type { Access } from './access.ts';
import type { Artifacts } from './artifacts.ts';
import type { Listing } from './listing.ts';
import type { ResultsView } from './results-view.ts';
import type { Tenant } from './tenants.ts';
import type { SubmitSources } from './submission-sources.ts';

/** The API key of a call: `authorization: Bearer <key>` (or `x-api-key: <key>`). */
export function apiKeyOf(md: grpc.Metadata): string | undefined {
  const auth = md.get('authorization')[0];
  if (typeof auth === 'string' && /^Bearer /i.test(auth)) return auth.slice(7).trim();
  const k = md.get('x-api-key')[0];
  return typeof k === 'string' ? k : undefined;
}

export interface IngestApi {
  /** GetAnalysis and ListAnalyses. */
  listing: Listing;
  /** WatchAnalysis (and the HTTP endpoint's ?wait=true). */
  results: ResultsView;
  /** GetArtifact. */
  artifacts: Artifacts;
  access: Access;
  sources: SubmitSources;
  log: Logger;
  /** The tenants' audit trail, read through AuditService (and its HTTP twin) when present. */
  audit?: AuditStore;
}

/** A unary call of the caller's tenant (shared unaryHandler: cancellation, one error mapping). */
function tenantCall<Req, Res>(api: IngestApi, fn: (req: Req, tenant: Tenant, signal: AbortSignal) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return unaryHandler(api.log, async (req: Req, signal, md) => fn(req, await api.access.tenantOf(apiKeyOf(md)), signal));
}

/**
 * One item of a batch (gRPC SubmitBatch and its HTTP twin): accepted, or refused with its code.
 * An outage or a bug fails the whole call instead, since later items would fail the same way.
 */
export async function batchItem(api: IngestApi, req: SubmitRequest | undefined, index: number, tenant: Tenant, signal: AbortSignal): Promise<SubmitBatchItemResult> {
  try {
    if (!req) throw new CallerError(ErrorCode.INVALID_MESSAGE, 'batch item without a request');
    return create(SubmitBatchItemResultSchema, { index, accepted: await submitOne(api, req, tenant, signal) });
  } catch (err) {
    const e = classify(err);
    if (e.errorClass === 'internal' || e.errorClass === 'retriable') throw err;
    return create(SubmitBatchItemResultSchema, { index, error: toErrorInfo(e, Stage.INGEST) });
  }
}

async function submitOne(api: IngestApi, req: SubmitRequest, tenant: Tenant, signal: AbortSignal): Promise<SubmitResponse> {
  await api.access.admit(tenant);
  const r = await api.sources.submit(req, tenant, signal);
  // A refused image is an error to the caller, but its REJECTED analysis exists (audit trail):
  // its id rides along in the tt-analysis-id trailer.
  if (r.rejected) throw new InvalidInputError(r.rejected.code, r.rejected.message, { analysisId: r.analysisId });
  return create(SubmitResponseSchema, { analysisId: r.analysisId, contentSha256: r.contentSha256, deduplicated: r.deduplicated });
}

export function ingestServiceImpl(api: IngestApi): grpc.UntypedServiceImplementation {
  const { listing, results, artifacts, access } = api;
  const notFound = (id: string) => new CallerError(ErrorCode.NOT_FOUND, `no analysis ${id}`);

  return {
    submit: tenantCall(api, (req: SubmitRequest, tenant, signal) => submitOne(api, req, tenant, signal)),

    // Items are handled one after another as they arrive, so a large batch never sits in memory;
    // one bad item is answered in its result and the rest go on.
    submitBatch: (call: grpc.ServerReadableStream<SubmitBatchRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const signal = callSignal(call);
      (async () => {
        const tenant = await access.tenantOf(apiKeyOf(call.metadata));
        const results = [];
        let index = 0;
        for await (const item of call as AsyncIterable<SubmitBatchRequest>) results.push(await batchItem(api, item.item, index++, tenant, signal));
        return create(SubmitBatchResponseSchema, { results });
      })().then(
        (res) => callback(null, res),
        (err) => callback(callFailure(api.log, call.getPath(), err)),
      );
    },

    getAnalysis: tenantCall(api, async (req: GetAnalysisRequest, tenant) => {
      const a = await listing.get(tenant.tenantId, req.analysisId);
      if (!a) throw notFound(req.analysisId);
      return create(GetAnalysisResponseSchema, { analysis: a });
    }),

    getArtifact: tenantCall(api, async (req: GetArtifactRequest, tenant) => {
      const art = await artifacts.artifact(tenant.tenantId, req.analysisId, req.kind);
      if (!art) throw new CallerError(ErrorCode.NOT_FOUND, `analysis ${req.analysisId} has no such artefact`);
      return create(GetArtifactResponseSchema, { ref: art.ref, content: art.content });
    }),

    listAnalyses: tenantCall(api, (req: ListAnalysesRequest, tenant) => listing.list(tenant.tenantId, req)),

    getRelatedAnalyses: tenantCall(api, async (req: GetRelatedAnalysesRequest, tenant) => {
      const r = await listing.related(tenant.tenantId, req.analysisId);
      if (!r) throw notFound(req.analysisId);
      return r;
    }),

    watchAnalysis: (call: grpc.ServerWritableStream<WatchAnalysisRequest, unknown>) => {
      const signal = callSignal(call);
      (async () => {
        const tenant = await access.tenantOf(apiKeyOf(call.metadata));
        const id = call.request.analysisId;
        let any = false;
        for await (const step of results.watch(tenant.tenantId, id, signal)) {
          any = true;
          call.write(create(WatchAnalysisResponseSchema, { stage: step.stage, analysis: step.analysis }));
        }
        if (!any) throw notFound(id);
        call.end();
      })().catch((err) => {
        if (!signal.aborted) failStream(api.log, call, err);
      });
    },
  };
}

/**
 * Serves IngestService, and AuditService when `api.audit` is set (with health, reflection,
 * keepalive and size limits from shared/grpc.ts), on TAMPERTRACE_GRPC_HOST:PORT, reporting
 * SERVING: the caller has the results view running already.
 */
export async function serveGrpc(api: IngestApi, cfg: Config): Promise<{ server: GrpcApi; port: number }> {
  const services: GrpcServiceImpl[] = [{ service: IngestService, impl: ingestServiceImpl(api) }];
  if (api.audit) {
    const tenantOf = async (md: grpc.Metadata) => (await api.access.tenantOf(apiKeyOf(md))).tenantId;
    services.push({ service: AuditService, impl: auditServiceImpl(api.audit, tenantOf, api.log) });
  }
  const server = createGrpcServer(cfg, services, api.log);
  const port = await startGrpcServer(server, cfg, api.log);
  server.health.serving();
  return { server, port };
}
