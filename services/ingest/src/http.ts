// The HTTP/JSON side of the ingest service, one-to-one with IngestService (for curl and the web
// console): same API keys (`authorization: Bearer <key>`), same modules, same error codes.
//   POST /v1/analyses                 body: image bytes, or a SubmitRequest in proto3 JSON
//                                     (content-type: application/json); ?wait=true waits for the result
//   POST /v1/analyses:batch           SubmitBatch: {"items": [SubmitRequest...]} in proto3 JSON
//   GET  /v1/analyses?status=S&verdict=V&minForgeryScore=X&pageSize=N&pageToken=T   ListAnalyses
//   GET  /v1/analyses/{id}            GetAnalysis
//   GET  /v1/analyses/{id}/related    GetRelatedAnalyses
//   GET  /v1/analyses/{id}/events     WatchAnalysis as server-sent events
//   GET  /v1/analyses/{id}/{mask,overlay,heatmap,original}   GetArtifact (bytes)
// and AuditService (when the API has the audit store), answers in proto3 JSON:
//   GET  /v1/audit/trail?analysisId=ID | ?contentSha256=HEX            GetTrail
//   GET  /v1/audit/records?FILTERS&pageSize=N&pageToken=T              QueryRecords
//   GET  /v1/audit/export?FILTERS&format=jsonl|csv                     ExportRecords (streamed body)
//   POST /v1/audit/verify  body: VerifyChainRequest in proto3 JSON (or empty);
//   GET  /v1/audit/verify?fromSequence=N&toSequence=N                  VerifyChain
//   GET  /v1/audit/checkpoints?since=N                                 ListCheckpoints
// FILTERS (AuditFilter): from, to (ISO 8601; from inclusive, to exclusive), status, verdict, stage,
// errorCode (enum names, with or without their prefix: REJECTED or ANALYSIS_STATUS_REJECTED),
// minForgeryScore (0-1), modelVersion, region.
// Without a key, GET /console/ serves the review console's page (console-assets.ts).
import { createHash, type Hash } from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import { create, fromJson, toJson, type DescMessage, type JsonValue, type MessageShape } from '@bufbuild/protobuf';
import {
  AuditFilterSchema,
  ExportFormat,
  ExportRecordsRequestSchema,
  GetTrailRequestSchema,
  GetTrailResponseSchema,
  ListCheckpointsRequestSchema,
  ListCheckpointsResponseSchema,
  QueryRecordsRequestSchema,
  QueryRecordsResponseSchema,
  VerifyChainRequestSchema,
  VerifyChainResponseSchema,
  type AuditFilter,
} from '@tampertrace/shared/gen/tampertrace/v1/audit_pb';
import { AuditApi, EXPORT_CONTENT_TYPE, exportFormatOf } from '@tampertrace/shared/audit-trail/grpc';
import { CallerError, InvalidInputError, classify, codeName, httpStatusOf, safeMessage, type Config } from '@tampertrace/shared';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode, Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ArtifactKind, GetRelatedAnalysesResponseSchema, ListAnalysesRequestSchema, ListAnalysesResponseSchema, SubmitBatchResponseSchema, SubmitRequestSchema, type SubmitRequest } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { serveConsole } from './console-assets.ts';
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

/**
 * A raw image body: its bytes when within `limit`; past it, only its SHA-256 and size, hashed as
 * it streams so that an oversized body is never held (it still gets its REJECTED analysis).
 */
async function readImageBody(req: http.IncomingMessage, limit: number): Promise<{ bytes: Buffer } | { sha256: string; size: number }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let hash: Hash | undefined;
  for await (const c of req) {
    const chunk = c as Buffer;
    size += chunk.length;
    if (!hash && size > limit) {
      hash = createHash('sha256');
      for (const held of chunks) hash.update(held);
      chunks.length = 0;
    }
    if (hash) hash.update(chunk);
    else chunks.push(chunk);
  }
  return hash ? { sha256: hash.digest('hex'), size } : { bytes: Buffer.concat(chunks) };
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body, null, 2) + '\n');
}

function sendError(res: http.ServerResponse, err: unknown): void {
  const e = classify(err);
  const headers: Record<string, string> = {};
  if (e instanceof CallerError && e.retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(e.retryAfterMs / 1000)));
  const body = { error: { code: `ERROR_CODE_${codeName(e.code)}`, message: safeMessage(e) }, ...(e.analysisId ? { analysisId: e.analysisId } : {}) };
  send(res, httpStatusOf(e.code), body, headers);
}

function apiKeyOf(req: http.IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth && /^Bearer /i.test(auth)) return auth.slice(7).trim();
  const k = req.headers['x-api-key'];
  return typeof k === 'string' ? k : undefined;
}

/** A message from proto3 JSON; a malformed one is the caller's INVALID_MESSAGE. */
function messageOf<D extends DescMessage>(schema: D, json: JsonValue, what: string): MessageShape<D> {
  try {
    return fromJson(schema, json);
  } catch (err) {
    throw new CallerError(ErrorCode.INVALID_MESSAGE, `not a valid ${what}: ${(err as Error).message}`);
  }
}

/** The AuditFilter of a query string (see the header). */
export function auditFilterOf(q: URLSearchParams): AuditFilter {
  const json: Record<string, JsonValue> = {};
  const time = (name: string, field: string) => {
    const v = q.get(name);
    if (!v) return;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw new CallerError(ErrorCode.INVALID_MESSAGE, `${name} is not an ISO 8601 time: ${v}`);
    json[field] = d.toISOString();
  };
  time('from', 'fromTime');
  time('to', 'toTime');
  for (const [name, prefix] of [['status', 'ANALYSIS_STATUS_'], ['verdict', 'VERDICT_'], ['stage', 'STAGE_'], ['errorCode', 'ERROR_CODE_']] as const) {
    const v = q.get(name)?.toUpperCase();
    if (v) json[name] = v.startsWith(prefix) ? v : prefix + v;
  }
  const score = q.get('minForgeryScore') ?? q.get('minScore');
  if (score) {
    const n = Number(score);
    if (!Number.isFinite(n)) throw new CallerError(ErrorCode.INVALID_MESSAGE, `minForgeryScore is not a number: ${score}`);
    json.minForgeryScore = n;
  }
  for (const name of ['modelVersion', 'region']) {
    const v = q.get(name);
    if (v) json[name] = v;
  }
  return messageOf(AuditFilterSchema, json, 'audit filter');
}

/** The ListAnalysesRequest of a query string (enum names as for audit filters). */
function listRequestOf(q: URLSearchParams) {
  const json: Record<string, JsonValue> = { pageSize: Number(intParam(q, 'pageSize')), pageToken: q.get('pageToken') ?? '' };
  for (const [name, prefix] of [['status', 'ANALYSIS_STATUS_'], ['verdict', 'VERDICT_']] as const) {
    const v = q.get(name)?.toUpperCase();
    if (v) json[name] = v.startsWith(prefix) ? v : prefix + v;
  }
  const score = q.get('minForgeryScore');
  if (score) json.minForgeryScore = Number(score);
  return messageOf(ListAnalysesRequestSchema, json, 'ListAnalysesRequest');
}

/** A non-negative integer query parameter (0 when absent), as proto3 JSON takes it. */
function intParam(q: URLSearchParams, name: string): string {
  const v = q.get(name) ?? '0';
  if (!/^\d{1,16}$/.test(v)) throw new CallerError(ErrorCode.INVALID_MESSAGE, `${name} must be a non-negative integer, got ${v}`);
  return v;
}

/** proto3 JSON with every field present, as for analyses. */
const jsonOf = <D extends DescMessage>(schema: D, m: MessageShape<D>) => toJson(schema, m, { alwaysEmitImplicit: true });

/** Serves GET/POST /v1/audit/...; false when the path is not one of them. */
async function serveAudit(audit: AuditApi, tenantId: string, req: http.IncomingMessage, res: http.ServerResponse, url: URL, signal: AbortSignal): Promise<boolean> {
  const q = url.searchParams;
  const get = req.method === 'GET';
  switch (url.pathname) {
    case '/v1/audit/trail': {
      if (!get) return false;
      const analysisId = q.get('analysisId');
      const contentSha256 = q.get('contentSha256');
      const key = analysisId ? { case: 'analysisId' as const, value: analysisId } : contentSha256 ? { case: 'contentSha256' as const, value: contentSha256 } : { case: undefined };
      send(res, 200, jsonOf(GetTrailResponseSchema, await audit.trail(tenantId, create(GetTrailRequestSchema, { key }))));
      return true;
    }
    case '/v1/audit/records': {
      if (!get) return false;
      const r = create(QueryRecordsRequestSchema, { filter: auditFilterOf(q), pageSize: Number(intParam(q, 'pageSize')), pageToken: q.get('pageToken') ?? '' });
      send(res, 200, jsonOf(QueryRecordsResponseSchema, await audit.query(tenantId, r)));
      return true;
    }
    case '/v1/audit/export': {
      if (!get) return false;
      const format = q.get('format') ?? 'jsonl';
      if (format !== 'jsonl' && format !== 'csv') throw new CallerError(ErrorCode.INVALID_MESSAGE, `format must be jsonl or csv, got ${format}`);
      const r = create(ExportRecordsRequestSchema, { filter: auditFilterOf(q), format: format === 'csv' ? ExportFormat.CSV : ExportFormat.JSONL });
      const chunks = audit.exportChunks(tenantId, r);
      // A bad filter fails the first read: answered as an error, before any header is sent.
      let next = await chunks.next();
      res.writeHead(200, {
        'content-type': EXPORT_CONTENT_TYPE[exportFormatOf(r.format)],
        'content-disposition': `attachment; filename="audit.${format}"`,
        'cache-control': 'no-store',
      });
      try {
        while (!next.done) {
          if (!res.write(next.value)) await once(res, 'drain', { signal });
          next = await chunks.next();
        }
        res.end();
      } catch (err) {
        void chunks.return(undefined);
        // Headers are out: cut the body short so the client sees an incomplete transfer, not a short export.
        res.destroy(err as Error);
        if (!signal.aborted) throw err;
      }
      return true;
    }
    case '/v1/audit/verify': {
      let v;
      if (get) v = messageOf(VerifyChainRequestSchema, { fromSequence: intParam(q, 'fromSequence'), toSequence: intParam(q, 'toSequence') }, 'VerifyChainRequest');
      else if (req.method === 'POST') {
        const body = (await readBody(req, 16 * 1024 * 1024)).toString('utf8').trim();
        let json: JsonValue;
        try {
          json = body ? (JSON.parse(body) as JsonValue) : {};
        } catch (err) {
          throw new CallerError(ErrorCode.INVALID_MESSAGE, `not a VerifyChainRequest in JSON: ${(err as Error).message}`);
        }
        v = messageOf(VerifyChainRequestSchema, json, 'VerifyChainRequest');
      } else return false;
      send(res, 200, jsonOf(VerifyChainResponseSchema, await audit.verify(tenantId, v)));
      return true;
    }
    case '/v1/audit/checkpoints': {
      if (!get) return false;
      const r = messageOf(ListCheckpointsRequestSchema, { since: intParam(q, 'since') }, 'ListCheckpointsRequest');
      send(res, 200, jsonOf(ListCheckpointsResponseSchema, await audit.checkpoints(tenantId, r)));
      return true;
    }
    default:
      return false;
  }
}

/** The request's URL; a target that does not parse (`//x:-1`) is the caller's INVALID_MESSAGE. */
function requestUrl(req: http.IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    throw new CallerError(ErrorCode.INVALID_MESSAGE, 'the request target is not a valid URL path');
  }
}

const KIND: Record<string, ArtifactKind> = { mask: ArtifactKind.MASK, overlay: ArtifactKind.OVERLAY, heatmap: ArtifactKind.HEATMAP, original: ArtifactKind.ORIGINAL };

export async function serveHttp(api: IngestApi, cfg: Config): Promise<http.Server> {
  const { listing, results, artifacts, access, sources, log } = api;
  const audit = api.audit ? new AuditApi(api.audit) : undefined;
  // The largest image as base64 in proto3 JSON, plus room for the rest of the request.
  const jsonLimit = Math.ceil((cfg.TAMPERTRACE_MAX_INPUT_BYTES * 4) / 3) + 1024 * 1024;
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> => {
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    let url: URL | undefined;
    try {
      url = requestUrl(req);
      if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
      if (await serveConsole(req, res, url.pathname)) return;
      const tenant = await access.tenantOf(apiKeyOf(req));
      if (audit && url.pathname.startsWith('/v1/audit/') && (await serveAudit(audit, tenant.tenantId, req, res, url, ac.signal))) return;
      if (req.method === 'POST' && url.pathname === '/v1/analyses') {
        let submit: SubmitRequest;
        let tooLarge: { sha256: string; size: number } | undefined;
        if (/^application\/json/.test(req.headers['content-type'] ?? '')) {
          const body = await readBody(req, jsonLimit);
          try {
            submit = fromJson(SubmitRequestSchema, JSON.parse(body.toString('utf8')));
          } catch (err) {
            throw new CallerError(ErrorCode.INVALID_MESSAGE, `not a SubmitRequest in JSON: ${(err as Error).message}`);
          }
        } else {
          const body = await readImageBody(req, cfg.TAMPERTRACE_MAX_INPUT_BYTES);
          const sourceName = String(req.headers['x-source-name'] ?? '');
          const reanalyze = url.searchParams.get('reanalyze') === 'true';
          if ('sha256' in body) tooLarge = body;
          submit = create(SubmitRequestSchema, { source: 'bytes' in body ? { case: 'content', value: body.bytes } : { case: undefined }, sourceName, reanalyze });
        }
        await access.admit(tenant);
        const r = tooLarge ? await sources.submitTooLarge(tooLarge.sha256, tooLarge.size, submit, tenant, ac.signal) : await sources.submit(submit, tenant, ac.signal);
        if (url.searchParams.get('wait') !== 'true') {
          // As over gRPC: a refused image is an error with its reason, and its REJECTED analysis exists.
          if (r.rejected) throw new InvalidInputError(r.rejected.code, r.rejected.message, { analysisId: r.analysisId });
          return send(res, 202, { analysisId: r.analysisId, contentSha256: r.contentSha256, deduplicated: r.deduplicated });
        }
        const a = await results.wait(tenant.tenantId, r.analysisId, ac.signal);
        const status = a.status === AnalysisStatus.REJECTED && a.error ? httpStatusOf(a.error.code) : 200;
        return send(res, status, analysisJson(a));
      }
      if (req.method === 'GET' && url.pathname === '/v1/analyses') return send(res, 200, jsonOf(ListAnalysesResponseSchema, await listing.list(tenant.tenantId, listRequestOf(url.searchParams))));
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
      const m = /^\/v1\/analyses\/([^/]{1,64})(?:\/(events|related|mask|overlay|heatmap|original))?(?:\.png)?$/.exec(url.pathname);
      if (req.method === 'GET' && m) {
        const [, id, part] = m;
        if (!part) {
          const a = await listing.get(tenant.tenantId, id);
          if (!a) throw new CallerError(ErrorCode.NOT_FOUND, `no analysis ${id}`);
          return send(res, 200, analysisJson(a));
        }
        if (part === 'related') {
          const r = await listing.related(tenant.tenantId, id);
          if (!r) throw new CallerError(ErrorCode.NOT_FOUND, `no analysis ${id}`);
          return send(res, 200, jsonOf(GetRelatedAnalysesResponseSchema, r));
        }
        if (part === 'events') {
          let started = false;
          for await (const step of results.watch(tenant.tenantId, id, ac.signal)) {
            if (!started) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
            started = true;
            res.write(`event: ${step.analysis.status === AnalysisStatus.PENDING ? 'stage' : 'final'}\ndata: ${JSON.stringify({ stage: Stage[step.stage], analysis: analysisJson(step.analysis) })}\n\n`);
          }
          if (!started) throw new CallerError(ErrorCode.NOT_FOUND, `no analysis ${id}`);
          return res.end();
        }
        const art = await artifacts.artifact(tenant.tenantId, id, KIND[part]);
        if (!art) throw new CallerError(ErrorCode.NOT_FOUND, `no ${part} for analysis ${id}`);
        res.writeHead(200, { 'content-type': art.ref.contentType || 'application/octet-stream' });
        return res.end(art.content);
      }
      throw new CallerError(ErrorCode.NOT_FOUND, `${req.method} ${url.pathname}`);
    } catch (err) {
      if (ac.signal.aborted) return;
      const e = classify(err);
      if (e.errorClass === 'internal') log.error({ err: String(err), stack: (err as Error)?.stack, path: url?.pathname }, 'request failed');
      else if (!e.forCaller) log.warn({ err: e.message, code: codeName(e.code), path: url?.pathname }, 'request failed');
      if (!res.headersSent) sendError(res, err);
      else res.end();
    }
  };
  // The error boundary of every request: whatever escapes the handler (even from its error path)
  // fails that request, never the process (an unhandled rejection would end it).
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      log.error({ err: String(err), stack: (err as Error)?.stack }, 'request failed outside its handler');
      res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(cfg.TAMPERTRACE_HTTP_PORT, cfg.TAMPERTRACE_HTTP_HOST, resolve));
  return server;
}
