// The embedded HTTP endpoint: submit image bytes, read results and artefacts. (The full
// authenticated API with tenants is the gRPC/HTTP gateway of the ingest service.)
import http from 'node:http';
import { httpStatusOf, type Config, type Logger } from '@tampertrace/shared';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { Embedded } from './embedded.ts';
import { analysisJson } from './outputs.ts';

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

export async function serveHttp(embedded: Embedded, cfg: Config, log: Logger): Promise<http.Server> {
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
        const submitted = await embedded.submit(bytes, sourceName);
        if (url.searchParams.get('wait') !== 'true') return send(res, 202, submitted);
        const a = await embedded.result(submitted.analysisId);
        const status = a.status === AnalysisStatus.REJECTED && a.error ? httpStatusOf(a.error.code) : 200;
        return send(res, status, analysisJson(a));
      }
      const m = /^\/v1\/analyses\/([0-9a-f-]{36})(?:\/(mask|overlay|heatmap)\.png)?$/.exec(url.pathname);
      if (req.method === 'GET' && m) {
        const a = embedded.lookup(m[1]);
        if (!a) return send(res, 404, { error: { code: 'NOT_FOUND', message: 'no such analysis' } });
        if (!m[2]) return send(res, 200, analysisJson(a));
        const ref = m[2] === 'overlay' ? await embedded.overlay(a) : a.artifacts?.[m[2] as 'mask' | 'heatmap'];
        if (!ref?.key) return send(res, 404, { error: { code: 'NOT_FOUND', message: `no ${m[2]} for this analysis` } });
        res.writeHead(200, { 'content-type': 'image/png' });
        return res.end(await embedded.store.get(ref.bucket, ref.key));
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
