// A soak of the public API with good, bad and hostile requests mixed (issue #19), part of
// `make bench-overload`. For BENCH_HOSTILE_S seconds (default 300) BENCH_HOSTILE_WORKERS loops
// (default 8) each send one request after another, drawn at random from the kinds below, to the
// ingest service's gRPC and HTTP ports on loopback, per mode (BENCH_HOSTILE_MODE: embedded, where
// the pipeline is a `tampertrace serve` process of its own, distributed, or both, the default when
// the local servers' addresses are set). Nothing leaves loopback: the SSRF kinds name loopback,
// link-local and private addresses, which ingest must refuse before connecting.
//
// Reported: crashes (a serving process that is no longer alive at the end, or exits during the
// run: must be 0), answers by code per class (good, bad, hostile), INTERNAL / 500 answers to bad
// or hostile requests (must be 0: every bad input has a typed code), latency p50/p95/p99 of the
// good requests, and the resident memory of every process, sampled every 2 s.
//
// Usage: `make bench-overload` (after the overload run), `make bench-overload parts=hostile`, or
// `BENCH_HOSTILE_S=60 node --import tsx bench/hostile.ts`. BENCH_HOSTILE_EXCLUDE: kinds to leave
// out, comma-separated. BENCH_OUT_HOSTILE: the JSON (default bench/results/hostile.json).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import sharp from 'sharp';
import { REPO_ROOT, grpc, rng } from '@tampertrace/shared';
import { GetAnalysisRequestSchema, ListAnalysesRequestSchema, SubmitRequestSchema } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { cameraPng } from '@tampertrace/shared/testing';
import { distributedReady, startDistributed } from './distributed.ts';
import { pcts } from './stats.ts';

const SECONDS = Number(process.env.BENCH_HOSTILE_S ?? 300);
const WORKERS = Number(process.env.BENCH_HOSTILE_WORKERS ?? 8);
if (!(SECONDS > 0 && WORKERS > 0)) throw new Error('BENCH_HOSTILE_S and BENCH_HOSTILE_WORKERS must be positive numbers');
const EXCLUDE = new Set((process.env.BENCH_HOSTILE_EXCLUDE ?? '').split(',').filter(Boolean));
const MODES = (process.env.BENCH_HOSTILE_MODE || (distributedReady ? 'embedded,distributed' : 'embedded')).split(',');
for (const m of MODES) if (!['embedded', 'distributed'].includes(m)) throw new Error(`BENCH_HOSTILE_MODE: embedded, distributed or both, got ${m}`);
const OUT = path.resolve(process.env.BENCH_OUT_HOSTILE || path.join(REPO_ROOT, 'bench', 'results', 'hostile.json'));
const BIN = path.join(REPO_ROOT, 'services', 'tampertrace', 'bin', 'tampertrace.mjs');
/** The embedded server's input limit: small, so that oversize bodies cost little to send. */
const MAX_INPUT_BYTES = 4_000_000;
const REQUEST_TIMEOUT_MS = 30_000;
const SAMPLE_MS = 2000;

const note = (what: string) => process.stderr.write(`[hostile ${new Date().toISOString().slice(11, 19)}] ${what}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where the API is, its key, and the processes behind it. */
interface Target {
  grpcAddress: string;
  httpUrl: string;
  apiKey: string;
  /** Largest body the server takes (its TAMPERTRACE_MAX_INPUT_BYTES). */
  maxInputBytes: number;
  /** Pid of each serving process; undefined once it has exited. */
  pids(): Record<string, number | undefined>;
  /** Resident memory of every process behind the API (serving processes and servers), MiB. */
  rssMiB(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

type Class = 'good' | 'bad' | 'hostile';
interface Outcome {
  /** "http 404", "grpc NOT_FOUND/NOT_FOUND" (status / tt-error-code), "closed", "timeout". */
  code: string;
  ms: number;
}
interface Kind {
  name: string;
  cls: Class;
  weight: number;
  run(t: Target, ctx: Ctx): Promise<Outcome>;
}
/** Analysis ids the good requests made, for the reads. */
interface Ctx {
  ids: string[];
  rand: () => number;
}

// ---- clients -------------------------------------------------------------------------------

async function httpReq(t: Target, pathAndQuery: string, init: RequestInit & { key?: string | null } = {}): Promise<Outcome> {
  const t0 = performance.now();
  const headers = new Headers(init.headers);
  const key = init.key === undefined ? t.apiKey : init.key;
  if (key !== null) headers.set('authorization', `Bearer ${key}`);
  try {
    const res = await fetch(t.httpUrl + pathAndQuery, { ...init, headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    await res.arrayBuffer();
    return { code: `http ${res.status}`, ms: performance.now() - t0 };
  } catch (err) {
    return { code: (err as Error).name === 'TimeoutError' ? 'timeout' : 'closed', ms: performance.now() - t0 };
  }
}

/** Bytes as they are, on a socket of their own: requests fetch would refuse to send. */
function rawHttp(t: Target, bytes: string | Buffer): Promise<Outcome> {
  const t0 = performance.now();
  const { hostname, port } = new URL(t.httpUrl);
  return new Promise((resolve) => {
    let got = '';
    let settled = false;
    const done = (code: string) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      resolve({ code, ms: performance.now() - t0 });
    };
    const sock = net.connect(Number(port), hostname, () => sock.write(bytes));
    sock.setTimeout(REQUEST_TIMEOUT_MS, () => done('timeout'));
    sock.on('data', (d) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      if (m) done(`http ${m[1]}`);
    });
    sock.on('error', () => done('closed'));
    sock.on('close', () => done('closed'));
  });
}

const clients = new Map<string, grpc.Client>();
function rawClient(address: string): grpc.Client {
  let c = clients.get(address);
  if (!c) {
    c = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
    clients.set(address, c);
  }
  return c;
}

/** A unary gRPC call with these request bytes, whatever they are. */
function grpcRaw(t: Target, method: string, bytes: Uint8Array, key: string | null = t.apiKey): Promise<Outcome> {
  const t0 = performance.now();
  const md = new grpc.Metadata();
  if (key !== null) md.set('authorization', `Bearer ${key}`);
  return new Promise((resolve) => {
    rawClient(t.grpcAddress).makeUnaryRequest(
      method,
      (b: Uint8Array) => Buffer.from(b),
      (b: Buffer) => b,
      bytes,
      md,
      { deadline: Date.now() + REQUEST_TIMEOUT_MS },
      (err: grpc.ServiceError | null) => {
        const ms = performance.now() - t0;
        if (!err) return resolve({ code: 'grpc OK', ms });
        const reason = err.metadata?.get('tt-error-code')[0];
        resolve({ code: `grpc ${grpc.status[err.code]}${reason ? `/${String(reason)}` : ''}`, ms });
      },
    );
  });
}

const INGEST = '/tampertrace.v1.IngestService/';
const AUDIT = '/tampertrace.v1.AuditService/';
const UNARY_METHODS = [`${INGEST}Submit`, `${INGEST}GetAnalysis`, `${INGEST}GetArtifact`, `${INGEST}ListAnalyses`, `${AUDIT}GetTrail`, `${AUDIT}QueryRecords`, `${AUDIT}VerifyChain`, `${AUDIT}ListCheckpoints`];

/**
 * Bytes shaped like protobuf: fields with random numbers and wire types, varints that run on,
 * lengths that point past the end, groups that never close, and plain noise.
 */
function protobufish(rand: () => number): Uint8Array {
  const out: number[] = [];
  const varint = (v: number) => {
    while (v > 0x7f) {
      out.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
  };
  const fields = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < fields; i++) {
    const wire = Math.floor(rand() * 8); // 6 and 7 do not exist
    varint((1 + Math.floor(rand() * 20)) * 8 + wire);
    if (wire === 0) varint(Math.floor(rand() * 2 ** 31));
    else if (wire === 1) out.push(...randomBytes(8));
    else if (wire === 2) {
      const len = Math.floor(rand() * 64);
      varint(rand() < 0.2 ? len + 1000 : len); // sometimes longer than what follows
      out.push(...randomBytes(len));
    } else if (wire === 5) out.push(...randomBytes(4));
    else if (rand() < 0.5) out.push(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01); // an 11-byte varint
  }
  return rand() < 0.15 ? randomBytes(1 + Math.floor(rand() * 200)) : Uint8Array.from(out);
}

// ---- the mix --------------------------------------------------------------------------------

const pick = <T>(xs: readonly T[], rand: () => number): T => xs[Math.floor(rand() * xs.length)];
let images: Buffer[] = [];
const knownId = (ctx: Ctx) => (ctx.ids.length ? pick(ctx.ids, ctx.rand) : 'a1b2c3');

const ALL_KINDS: Kind[] = [
  // Good: what a client does, with the tenant's key.
  {
    name: 'grpc-submit',
    cls: 'good',
    weight: 6,
    async run(t, ctx) {
      // One of a few small images (deduplicated after the first time), now and then analysed again.
      const req = create(SubmitRequestSchema, { source: { case: 'content', value: pick(images, ctx.rand) }, sourceName: 'soak.png', reanalyze: ctx.rand() < 0.1 });
      const o = await grpcRaw(t, `${INGEST}Submit`, toBinary(SubmitRequestSchema, req));
      return o;
    },
  },
  { name: 'grpc-get', cls: 'good', weight: 5, run: (t, ctx) => grpcRaw(t, `${INGEST}GetAnalysis`, toBinary(GetAnalysisRequestSchema, create(GetAnalysisRequestSchema, { analysisId: knownId(ctx) }))) },
  { name: 'grpc-list', cls: 'good', weight: 3, run: (t) => grpcRaw(t, `${INGEST}ListAnalyses`, toBinary(ListAnalysesRequestSchema, create(ListAnalysesRequestSchema, { pageSize: 10 }))) },
  { name: 'http-get', cls: 'good', weight: 5, run: (t, ctx) => httpReq(t, `/v1/analyses/${knownId(ctx)}`) },
  { name: 'http-list', cls: 'good', weight: 3, run: (t) => httpReq(t, '/v1/analyses?pageSize=5&status=COMPLETED') },
  { name: 'http-healthz', cls: 'good', weight: 2, run: (t) => httpReq(t, '/healthz', { key: null }) },
  { name: 'http-audit-query', cls: 'good', weight: 2, run: (t) => httpReq(t, '/v1/audit/records?pageSize=5') },

  // Bad: mistakes a client makes; each must get its typed code.
  { name: 'http-unknown-id', cls: 'bad', weight: 2, run: (t) => httpReq(t, `/v1/analyses/${randomBytes(8).toString('hex')}`) },
  { name: 'http-bad-page-token', cls: 'bad', weight: 2, run: (t, ctx) => httpReq(t, `/v1/analyses?pageToken=${pick(['!!!', 'eyJ0IjoiOTk5OTk5LTAxLTAxIn0', Buffer.from('{"t":"x","s":-1}').toString('base64url'), 'A'.repeat(900)], ctx.rand)}`) },
  { name: 'http-bad-filter', cls: 'bad', weight: 1, run: (t) => httpReq(t, '/v1/analyses?status=MAYBE&minForgeryScore=2') },
  { name: 'http-no-key', cls: 'bad', weight: 1, run: (t) => httpReq(t, '/v1/analyses', { key: null }) },
  { name: 'http-not-an-image', cls: 'bad', weight: 1, run: (t) => httpReq(t, '/v1/analyses', { method: 'POST', body: 'just text, no image' }) },
  { name: 'http-bad-json', cls: 'bad', weight: 1, run: (t) => httpReq(t, '/v1/analyses', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"source": {"url": 12' }) },
  { name: 'http-wrong-method', cls: 'bad', weight: 1, run: (t) => httpReq(t, '/v1/analyses', { method: 'DELETE' }) },
  { name: 'grpc-unknown-id', cls: 'bad', weight: 1, run: (t) => grpcRaw(t, `${INGEST}GetAnalysis`, toBinary(GetAnalysisRequestSchema, create(GetAnalysisRequestSchema, { analysisId: 'no-such-analysis' }))) },
  { name: 'grpc-empty-submit', cls: 'bad', weight: 1, run: (t) => grpcRaw(t, `${INGEST}Submit`, new Uint8Array()) },

  // Hostile: what an attacker sends.
  // Request targets that parse as an authority (issue #19: `GET //x:-1` once killed ingest).
  {
    name: 'http-authority-path',
    cls: 'hostile',
    weight: 1,
    run: (t, ctx) => rawHttp(t, `GET ${pick(['//x:-1', '//[::1', '//a:b@c:99999/v1/analyses', '///x', '//127.0.0.1:0'], ctx.rand)} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`),
  },
  {
    name: 'http-malformed-path',
    cls: 'hostile',
    weight: 3,
    run: (t, ctx) =>
      rawHttp(t, `GET ${pick(['/%', '/v1/analyses/%ZZ', '/v1/analyses/..%2f..%2fetc%2fpasswd', '/../../etc/passwd', 'http://evil.example/v1/analyses', '*', `/${'a'.repeat(9000)}`, '/v1/analyses/%00', '/v1/analyses?pageToken=%', '/v1/audit/export?format=%FF'], ctx.rand)} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${t.apiKey}\r\nConnection: close\r\n\r\n`),
  },
  { name: 'http-bad-host', cls: 'hostile', weight: 1, run: (t, ctx) => rawHttp(t, `GET /v1/analyses HTTP/1.1\r\nHost: ${pick(['x:-1', '[::1', 'a b', '%', ''], ctx.rand)}\r\nConnection: close\r\n\r\n`) },
  { name: 'http-garbage', cls: 'hostile', weight: 1, run: () => rawHttpNoise() },
  { name: 'http-bad-token', cls: 'hostile', weight: 2, run: (t, ctx) => httpReq(t, '/v1/analyses', { key: pick([randomBytes(24).toString('base64url'), 'tt_' + 'A'.repeat(4000), '\u0000', `${t.apiKey}x`, 'Basic Zm9vOmJhcg=='], ctx.rand).replace(/[^\x21-\x7e]/g, '?') }) },
  { name: 'http-huge-header', cls: 'hostile', weight: 1, run: (t) => httpReq(t, '/v1/analyses', { headers: { 'x-filler': 'a'.repeat(20_000) } }) },
  { name: 'http-oversize-body', cls: 'hostile', weight: 1, run: (t) => httpReq(t, '/v1/analyses', { method: 'POST', body: new Uint8Array(t.maxInputBytes + 1) }) },
  { name: 'http-oversize-json', cls: 'hostile', weight: 1, run: (t) => httpReq(t, '/v1/analyses', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"sourceName":"${'a'.repeat(t.maxInputBytes * 2)}"}` }) },
  { name: 'grpc-undecodable', cls: 'hostile', weight: 4, run: (t, ctx) => grpcRaw(t, pick(UNARY_METHODS, ctx.rand), protobufish(ctx.rand)) },
  { name: 'grpc-undecodable-no-key', cls: 'hostile', weight: 1, run: (t, ctx) => grpcRaw(t, pick(UNARY_METHODS, ctx.rand), protobufish(ctx.rand), null) },
  { name: 'grpc-wrong-key', cls: 'hostile', weight: 2, run: (t, ctx) => grpcRaw(t, `${INGEST}GetAnalysis`, toBinary(GetAnalysisRequestSchema, create(GetAnalysisRequestSchema, { analysisId: knownId(ctx) })), `tt_${randomBytes(20).toString('base64url')}`) },
  {
    name: 'grpc-oversize',
    cls: 'hostile',
    weight: 1,
    run: (t) => grpcRaw(t, `${INGEST}Submit`, toBinary(SubmitRequestSchema, create(SubmitRequestSchema, { source: { case: 'content', value: new Uint8Array(t.maxInputBytes + 2 * 2 ** 20) } }))),
  },
  {
    name: 'grpc-ssrf-url',
    cls: 'hostile',
    weight: 2,
    run: (t, ctx) =>
      grpcRaw(
        t,
        `${INGEST}Submit`,
        toBinary(
          SubmitRequestSchema,
          create(SubmitRequestSchema, {
            source: {
              case: 'url',
              value: pick(
                [
                  `https://127.0.0.1:${new URL(t.httpUrl).port}/healthz`,
                  'https://localhost/x.jpg',
                  'https://[::1]/x.jpg',
                  'https://169.254.169.254/latest/meta-data/',
                  'https://0x7f000001/x.jpg',
                  'https://2130706433/x.jpg',
                  'https://[::ffff:127.0.0.1]/x.jpg',
                  'https://10.0.0.1/x.jpg',
                  'http://127.0.0.1/x.jpg',
                  'file:///etc/passwd',
                  'https://127.1/x.jpg',
                ],
                ctx.rand,
              ),
            },
          }),
        ),
      ),
  },
];
const KINDS = ALL_KINDS.filter((k) => !EXCLUDE.has(k.name));

/** Random bytes where an HTTP request line should be. */
let noiseTarget: Target;
function rawHttpNoise(): Promise<Outcome> {
  return rawHttp(noiseTarget, Buffer.concat([randomBytes(64 + Math.floor(Math.random() * 400)), Buffer.from('\r\n\r\n')]));
}

// ---- targets --------------------------------------------------------------------------------

/** `tampertrace serve` in a process of its own, on a fresh data folder, ports picked by the system. */
async function embeddedTarget(): Promise<Target> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'tt-hostile-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TAMPERTRACE_HOME: home,
    TAMPERTRACE_HTTP_PORT: '0',
    TAMPERTRACE_GRPC_PORT: '0',
    TAMPERTRACE_OPS_PORT: '0',
    TAMPERTRACE_LOG_LEVEL: 'warn',
    TAMPERTRACE_MAX_INPUT_BYTES: String(MAX_INPUT_BYTES),
  };
  for (const k of ['TAMPERTRACE_DATABASE_URL', 'TAMPERTRACE_KAFKA_BROKERS', 'TAMPERTRACE_S3_ENDPOINT', 'TAMPERTRACE_TENANT']) delete env[k];
  const child: ChildProcess = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d));
  child.stderr!.on('data', (d: Buffer) => (log = (log + d).slice(-20_000)));
  // The data folder's lock names the server's addresses once it listens (services/tampertrace/src/data-lock.ts).
  let lock: { grpc?: string; http?: string } = {};
  for (let i = 0; i < 1800 && !lock.grpc; i++) {
    if (child.exitCode !== null) throw new Error(`serve exited at start:\n${log}`);
    await sleep(100);
    lock = await readFile(path.join(home, 'lock'), 'utf8').then((s) => JSON.parse(s), () => ({}));
  }
  if (!lock.grpc || !lock.http) throw new Error(`serve did not listen within 180 s:\n${log}`);
  const apiKey = (await readFile(path.join(home, 'api-key'), 'utf8')).trim();
  return {
    grpcAddress: lock.grpc,
    httpUrl: lock.http,
    apiKey,
    maxInputBytes: MAX_INPUT_BYTES,
    pids: () => ({ 'tampertrace serve': child.exitCode === null && child.signalCode === null ? child.pid : undefined }),
    async rssMiB(): Promise<Record<string, number>> {
      const v = child.pid && child.exitCode === null ? await processRssMiB(child.pid) : undefined;
      return v === undefined ? {} : { 'tampertrace serve': v };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      } else note(`serve had exited (${child.exitCode ?? child.signalCode}); its last output:\n${log.slice(-4000)}`);
      await rm(home, { recursive: true, force: true });
    },
  };
}

async function distributedTarget(): Promise<Target> {
  note('distributed: starting the services');
  const d = await startDistributed();
  const tenant = await d.apiTenant('hostile', { ratePerS: 10_000, burst: 10_000, maxInFlight: 8 });
  return {
    ...tenant,
    maxInputBytes: 50 * 2 ** 20, // the services' default TAMPERTRACE_MAX_INPUT_BYTES
    pids: () => d.servicePids(),
    rssMiB: () => d.rssMiB(), // the services, Kafka and S3Proxy
    stop: async () => void (await d.stop()),
  };
}

async function processRssMiB(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const kib = status && /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return kib ? Number(kib) / 1024 : undefined;
}

// ---- the run ---------------------------------------------------------------------------------

interface Record_ {
  kind: string;
  cls: Class;
  code: string;
  ms: number;
}

async function soak(mode: string, t: Target) {
  noiseTarget = t;
  const ctx: Ctx = { ids: [], rand: rng(19) };
  const records: Record_[] = [];
  const names = Object.keys(t.pids());
  const startPids = t.pids();
  const exits: Array<{ process: string; atS: number; inFlight: string[]; lastAnswered: string[] }> = [];
  const samples: Array<{ t: number; rssMiB: Record<string, number> }> = [];
  const inFlight = new Set<string>();
  /** The requests answered last (the one that killed a process has often been answered with "closed" already). */
  const lastAnswered = () => records.slice(-12).map((r) => `${r.kind}: ${r.code}`);
  const total = KINDS.reduce((s, k) => s + k.weight, 0);
  const draw = () => {
    let x = ctx.rand() * total;
    for (const k of KINDS) if ((x -= k.weight) < 0) return k;
    return KINDS[0];
  };
  // A few analyses to read, made before the clock starts.
  for (const img of images) {
    const o = await grpcRaw(t, `${INGEST}Submit`, toBinary(SubmitRequestSchema, create(SubmitRequestSchema, { source: { case: 'content', value: img }, sourceName: 'seed.png' })));
    if (o.code !== 'grpc OK') throw new Error(`${mode}: seeding failed: ${o.code}`);
  }
  const list = await fetch(`${t.httpUrl}/v1/analyses?pageSize=50`, { headers: { authorization: `Bearer ${t.apiKey}` } }).then((r) => r.json() as Promise<{ analyses?: Array<{ analysisId: string }> }>);
  ctx.ids.push(...(list.analyses ?? []).map((a) => a.analysisId));
  note(`${mode}: ${WORKERS} loops for ${SECONDS} s, ${KINDS.length} kinds of request, ${ctx.ids.length} analyses to read`);

  const start = performance.now();
  const end = start + SECONDS * 1000;
  let running = true;
  const watch = (async () => {
    while (running) {
      const pids = t.pids();
      for (const n of names) {
        if (pids[n] === undefined && startPids[n] !== undefined && !exits.some((e) => e.process === n)) {
          exits.push({ process: n, atS: (performance.now() - start) / 1000, inFlight: [...inFlight], lastAnswered: lastAnswered() });
          note(`${mode}: ${n} is gone ${((performance.now() - start) / 1000).toFixed(1)} s in; requests in flight: ${[...inFlight].join(', ')}`);
        }
      }
      samples.push({ t: (performance.now() - start) / 1000, rssMiB: await t.rssMiB() });
      await sleep(SAMPLE_MS);
    }
  })();
  let seq = 0;
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      while (performance.now() < end && exits.length === 0) {
        // A serving process that died ends the run at once: what follows would only measure its absence.
        const pids = t.pids();
        const gone = names.filter((n) => pids[n] === undefined && startPids[n] !== undefined && !exits.some((e) => e.process === n));
        for (const n of gone) exits.push({ process: n, atS: (performance.now() - start) / 1000, inFlight: [...inFlight], lastAnswered: lastAnswered() });
        if (gone.length) note(`${mode}: ${gone.join(', ')} gone ${((performance.now() - start) / 1000).toFixed(1)} s in; requests in flight: ${[...inFlight].join(', ')}`);
        if (exits.length) break;
        const k = draw();
        const tag = `${k.name}#${seq++}`;
        inFlight.add(tag);
        const o = await k.run(t, ctx).catch((err: unknown) => ({ code: `client error: ${(err as Error).message.slice(0, 60)}`, ms: 0 }));
        inFlight.delete(tag);
        records.push({ kind: k.name, cls: k.cls, code: o.code, ms: o.ms });
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  // A crash may show a moment after the request that caused it.
  await sleep(SAMPLE_MS + 500);
  running = false;
  await watch;
  const alive = t.pids();

  const byClass = (cls: Class) => {
    const codes: Record<string, number> = {};
    for (const r of records) if (r.cls === cls) codes[r.code] = (codes[r.code] ?? 0) + 1;
    return Object.fromEntries(Object.entries(codes).sort((a, b) => b[1] - a[1]));
  };
  const internal = records.filter((r) => r.cls !== 'good' && /^(http 5\d\d|grpc (INTERNAL|UNKNOWN))/.test(r.code) && !/^http 503|^grpc UNAVAILABLE/.test(r.code));
  const internalByKind: Record<string, Record<string, number>> = {};
  for (const r of internal) (internalByKind[r.kind] ??= {})[r.code] = (internalByKind[r.kind]?.[r.code] ?? 0) + 1;
  const good = records.filter((r) => r.cls === 'good');
  const goodOk = good.filter((r) => /^(http 2\d\d|grpc OK)$/.test(r.code));
  const perGoodKind = Object.fromEntries(
    KINDS.filter((k) => k.cls === 'good').map((k) => {
      const ms = goodOk.filter((r) => r.kind === k.name).map((r) => r.ms);
      return [k.name, { answered: ms.length, ...pcts(ms) }];
    }),
  );
  const peak: Record<string, number> = {};
  const last: Record<string, number> = {};
  for (const s of samples) for (const [n, v] of Object.entries(s.rssMiB)) (peak[n] = Math.max(peak[n] ?? 0, v)), (last[n] = v);
  const first = samples[0]?.rssMiB ?? {};
  return {
    mode,
    seconds,
    workers: WORKERS,
    requests: records.length,
    perClass: { good: good.length, bad: records.filter((r) => r.cls === 'bad').length, hostile: records.filter((r) => r.cls === 'hostile').length },
    /** Serving processes that exited during the run or are not alive at the end (aim: none). */
    crashes: exits.length + names.filter((n) => alive[n] === undefined && !exits.some((e) => e.process === n)).length,
    exits,
    aliveAtEnd: Object.fromEntries(names.map((n) => [n, alive[n] !== undefined])),
    codes: { good: byClass('good'), bad: byClass('bad'), hostile: byClass('hostile') },
    codesByKind: Object.fromEntries(
      KINDS.map((k) => {
        const codes: Record<string, number> = {};
        for (const r of records) if (r.kind === k.name) codes[r.code] = (codes[r.code] ?? 0) + 1;
        return [k.name, codes];
      }),
    ),
    /** INTERNAL / 5xx (but 503, "retry") answers to bad or hostile requests (aim: none). */
    internalForBadInput: internal.length,
    internalByKind,
    /** Latency of the good requests that succeeded, ms. */
    goodLatencyMs: { answered: goodOk.length, of: good.length, ...pcts(goodOk.map((r) => r.ms)) },
    goodLatencyMsByKind: perGoodKind,
    rssMiB: { first, peak, last },
    samples,
  };
}

images = await Promise.all([0, 1, 2, 3].map((i) => sharp(cameraPng()).resize(160 + i * 8).png().toBuffer()));
const results = [];
for (const mode of MODES) {
  const t = mode === 'embedded' ? await embeddedTarget() : await distributedTarget();
  try {
    results.push(await soak(mode, t));
  } finally {
    for (const c of clients.values()) c.close();
    clients.clear();
    await t.stop();
  }
}

const result = {
  date: new Date().toISOString(),
  machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
  workload: `${WORKERS} closed loops for ${SECONDS} s, kinds (weight): ${KINDS.map((k) => `${k.name} ${k.cls} (${k.weight})`).join(', ')}`,
  modes: results,
};
await mkdir(path.dirname(OUT), { recursive: true });
await writeFile(OUT, JSON.stringify(result, null, 2) + '\n');
const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
let failed = false;
for (const r of results) {
  console.log(`\n${r.mode}: ${r.requests} requests in ${f(r.seconds)} s (good ${r.perClass.good}, bad ${r.perClass.bad}, hostile ${r.perClass.hostile}), ${r.workers} loops`);
  console.log(`crashes: ${r.crashes}${r.exits.length ? ` (${r.exits.map((e) => `${e.process} at ${f(e.atS, 1)} s, in flight: ${e.inFlight.join(' ')}; answered last: ${e.lastAnswered.join(', ')}`).join('; ')})` : ''}; alive at the end: ${Object.entries(r.aliveAtEnd).map(([n, a]) => `${n} ${a ? 'yes' : 'NO'}`).join(', ')}`);
  console.log(`INTERNAL/5xx answers to bad or hostile requests: ${r.internalForBadInput}${r.internalForBadInput ? ` ${JSON.stringify(r.internalByKind)}` : ''}`);
  for (const cls of ['good', 'bad', 'hostile'] as const) console.log(`${cls.padEnd(8)} ${Object.entries(r.codes[cls]).map(([c, n]) => `${c}: ${n}`).join(', ')}`);
  console.log(`good requests answered OK: ${r.goodLatencyMs.answered}/${r.goodLatencyMs.of}, p50 ${f(r.goodLatencyMs.p50, 1)} ms, p95 ${f(r.goodLatencyMs.p95, 1)} ms, p99 ${f(r.goodLatencyMs.p99, 1)} ms`);
  console.log(`RSS MiB (first -> peak -> last): ${Object.keys(r.rssMiB.peak).map((n) => `${n} ${f(r.rssMiB.first[n])} -> ${f(r.rssMiB.peak[n])} -> ${f(r.rssMiB.last[n])}`).join(', ')}`);
  failed ||= r.crashes > 0 || r.internalForBadInput > 0;
}
console.log(`written to ${path.relative(process.cwd(), OUT)}`);
// Reported, and the exit code says whether the two hard aims held.
process.exit(failed ? 1 : 0);
