// The HTTP endpoint of the ingest service: submit image bytes, read results and artefacts, for
// curl and browsers. Same Gateway and tenant scoping as the gRPC API.
import http from 'node:http';
import { toJson } from '@bufbuild/protobuf';
import { httpStatusOf, type Config, type Logger } from '@tampertrace/shared';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ArtifactKind } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import type { Gateway } from './gateway.ts';

/** proto3 JSON of an Analysis, with every field present so that readers need no defaults. */
export function analysisJson(a: Analysis): unknown {
  return toJson(AnalysisSchema, a, { alwaysEmitImplicit: true });
}

class BodyTooLarge extends Error {}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new BodyTooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new BodyTooLarge();
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body, null, 2) + '\n');
}

const KIND = { mask: ArtifactKind.MASK, overlay: ArtifactKind.OVERLAY, heatmap: ArtifactKind.HEATMAP } as const;

export async function serveHttp(gateway: Gateway, cfg: Config, log: Logger): Promise<http.Server> {
  const tenantId = cfg.TAMPERTRACE_TENANT;
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
      if (req.method === 'POST' && url.pathname === '/v1/analyses') {
        let bytes: Buffer;
        try {
          bytes = await readBody(req, cfg.TAMPERTRACE_MAX_INPUT_BYTES);
        } catch (err) {
          if (err instanceof BodyTooLarge) return send(res, 413, { error: { code: 'TOO_LARGE', message: `body exceeds ${cfg.TAMPERTRACE_MAX_INPUT_BYTES} bytes` } });
          throw err;
        }
        const sourceName = String(req.headers['x-source-name'] ?? '').slice(0, 200);
        const submitted = await gateway.submit(bytes, { tenantId, sourceName });
        if (url.searchParams.get('wait') !== 'true') return send(res, 202, { analysisId: submitted.analysisId, contentSha256: submitted.contentSha256 });
        const a = await gateway.wait(tenantId, submitted.analysisId);
        const status = a.status === AnalysisStatus.REJECTED && a.error ? httpStatusOf(a.error.code) : 200;
        return send(res, status, analysisJson(a));
      }
      const m = /^\/v1\/analyses\/([0-9a-f-]{36})(?:\/(mask|overlay|heatmap)\.png)?$/.exec(url.pathname);
      if (req.method === 'GET' && m) {
        if (!m[2]) {
          const a = await gateway.get(tenantId, m[1]);
          return a ? send(res, 200, analysisJson(a)) : send(res, 404, { error: { code: 'NOT_FOUND', message: 'no such analysis' } });
        }
        const art = await gateway.artifact(tenantId, m[1], KIND[m[2] as keyof typeof KIND]);
        if (!art) return send(res, 404, { error: { code: 'NOT_FOUND', message: `no ${m[2]} for this analysis` } });
        res.writeHead(200, { 'content-type': 'image/png' });
        return res.end(art.content);
      }
      send(res, 404, { error: { code: 'NOT_FOUND', message: `${req.method} ${url.pathname}` } });
    } catch (err) {
      log.error({ err: String(err), path: url.pathname }, 'request failed');
      if (!res.headersSent) send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
    }
  });
  await new Promise<void>((resolve) => server.listen(cfg.TAMPERTRACE_HTTP_PORT, cfg.TAMPERTRACE_HTTP_HOST, resolve));
  return server;
}
