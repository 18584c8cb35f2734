// A minimal OTLP/HTTP trace receiver for tests and benchmarks: what a collector would get, kept
// in memory. OTLP/JSON bodies (OTEL_EXPORTER_OTLP_PROTOCOL=http/json) are decoded into spans;
// protobuf bodies are only counted (the benchmark needs the export to happen, not its content).
import http from 'node:http';
import { gunzipSync } from 'node:zlib';

export interface ReceivedSpan {
  /** The exporting process's service.name resource attribute. */
  service: string;
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  startNs: bigint;
}

export interface OtlpReceiver {
  /** For OTEL_EXPORTER_OTLP_ENDPOINT (the exporters append /v1/traces). */
  endpoint: string;
  spans: ReceivedSpan[];
  /** Export requests and bytes received (any encoding). */
  requests: number;
  bytes: number;
  close(): Promise<void>;
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type KeyValue = { key: string; value?: AnyValue };

function attrs(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    out[kv.key] = v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue ?? ''));
  }
  return out;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const r: OtlpReceiver = { endpoint: '', spans: [], requests: 0, bytes: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      r.requests++;
      r.bytes += body.length;
      try {
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        if (req.url === '/v1/traces' && String(req.headers['content-type']).startsWith('application/json')) {
          const doc = JSON.parse(body.toString('utf8')) as {
            resourceSpans?: Array<{ resource?: { attributes?: KeyValue[] }; scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }> }>;
          };
          for (const rs of doc.resourceSpans ?? []) {
            const service = String(attrs(rs.resource?.attributes)['service.name'] ?? '');
            for (const ss of rs.scopeSpans ?? []) {
              for (const s of ss.spans ?? []) {
                r.spans.push({
                  service,
                  traceId: String(s.traceId),
                  spanId: String(s.spanId),
                  parentSpanId: String(s.parentSpanId ?? ''),
                  name: String(s.name),
                  kind: Number(s.kind ?? 0),
                  attributes: attrs(s.attributes as KeyValue[]),
                  statusCode: Number((s.status as { code?: number } | undefined)?.code ?? 0),
                  startNs: BigInt(String(s.startTimeUnixNano ?? '0')),
                });
              }
            }
          }
        }
        res.writeHead(200, { 'content-type': String(req.headers['content-type'] ?? 'application/json') });
        res.end(String(req.headers['content-type']).startsWith('application/json') ? '{}' : undefined);
      } catch (err) {
        res.writeHead(400);
        res.end(String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as { port: number };
  r.endpoint = `http://127.0.0.1:${addr.port}`;
  r.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return r;
}
