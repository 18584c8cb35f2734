// The public API's error boundary (issue #19): no request can take a server down, and bad input
// always gets a typed answer from the error map, never INTERNAL. Fixed regressions for the cases
// found by hand, then property-based fuzzing (fast-check, fixed seed) of the real HTTP server
// (raw sockets, so any request line reaches it) and of every method of every real gRPC server
// (raw bytes through a Buffer codec).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import type { DescService } from '@bufbuild/protobuf';
import { ERROR_CODE_TRAILER, createGrpcServer, grpc, httpStatusOf, limitsOf, loadConfig, startGrpcServer, stopGrpcServer, type GrpcApi } from '@tampertrace/shared';
import { ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AuditService } from '@tampertrace/shared/gen/tampertrace/v1/audit_pb';
import { IngestService } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { ExplanationService, FaceDetectionService, ForgeryLocalizationService } from '@tampertrace/shared/gen/tampertrace/v1/stages_pb';
import { serveIngest } from '@tampertrace/ingest/service';
import { faceDetectionGrpc } from '@tampertrace/face-detection/grpc';
import { forgeryLocalizationGrpc } from '@tampertrace/forgery-localization/grpc';
import { explanationGrpc } from '@tampertrace/explanation-generation/grpc';
import { loadModels, startEmbedded, type Embedded } from './embedded.ts';

/** Printed with every failure; FUZZ_SEED=<n> replays another sequence. */
const SEED = Number(process.env.FUZZ_SEED ?? 1919);
const RUNS = Number(process.env.FUZZ_RUNS ?? 400);

let embedded: Embedded;
let servers: Awaited<ReturnType<typeof serveIngest>>;
let stages: GrpcApi;
let stagesPort: number;
let models: Awaited<ReturnType<typeof loadModels>>;

before(async () => {
  const home = await mkdtemp(path.join(os.tmpdir(), 'tt-fuzz-'));
  const cfg = loadConfig({
    ...process.env,
    TAMPERTRACE_HOME: home,
    TAMPERTRACE_HTTP_PORT: '0',
    TAMPERTRACE_GRPC_PORT: '0',
    TAMPERTRACE_MAX_INPUT_BYTES: '400000',
    TAMPERTRACE_URL_TIMEOUT_MS: '2000',
  });
  const log = pino({ level: 'silent' });
  embedded = await startEmbedded(cfg, log);
  servers = await serveIngest(embedded.ingest, cfg);
  models = await loadModels(cfg);
  stages = createGrpcServer(
    cfg,
    [
      faceDetectionGrpc({ detector: models.detector, limits: limitsOf(cfg) }, cfg, log),
      forgeryLocalizationGrpc({ localizer: models.localizer, model: models.locEntry, limits: limitsOf(cfg) }, cfg, log),
      explanationGrpc({ explainer: models.explainer }, cfg, log),
    ],
    log,
  );
  stagesPort = await startGrpcServer(stages, cfg, log);
  stages.health.serving();
});

after(async () => {
  await servers?.stop();
  if (stages) await stopGrpcServer(stages);
  await Promise.all([models?.detector.close(), models?.model.close()]);
  await embedded?.close();
});

// ---------------------------------------------------------------------------------------------
// HTTP over a raw socket: the request line is sent as is, so malformed targets reach the server.

interface RawResponse {
  status: number;
  body: string;
}

function rawHttp(request: string | Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(servers.httpPort, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.setTimeout(20_000, () => sock.destroy(new Error('no answer within 20 s')));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!m) return reject(new Error(`no HTTP status line in ${JSON.stringify(text.slice(0, 200))}`));
      resolve({ status: Number(m[1]), body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    // Not end(): Node's HTTP server takes a half-closed connection for a client that left.
    sock.write(request);
  });
}

function request(method: string, target: string, headers: Record<string, string> = {}, body: Buffer = Buffer.alloc(0)): Buffer {
  const lines = [`${method} ${target} HTTP/1.1`, 'host: 127.0.0.1', 'connection: close', `content-length: ${body.length}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body]);
}

const auth = () => ({ authorization: `Bearer ${embedded.apiKey}` });

/** Every HTTP status the error map can answer with. */
const MAPPED = new Set(Object.values(ErrorCode).filter((v): v is number => typeof v === 'number').map((c) => httpStatusOf(c)));
/**
 * What an answer to any request may be: success, a status of the error map, the console's own
 * plain answers (redirect, method not allowed), or Node's parser refusing the request (400, 431).
 * Never a 500: nothing a caller sends is an internal error.
 */
function checkHttp(r: RawResponse, what: string): void {
  const ok = [200, 202, 308, 400, 405, 431].includes(r.status) || MAPPED.has(r.status);
  assert.ok(ok && r.status !== 500, `${what}: answered ${r.status} ${r.body.slice(0, 300)}`);
  if (r.status >= 400 && r.body.trimStart().startsWith('{')) {
    const code = (JSON.parse(r.body) as { error?: { code?: string } }).error?.code ?? '';
    assert.match(code, /^ERROR_CODE_[A-Z_]+$/, `${what}: error code ${code}`);
    assert.notEqual(code, 'ERROR_CODE_INTERNAL', `${what}: ${r.body.slice(0, 300)}`);
  }
}

async function httpAlive(): Promise<void> {
  const r = await rawHttp(request('GET', '/healthz'));
  assert.equal(r.status, 200);
}

/** A ListAnalyses page token as the server makes them: base64url of "<ms>.<uuid>", with any digits. */
const pageToken = fc.oneof(
  fc.tuple(fc.stringMatching(/^\d{1,16}$/), fc.uuid()).map(([ms, id]) => Buffer.from(`${ms}.${id}`).toString('base64url')),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64url')),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64')),
  fc.string({ maxLength: 40 }),
);

// ---------------------------------------------------------------------------------------------
// Fixed regressions: each case found by hand.

test('GET //x:-1 (a target no URL parser takes) is refused as INVALID_MESSAGE and the server stays up', async () => {
  for (const target of ['//x:-1', '//[::1', 'http://', '//a:99999/v1/analyses']) {
    const r = await rawHttp(request('GET', target, auth()));
    checkHttp(r, target);
    assert.equal(r.status, httpStatusOf(ErrorCode.INVALID_MESSAGE), `${target}: ${r.status} ${r.body}`);
    assert.match(r.body, /ERROR_CODE_INVALID_MESSAGE/);
  }
  await httpAlive();
});

test('a well-formed ListAnalyses page token past the last date is INVALID_MESSAGE over HTTP and INVALID_ARGUMENT over gRPC', async () => {
  const token = Buffer.from('9999999999999999.00000000-0000-0000-0000-000000000000').toString('base64url');
  const r = await rawHttp(request('GET', `/v1/analyses?pageToken=${token}`, auth()));
  assert.equal(r.status, httpStatusOf(ErrorCode.INVALID_MESSAGE), r.body);
  assert.match(r.body, /ERROR_CODE_INVALID_MESSAGE/);
  const { ListAnalysesRequestSchema } = await import('@tampertrace/shared/gen/tampertrace/v1/ingest_pb');
  const { create, toBinary } = await import('@bufbuild/protobuf');
  const bytes = Buffer.from(toBinary(ListAnalysesRequestSchema, create(ListAnalysesRequestSchema, { pageToken: token })));
  const out = await rawCall(servers.grpcPort, IngestService, 'ListAnalyses', [bytes], true);
  assert.equal(out.code, grpc.status.INVALID_ARGUMENT, out.details);
  assert.equal(out.reason, 'INVALID_MESSAGE');
});

test('undecodable protobuf bytes to Submit, GetAnalysis and GetTrail are INVALID_ARGUMENT (INVALID_MESSAGE), not INTERNAL', async () => {
  // A length-delimited field 1 that claims 127 bytes and carries 2; a varint that never ends.
  for (const bytes of [Buffer.from([0x0a, 0x7f, 0x01, 0x02]), Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]) {
    for (const [service, method] of [
      [IngestService, 'Submit'],
      [IngestService, 'GetAnalysis'],
      [AuditService, 'GetTrail'],
    ] as const) {
      const out = await rawCall(servers.grpcPort, service, method, [bytes], true);
      assert.equal(out.code, grpc.status.INVALID_ARGUMENT, `${method}: ${out.code} ${out.details}`);
      assert.equal(out.reason, 'INVALID_MESSAGE', method);
    }
  }
  await grpcAlive();
});

// ---------------------------------------------------------------------------------------------
// gRPC with raw bytes: a client whose codec passes Buffers through, for any method of any service.

interface CallOutcome {
  code: grpc.status;
  details: string;
  /** The tt-error-code trailer. */
  reason?: string;
}

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };

function rawCall(port: number, service: DescService, method: string, messages: Buffer[], withKey: boolean): Promise<CallOutcome> {
  const m = service.methods.find((x) => x.name === method)!;
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  if (withKey) md.set('authorization', `Bearer ${embedded.apiKey}`);
  const path = `/${service.typeName}/${m.name}`;
  const opts = { deadline: Date.now() + 30_000 };
  const done = (resolve: (o: CallOutcome) => void) => (err: grpc.ServiceError | null) => {
    client.close();
    const reason = err?.metadata?.get(ERROR_CODE_TRAILER)[0];
    resolve(err ? { code: err.code, details: err.details, reason: typeof reason === 'string' ? reason : undefined } : { code: grpc.status.OK, details: '' });
  };
  return new Promise((resolve) => {
    const finish = done(resolve);
    switch (m.methodKind) {
      case 'unary':
        client.makeUnaryRequest(path, raw.serialize, raw.deserialize, messages[0] ?? Buffer.alloc(0), md, opts, (err) => finish(err));
        break;
      case 'server_streaming': {
        const call = client.makeServerStreamRequest(path, raw.serialize, raw.deserialize, messages[0] ?? Buffer.alloc(0), md, opts);
        call.on('data', () => {});
        call.on('error', (err: grpc.ServiceError) => finish(err));
        call.on('end', () => finish(null));
        break;
      }
      case 'client_streaming': {
        const call = client.makeClientStreamRequest(path, raw.serialize, raw.deserialize, md, opts, (err) => finish(err));
        for (const b of messages) call.write(b);
        call.end();
        break;
      }
      default:
        throw new Error(`no bidi methods expected, got ${method}`);
    }
  });
}

/**
 * Bad bytes get a typed refusal: a code other than INTERNAL/UNKNOWN, and, for every refusal the
 * services make themselves, the ErrorCode in the tt-error-code trailer.
 */
function checkGrpc(o: CallOutcome, what: string): void {
  assert.ok(![grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DEADLINE_EXCEEDED].includes(o.code), `${what}: ${grpc.status[o.code]} ${o.details}`);
  if (o.code !== grpc.status.OK) assert.ok(o.reason && o.reason in ErrorCode, `${what}: ${grpc.status[o.code]} without a typed reason (${o.details})`);
}

async function grpcAlive(): Promise<void> {
  const { GetAnalysisRequestSchema } = await import('@tampertrace/shared/gen/tampertrace/v1/ingest_pb');
  const { create, toBinary } = await import('@bufbuild/protobuf');
  const bytes = Buffer.from(toBinary(GetAnalysisRequestSchema, create(GetAnalysisRequestSchema, { analysisId: '00000000-0000-0000-0000-000000000000' })));
  assert.equal((await rawCall(servers.grpcPort, IngestService, 'GetAnalysis', [bytes], true)).code, grpc.status.NOT_FOUND);
}

/** Protobuf-shaped bytes: fields with valid and invalid tags, varints, lengths that lie, nested messages. */
const protoBytes: fc.Arbitrary<Buffer> = fc.letrec<{ msg: Buffer; field: Buffer }>((tie) => ({
  msg: fc.array(tie('field'), { maxLength: 6 }).map((fs) => Buffer.concat(fs)),
  field: fc.oneof(
    { depthSize: 'small' },
    // varint field
    fc.tuple(fc.integer({ min: 1, max: 20 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })).map(([n, v]) => Buffer.concat([varint(BigInt(n << 3)), varint(v)])),
    // length-delimited field, honest: strings, bytes, page tokens, ids, nested messages
    fc
      .tuple(
        fc.integer({ min: 1, max: 20 }),
        fc.oneof(
          fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b)),
          fc.uuid().map((s) => Buffer.from(s)),
          pageToken.map((s) => Buffer.from(s)),
          fc.webUrl().map((s) => Buffer.from(s)),
          tie('msg'),
        ),
      )
      .map(([n, b]) => Buffer.concat([varint(BigInt((n << 3) | 2)), varint(BigInt(b.length)), b])),
    // length-delimited field whose length lies
    fc.tuple(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 1 << 20 }), fc.uint8Array({ maxLength: 8 })).map(([n, len, b]) => Buffer.concat([varint(BigInt((n << 3) | 2)), varint(BigInt(len)), Buffer.from(b)])),
    // fixed32/fixed64, group markers, wire types 6/7, truncated varints
    fc.tuple(fc.integer({ min: 0, max: 0x7ff }), fc.uint8Array({ minLength: 0, maxLength: 9 })).map(([tag, b]) => Buffer.concat([varint(BigInt(tag)), Buffer.from(b)])),
    fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b)),
  ),
})).msg;

function varint(v: bigint): Buffer {
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

test('random protobuf-shaped bytes to every method of every gRPC server get typed refusals and no server goes down', async () => {
  const targets: Array<{ port: () => number; service: DescService }> = [
    { port: () => servers.grpcPort, service: IngestService },
    { port: () => servers.grpcPort, service: AuditService },
    { port: () => stagesPort, service: FaceDetectionService },
    { port: () => stagesPort, service: ForgeryLocalizationService },
    { port: () => stagesPort, service: ExplanationService },
  ];
  const methods = targets.flatMap((t) => t.service.methods.map((m) => ({ ...t, method: m.name })));
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...methods), fc.array(protoBytes, { minLength: 1, maxLength: 3 }), fc.boolean(), async (t, messages, withKey) => {
      const o = await rawCall(t.port(), t.service, t.method, messages, withKey);
      checkGrpc(o, `${t.service.typeName}/${t.method} ${messages.map((m) => m.toString('hex')).join(',')}`);
    }),
    { numRuns: RUNS, seed: SEED, includeErrorInReport: true },
  );
  await grpcAlive();
});

// ---------------------------------------------------------------------------------------------
// HTTP fuzzing: request targets shaped like the routes, URLs, authorities and percent-encodings.

const segment = fc.oneof(
  fc.constantFrom('v1', 'analyses', 'analyses:batch', 'audit', 'trail', 'records', 'export', 'verify', 'checkpoints', 'events', 'mask', 'overlay', 'heatmap', 'original', 'overlay.png', 'console', 'healthz', '', '.', '..'),
  fc.uuid(),
  fc.webSegment(),
  fc.stringMatching(/^(%[0-9A-Fa-f]{2}|%[0-9A-Fa-f]?|[a-z:@\[\]])+$/),
);
const query = fc
  .array(
    fc.tuple(
      fc.constantFrom('pageToken', 'pageSize', 'status', 'verdict', 'minForgeryScore', 'wait', 'reanalyze', 'analysisId', 'contentSha256', 'from', 'to', 'format', 'fromSequence', 'toSequence', 'since', 'errorCode', 'stage'),
      fc.oneof(pageToken, fc.stringMatching(/^-?\d{0,20}(\.\d{0,5})?(e[+-]?\d{1,4})?$/), fc.constantFrom('true', 'csv', 'jsonl', 'REJECTED', 'COMPLETED', '2024-02-30T25:61:00Z', '+275760-09-13T00:00:00.000Z', 'NaN', '%', '%zz'), fc.webQueryParameters()),
    ),
    { maxLength: 4 },
  )
  .map((kv) => (kv.length ? '?' + kv.map(([k, v]) => `${k}=${v}`).join('&') : ''));
const target = fc.oneof(
  fc.tuple(fc.array(segment, { minLength: 1, maxLength: 5 }), query).map(([s, q]) => '/' + s.join('/') + q),
  fc.tuple(fc.webAuthority({ withPort: true, withUserInfo: true }), fc.array(segment, { maxLength: 3 }), query).map(([a, s, q]) => `//${a}/${s.join('/')}${q}`),
  fc.tuple(fc.constantFrom('//', '///', 'http://', '//x:'), fc.oneof(fc.integer({ min: -99999, max: 999999 }).map(String), fc.webAuthority()), query).map(([p, a, q]) => p + a + q),
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  fc.constantFrom('*', '/', '/v1/analyses', '/v1/analyses:batch', '/v1/audit/verify'),
);
const header = fc.oneof(
  fc.constantFrom<[string, string]>(['content-type', 'application/json'], ['content-type', 'application/octet-stream'], ['transfer-encoding', 'chunked'], ['x-source-name', '=HYPERLINK("x")'], ['authorization', 'Bearer']),
  fc.tuple(fc.constantFrom('authorization', 'x-api-key', 'content-type', 'x-source-name', 'accept', 'range'), fc.stringMatching(/^[\x20-\x7e]{0,40}$/)),
);
const body = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
  fc.jsonValue({ maxDepth: 3 }).map((j) => Buffer.from(JSON.stringify(j))),
  fc
    .tuple(
      fc.record({ content: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64')), url: fc.webUrl(), sourceName: fc.string(), reanalyze: fc.boolean() }, { requiredKeys: [] }),
      fc.boolean(),
    )
    .map(([r, batch]) => Buffer.from(JSON.stringify(batch ? { items: [r, r] } : r))),
  protoBytes,
);

test('random requests to the HTTP server get typed answers (never 500) and the server stays up', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'GET', 'POST'),
      target,
      fc.array(header, { maxLength: 3 }),
      fc.boolean(),
      body,
      async (method, t, hs, withKey, b) => {
        const headers: Record<string, string> = Object.fromEntries(hs.filter(([k]) => k !== 'transfer-encoding'));
        if (withKey) Object.assign(headers, auth());
        const r = await rawHttp(request(method, t, headers, method === 'GET' || method === 'HEAD' ? Buffer.alloc(0) : b));
        // HEAD answers carry no body to check.
        if (method !== 'HEAD') checkHttp(r, `${method} ${t}`);
        else assert.notEqual(r.status, 500, `HEAD ${t}`);
      },
    ),
    { numRuns: RUNS * 2, seed: SEED, includeErrorInReport: true },
  );
  await httpAlive();
});
