// IngestService over gRPC (protos/tampertrace/v1/ingest.proto), a thin adapter over the Gateway.
// Every call is scoped to one tenant; until API keys exist (the public-API issue) that is the
// configured TAMPERTRACE_TENANT.
import { create } from '@bufbuild/protobuf';
import { GrpcStatusError, grpc, serviceDefinition, toGrpcError, type Config, type Logger } from '@tampertrace/shared';
import { Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import {
  GetAnalysisResponseSchema,
  GetArtifactResponseSchema,
  IngestService,
  SubmitResponseSchema,
  WatchAnalysisResponseSchema,
  type GetAnalysisRequest,
  type GetArtifactRequest,
  type SubmitRequest,
  type WatchAnalysisRequest,
} from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { Gateway } from './gateway.ts';

/** gRPC messages carry whole images; the limit is the input limit plus room for the envelope. */
export function maxMessageBytes(cfg: Config): number {
  return cfg.TAMPERTRACE_MAX_INPUT_BYTES + 1024 * 1024;
}

function unaryHandler<Req, Res>(log: Logger, fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request).then(
      (res) => callback(null, res),
      (err) => {
        const status = toGrpcError(err);
        if (status.code === grpc.status.INTERNAL) log.error({ err: String(err), method: call.getPath() }, 'call failed');
        callback(status as grpc.ServiceError);
      },
    );
  };
}

const notFound = (id: string) => new GrpcStatusError(grpc.status.NOT_FOUND, `no analysis ${id}`);

export function ingestServiceImpl(gateway: Gateway, cfg: Config, log: Logger): grpc.UntypedServiceImplementation {
  const tenantId = cfg.TAMPERTRACE_TENANT;
  return {
    submit: unaryHandler(log, async (req: SubmitRequest) => {
      // An input that is not a valid image is not an RPC error: the analysis ends REJECTED with
      // its reason, visible through GetAnalysis and in the audit trail, like any other outcome.
      if (req.source.case !== 'content') throw new GrpcStatusError(grpc.status.UNIMPLEMENTED, 'only `content` submissions are served so far (object references and URLs are not)');
      const r = await gateway.submit(req.source.value, { tenantId, sourceName: req.sourceName.slice(0, 200), dedupe: !req.reanalyze });
      return create(SubmitResponseSchema, { analysisId: r.analysisId, contentSha256: r.contentSha256, deduplicated: r.deduplicated });
    }),
    submitBatch: (_call: unknown, callback: grpc.sendUnaryData<never>) => callback({ code: grpc.status.UNIMPLEMENTED, details: 'SubmitBatch is not served yet' }),
    getAnalysis: unaryHandler(log, async (req: GetAnalysisRequest) => {
      const a = await gateway.get(tenantId, req.analysisId);
      if (!a) throw notFound(req.analysisId);
      return create(GetAnalysisResponseSchema, { analysis: a });
    }),
    getArtifact: unaryHandler(log, async (req: GetArtifactRequest) => {
      const art = await gateway.artifact(tenantId, req.analysisId, req.kind);
      if (!art) throw new GrpcStatusError(grpc.status.NOT_FOUND, `analysis ${req.analysisId} has no such artefact`);
      return create(GetArtifactResponseSchema, { ref: art.ref, content: art.content });
    }),
    // The state now, then the final state. (Per-stage steps come with the public-API issue.)
    watchAnalysis: (call: grpc.ServerWritableStream<WatchAnalysisRequest, unknown>) => {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      (async () => {
        const id = call.request.analysisId;
        const now = await gateway.get(tenantId, id);
        if (!now) throw notFound(id);
        call.write(create(WatchAnalysisResponseSchema, { stage: Stage.INGEST, analysis: now }));
        if (now.status === AnalysisStatus.PENDING) {
          const final = await gateway.wait(tenantId, id, abort.signal);
          call.write(create(WatchAnalysisResponseSchema, { stage: Stage.EXPLANATION, analysis: final }));
        }
        call.end();
      })().catch((err) => {
        if (abort.signal.aborted) return;
        const status = toGrpcError(err);
        if (status.code === grpc.status.INTERNAL) log.error({ err: String(err), method: call.getPath() }, 'call failed');
        call.destroy(Object.assign(new Error(status.details), status));
      });
    },
  };
}

/** Serves IngestService on TAMPERTRACE_GRPC_HOST:PORT; resolves with the server and its bound port. */
export async function serveGrpc(gateway: Gateway, cfg: Config, log: Logger): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': maxMessageBytes(cfg), 'grpc.max_send_message_length': maxMessageBytes(cfg) });
  server.addService(serviceDefinition(IngestService), ingestServiceImpl(gateway, cfg, log));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${cfg.TAMPERTRACE_GRPC_HOST}:${cfg.TAMPERTRACE_GRPC_PORT}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port };
}

/** Stops taking calls, lets running ones finish for up to `graceMs`, then cuts them. */
export async function stopGrpc(server: grpc.Server, graceMs = 5000): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
}
