// The HTTP/JSON side of the ingest service, one-to-one with IngestService (for curl and the web
// console): same API keys (`authorization: Bearer <key>`), same Gateway, same error codes.
//   POST /v1/analyses                 body: image bytes, or a SubmitRequest in proto3 JSON
//                                     (content-type: application/json); ?wait=true waits for the result
//   POST /v1/analyses:batch           SubmitBatch: {"items": [SubmitRequest...]} in proto3 JSON
//   GET  /v1/analyses/{id}            GetAnalysis
//   GET  /v1/analyses/{id}/events     WatchAnalysis as server-sent events
//   GET  /v1/analyses/{id}/{mask,overlay,heatmap,original}   GetArtifact (bytes)
import http from 'node:http';
import { create, fromJson, toJson } from '@bufbuild/protobuf';
import { CallerError, classify, codeName, httpStatusOf, type Config } from '@tampertrace/shared';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode, Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ArtifactKind, SubmitBatchResponseSchema, SubmitRequestSchema, type SubmitRequest } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { batchItem, type IngestApi } from './grpc.ts';

/** proto3 JSON of an Analysis, with every field present so that readers need no defaults. */
export function analysisJson(a: Analysis): unknown {
  return toJson(AnalysisSchema, a, { alwaysEmitImplicit: true });
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => new CallerError(ErrorCode.TOO_LARGE, `the body exceeds ${limit} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw tooLarge();
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body, null, 2) + '\n');
}

function sendError(res: http.ServerResponse, err: unknown): void {
  const e = classify(err);
  const headers: Record<string, string> = {};
  if (e instanceof CallerError && e.retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(e.retryAfterMs / 1000)));
  const internal = e.errorClass === 'internal';
  send(res, httpStatusOf(e.code), { error: { code: `ERROR_CODE_${codeName(e.code)}`, message: internal ? 'internal error' : e.message } }, headers);
}

function apiKeyOf(req: http.IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth && /^Bearer /i.test(auth)) return auth.slice(7).trim();
  const k = req.headers['x-api-key'];
  return typeof k === 'string' ? k : undefined;
}

const KIND: Record<string, ArtifactKind> = { mask: ArtifactKind.MASK, overlay: ArtifactKind.OVERLAY, heatmap: ArtifactKind.HEATMAP, original: ArtifactKind.ORIGINAL };

export async function serveHttp(api: IngestApi, cfg: Config): Promise<http.Server> {
  const { gateway, access, sources, log } = api;
  // The largest image as base64 in proto3 JSON, plus room for the rest of the request.
  const jsonLimit = Math.ceil((cfg.TAMPERTRACE_MAX_INPUT_BYTES * 4) / 3) + 1024 * 1024;
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    try {
      if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
      const tenant = await access.tenantOf(apiKeyOf(req));
      if (req.method === 'POST' && url.pathname === '/v1/analyses') {
        const body = await readBody(req, jsonLimit);
        let submit: SubmitRequest;
        if (/^application\/json/.test(req.headers['content-type'] ?? '')) {
          try {
            submit = fromJson(SubmitRequestSchema, JSON.parse(body.toString('utf8')));
          } catch (err) {
            throw new CallerError(ErrorCode.INVALID_MESSAGE, `not a SubmitRequest in JSON: ${(err as Error).message}`);
          }
        } else {
          if (body.length > cfg.TAMPERTRACE_MAX_INPUT_BYTES) throw new CallerError(ErrorCode.TOO_LARGE, `the body exceeds ${cfg.TAMPERTRACE_MAX_INPUT_BYTES} bytes`);
          const sourceName = String(req.headers['x-source-name'] ?? '');
          submit = create(SubmitRequestSchema, { source: { case: 'content', value: body }, sourceName, reanalyze: url.searchParams.get('reanalyze') === 'true' });
        }
        await access.admit(tenant);
        const r = await sources.submit(submit, tenant, ac.signal);
        if (url.searchParams.get('wait') !== 'true') {
          // As over gRPC: a refused image is an error with its reason, and its REJECTED analysis exists.
          if (r.rejected) return send(res, httpStatusOf(r.rejected.code), { error: { code: `ERROR_CODE_${codeName(r.rejected.code)}`, message: r.rejected.message }, analysisId: r.analysisId });
          return send(res, 202, { analysisId: r.analysisId, contentSha256: r.contentSha256, deduplicated: r.deduplicated });
        }
        const a = await gateway.wait(tenant.tenantId, r.analysisId, ac.signal);
        const status = a.status === AnalysisStatus.REJECTED && a.error ? httpStatusOf(a.error.code) : 200;
        return send(res, status, analysisJson(a));
      }
      if (req.method === 'POST' && url.pathname === '/v1/analyses:batch') {
        let items: SubmitRequest[];
        try {
          // A batch body is bounded like one request: large batches of bytes belong on the gRPC
          // stream, which never holds more than one item.
          const body = JSON.parse((await readBody(req, jsonLimit)).toString('utf8')) as { items?: unknown[] };
          items = (body.items ?? []).map((i) => fromJson(SubmitRequestSchema, i as never));
        } catch (err) {
          if (err instanceof CallerError) throw err;
          throw new CallerError(ErrorCode.INVALID_MESSAGE, `not {"items": [SubmitRequest...]} in JSON: ${(err as Error).message}`);
        }
        const results = [];
        for (const [i, item] of items.entries()) results.push(await batchItem(api, item, i, tenant, ac.signal));
        return send(res, 200, toJson(SubmitBatchResponseSchema, create(SubmitBatchResponseSchema, { results })));
      }
      const m = /^\/v1\/analyses\/([^/]{1,64})(?:\/(events|mask|overlay|heatmap|original))?(?:\.png)?$/.exec(url.pathname);
      if (req.method === 'GET' && m) {
        const [, id, part] = m;
        if (!part) {
          const a = await gateway.get(tenant.tenantId, id);
          if (!a) throw new CallerError(ErrorCode.NOT_FOUND, `no analysis ${id}`);
          return send(res, 200, analysisJson(a));
        }
        if (part === 'events') {
          let started = false;
          for await (const step of gateway.watch(tenant.tenantId, id, ac.signal)) {
            if (!started) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
            started = true;
            res.write(`event: ${step.analysis.status === AnalysisStatus.PENDING ? 'stage' : 'final'}\ndata: ${JSON.stringify({ stage: Stage[step.stage], analysis: analysisJson(step.analysis) })}\n\n`);
          }
          if (!started) throw new CallerError(ErrorCode.NOT_FOUND, `no analysis ${id}`);
          return res.end();
        }
        const art = await gateway.artifact(tenant.tenantId, id, KIND[part]);
        if (!art) throw new CallerError(ErrorCode.NOT_FOUND, `no ${part} for analysis ${id}`);
        res.writeHead(200, { 'content-type': art.ref.contentType || 'application/octet-stream' });
        return res.end(art.content);
      }
      throw new CallerError(ErrorCode.NOT_FOUND, `${req.method} ${url.pathname}`);
    } catch (err) {
      if (ac.signal.aborted) return;
      if (classify(err).errorClass === 'internal') log.error({ err: String(err), path: url.pathname }, 'request failed');
      if (!res.headersSent) sendError(res, err);
      else res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(cfg.TAMPERTRACE_HTTP_PORT, cfg.TAMPERTRACE_HTTP_HOST, resolve));
  return server;
}
