// The public API's speed: Submit round-trip latency for a ~200 KB JPEG with the pipeline idle,
// and the throughput of Submit alone (unary, 8 calls in flight; SubmitBatch, every item in one
// client stream), through a real gRPC client (protobuf-es + grpc-js, API key in the metadata):
// - embedded mode: startEmbedded (temporary TAMPERTRACE_HOME) with serveIngest on a free port;
// - distributed mode, when the server addresses are in the environment (TAMPERTRACE_KAFKA_BROKERS,
//   _S3_ENDPOINT, _DATABASE_URL; `make bench` starts the local servers): every service of
//   `tampertrace service` its own process (Cluster), against the ingest service's gRPC port.
// Aim: Submit p50 under 10 ms with the pipeline idle (it only validates, stores and publishes).
//
// Idle latency: one Submit at a time, and before the next one the analysis is watched to its end
// (WatchAnalysis), so the stages are idle whenever Submit is timed; only the Submit call is timed.
// Throughput: submissions/s until the last Submit (or the SubmitBatch) response, not until the
// analyses finish; the stages lag behind and catch up afterwards (how long that took is reported,
// and every analysis is waited for before the next measurement). Every request carries distinct
// bytes, so deduplication never answers instead of a real submission.
//
// Usage: `node --import tsx bench/api.ts [N]` (default 200 submissions per measurement).
// BENCH_OUT_API: where the JSON goes (default bench/results/api.json; point it elsewhere for
// trial runs).
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import sharp from 'sharp';
import { REPO_ROOT, Semaphore, createLogger, grpc, loadConfig, serviceClient, unary } from '@tampertrace/shared';
import { astronautPng } from '@tampertrace/shared/testing';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import {
  IngestService,
  SubmitBatchRequestSchema,
  SubmitRequestSchema,
  type SubmitBatchResponse,
  type SubmitResponse,
} from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { serveIngest } from '@tampertrace/ingest/service';
import { startEmbedded } from '../services/tampertrace/src/embedded.ts';
import { SERVICES } from '@tampertrace/shared';
import { Cluster, SKIP_REASON, serversReady } from '../services/tampertrace/src/cluster.testing.ts';
import { mean, pct } from './stats.ts';
import { CALL_DEADLINE_MS, finalAnalysis } from './api-client.ts';

const N = Number(process.argv[2] ?? 200);
if (!Number.isInteger(N) || N < 1) throw new Error(`submission count must be a positive integer, got ${process.argv[2]}`);
const OUT = path.resolve(process.env.BENCH_OUT_API || path.join(REPO_ROOT, 'bench', 'results', 'api.json'));
/** Unary Submit calls in flight in the unary throughput measurement. */
const IN_FLIGHT = 8;
/** Submissions per mode before anything is measured (connections, JIT, caches), one at a time. */
const WARM = 5;
/** Pause after an analysis finished before the next idle Submit, so the audit and results consumers are done too. */
const SETTLE_MS = 50;
/** The JPEG set: the astronaut photo at SIDE x SIDE, quality QUALITY (about 205 KB). */
const SIDE = 1000;
const QUALITY = 93;
/** The benchmark tenant's quota, high enough never to refuse a submission. */
const QUOTA = 100_000;
const TENANT = 'bench-api';

const note = (what: string) => process.stderr.write(`[bench-api ${new Date().toISOString().slice(11, 19)}] ${what}\n`);
const stats = (xs: number[]) => ({ p50: pct(xs, 50), p95: pct(xs, 95), p99: pct(xs, 99), mean: mean(xs), min: Math.min(...xs), max: Math.max(...xs) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const loadAvg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

/**
 * `count` distinct JPEGs of about 200 KB: the astronaut photo resized once, then per image one
 * pixel of its own colour at its own place before the encode, so no two share a sha256.
 */
async function jpegSet(count: number): Promise<Buffer[]> {
  const base = await sharp(astronautPng()).resize(SIDE, SIDE).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const px = Buffer.from([(i * 37) % 256, (i * 91 + 17) % 256, (i * 13 + 101) % 256]);
    const dot = await sharp(px, { raw: { width: 1, height: 1, channels: 3 } }).png().toBuffer();
    out.push(await sharp(base.data, { raw: base.info }).composite([{ input: dot, left: i % SIDE, top: Math.floor(i / SIDE) % SIDE }]).jpeg({ quality: QUALITY }).toBuffer());
  }
  return out;
}

note(`building ${3 * N + WARM} distinct JPEGs`);
const loadAtStart = loadAvg();
const images = await jpegSet(3 * N + WARM);
const warmImages = images.slice(0, WARM);
const idleImages = images.slice(WARM, WARM + N);
const unaryImages = images.slice(WARM + N, WARM + 2 * N);
const streamImages = images.slice(WARM + 2 * N);
const sizes = images.map((b) => b.length);

// ---- The API calls, the same for every mode ----

const submitRequest = (bytes: Uint8Array, sourceName: string) => create(SubmitRequestSchema, { source: { case: 'content', value: bytes }, sourceName });

async function submit(client: grpc.Client, bytes: Uint8Array, sourceName: string): Promise<SubmitResponse> {
  const r = await unary<SubmitResponse>(client, 'submit', submitRequest(bytes, sourceName));
  if (r.deduplicated) throw new Error(`${sourceName} was answered by deduplication: the bytes are not distinct`);
  return r;
}

/** Waits for every analysis to finish (one watch after another), counting their final statuses into `statuses`. */
async function drain(client: grpc.Client, ids: string[], statuses: Record<string, number>): Promise<void> {
  for (const id of ids) {
    const s = AnalysisStatus[(await finalAnalysis(client, id)).status];
    statuses[s] = (statuses[s] ?? 0) + 1;
  }
}

interface Throughput {
  submissionsPerSecond: number;
  /** First request sent to the last Submit (or the SubmitBatch) response. */
  seconds: number;
  /** The same start to the last analysis seen finished: the stages lag behind Submit. */
  analysesDoneSeconds: number;
  /** Per call (unary only): round trip under load. */
  latencyMs?: ReturnType<typeof stats>;
}

interface ModeFigures {
  /** One Submit at a time, pipeline idle: the Submit round trip only. */
  submitLatencyMsIdle: ReturnType<typeof stats>;
  /** p50 of the idle Submit latency below 10 ms. */
  aimMet: boolean;
  unary: Throughput;
  stream: Throughput;
  /** Final status of every analysis submitted in the measurements. */
  statuses: Record<string, number>;
  loadAverageAfter: number[];
}

async function measure(name: string, client: grpc.Client): Promise<ModeFigures> {
  const statuses: Record<string, number> = {};
  note(`${name}: warm-up (${WARM} one at a time)`);
  for (const [i, b] of warmImages.entries()) await finalAnalysis(client, (await submit(client, b, `warm-${i}.jpg`)).analysisId);

  note(`${name}: idle Submit latency (${N} one at a time, each analysis finished before the next Submit)`);
  const idle: number[] = [];
  for (const [i, b] of idleImages.entries()) {
    await sleep(SETTLE_MS);
    const t0 = performance.now();
    const r = await submit(client, b, `idle-${i}.jpg`);
    idle.push(performance.now() - t0);
    const s = AnalysisStatus[(await finalAnalysis(client, r.analysisId)).status];
    statuses[s] = (statuses[s] ?? 0) + 1;
  }

  note(`${name}: unary Submit throughput (${N}, ${IN_FLIGHT} in flight)`);
  await sleep(500);
  const slots = new Semaphore(IN_FLIGHT);
  const perCall: number[] = [];
  const u0 = performance.now();
  const unaryIds = await Promise.all(
    unaryImages.map(async (b, i) => {
      await slots.acquire();
      try {
        const t0 = performance.now();
        const r = await submit(client, b, `unary-${i}.jpg`);
        perCall.push(performance.now() - t0);
        return r.analysisId;
      } finally {
        slots.release();
      }
    }),
  );
  const uSeconds = (performance.now() - u0) / 1000;
  note(`${name}: ${(N / uSeconds).toFixed(1)} submissions/s; waiting for the ${N} analyses`);
  await drain(client, unaryIds, statuses);
  const uDone = (performance.now() - u0) / 1000;

  note(`${name}: SubmitBatch throughput (${N} items in one client stream)`);
  await sleep(500);
  const s0 = performance.now();
  const batch = await submitBatch(client, streamImages);
  const sSeconds = (performance.now() - s0) / 1000;
  const refused = batch.results.filter((r) => !r.accepted);
  if (batch.results.length !== N || refused.length) throw new Error(`SubmitBatch: ${batch.results.length} results for ${N} items, ${refused.length} refused (first: ${refused[0]?.error?.message})`);
  if (batch.results.some((r) => r.accepted!.deduplicated)) throw new Error('SubmitBatch: an item was answered by deduplication');
  note(`${name}: ${(N / sSeconds).toFixed(1)} submissions/s; waiting for the ${N} analyses`);
  await drain(client, batch.results.map((r) => r.accepted!.analysisId), statuses);
  const sDone = (performance.now() - s0) / 1000;

  const submitLatencyMsIdle = stats(idle);
  return {
    submitLatencyMsIdle,
    aimMet: submitLatencyMsIdle.p50 < 10,
    unary: { submissionsPerSecond: N / uSeconds, seconds: uSeconds, analysesDoneSeconds: uDone, latencyMs: stats(perCall) },
    stream: { submissionsPerSecond: N / sSeconds, seconds: sSeconds, analysesDoneSeconds: sDone },
    statuses,
    loadAverageAfter: loadAvg(),
  };
}

/** Every image as one item of one SubmitBatch stream (written as fast as the stream takes them); resolves with the response. */
async function submitBatch(client: grpc.Client, bytes: Buffer[]): Promise<SubmitBatchResponse> {
  const c = client as unknown as { submitBatch(md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: SubmitBatchResponse) => void): grpc.ClientWritableStream<unknown> };
  let stream!: grpc.ClientWritableStream<unknown>;
  const done = new Promise<SubmitBatchResponse>((resolve, reject) => {
    stream = c.submitBatch(new grpc.Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (e, r) => (e ? reject(e) : resolve(r)));
  });
  done.catch(() => {}); // awaited below; a failure mid-write must not go unhandled meanwhile
  for (const [i, b] of bytes.entries()) {
    if (!stream.write(create(SubmitBatchRequestSchema, { item: submitRequest(b, `batch-${i}.jpg`) }))) await Promise.race([once(stream, 'drain'), done]);
  }
  stream.end();
  return done;
}

// ---- Embedded mode ----

async function embeddedMode(): Promise<ModeFigures> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'tt-bench-api-'));
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home, TAMPERTRACE_GRPC_PORT: '0', TAMPERTRACE_HTTP_PORT: '0' });
  try {
    const embedded = await startEmbedded(cfg, createLogger('bench-api', 'warn'));
    let servers: Awaited<ReturnType<typeof serveIngest>> | undefined;
    let client: grpc.Client | undefined;
    try {
      servers = await serveIngest(embedded.ingest, cfg);
      // Its own tenant with a quota that never refuses (the default tenant's 50/s, burst 100,
      // would cap the throughput runs); the key is checked the same way as embedded.apiKey.
      const { apiKey } = await embedded.ingest.tenants.create(TENANT, { ratePerS: QUOTA, burst: QUOTA, maxInFlight: QUOTA });
      client = serviceClient(IngestService, `127.0.0.1:${servers.grpcPort}`, { apiKey });
      return await measure('embedded', client);
    } finally {
      client?.close();
      await servers?.stop();
      await embedded.close();
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

// ---- Distributed mode ----

const UP_DEADLINE_MS = 180_000;

async function distributedMode(): Promise<ModeFigures & { run: string }> {
  // The gateway's HTTP port; the services' gRPC ports follow it (25000-28999): clear of the local
  // servers', the integration tests' (17000-24810) and bench/speed.ts' (21000-24999) ports.
  const cluster = new Cluster(25000 + (process.pid % 500) * 8);
  let client: grpc.Client | undefined;
  let ok = false;
  try {
    note(`distributed (run ${cluster.run}): starting the services`);
    const up = cluster.up([...SERVICES]);
    up.catch(() => {}); // settles after the deadline too; the finally below stops what started
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`distributed: the services did not all say ready within ${UP_DEADLINE_MS / 1000} s`)), UP_DEADLINE_MS);
    });
    await Promise.race([up, deadline]).finally(() => clearTimeout(timer));
    const { apiKey } = await cluster.createTenantWithSecret(TENANT, '--rate', String(QUOTA), '--burst', String(QUOTA), '--max-in-flight', String(QUOTA));
    client = serviceClient(IngestService, cluster.grpcAddress, { apiKey });
    const figures = { ...(await measure('distributed', client)), run: cluster.run };
    ok = true;
    return figures;
  } finally {
    client?.close();
    note('distributed: stopping the services and removing the run\'s schema, topics, groups and buckets');
    await cluster.down().catch((err) => console.error(`distributed: stopping the services failed: ${String(err)}`));
    if (ok) await rm(cluster.logDir, { recursive: true, force: true });
    else console.error(`distributed: the services' logs are in ${cluster.logDir}`);
  }
}


// ---- Run ----

const embedded = await embeddedMode();
const distributed = serversReady ? await distributedMode() : undefined;

const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'cpu';
const ramGiB = Math.round(os.totalmem() / 2 ** 30);
const result = {
  date: new Date().toISOString(),
  machine: { cpuModel, cores: os.cpus().length, ramGiB, os: `${os.type()} ${os.release()}`, arch: process.arch, node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadAvg() },
  n: N,
  jpeg: { what: `astronaut photo ${SIDE}x${SIDE}, quality ${QUALITY}, one pixel changed per image`, meanBytes: mean(sizes), minBytes: Math.min(...sizes), maxBytes: Math.max(...sizes), distinct: sizes.length },
  aim: 'Submit p50 under 10 ms with the pipeline idle',
  method: {
    idle: `one Submit at a time; each analysis watched to its end (WatchAnalysis) and ${SETTLE_MS} ms let pass before the next; only the Submit round trip is timed`,
    unary: `${N} Submit calls, ${IN_FLIGHT} in flight; first call to last response`,
    stream: `${N} items in one SubmitBatch client stream; first write to the response`,
    note: 'throughput counts Submit alone: the analyses lag behind and are waited for afterwards (analysesDoneSeconds), before the next measurement',
    embedded: 'the stages run in the same process (and JavaScript thread) as the gRPC server, so under load Submit competes with them and its throughput is bounded by the pipeline',
    warmUp: `${WARM} submissions one at a time per mode, not counted`,
    tenant: `a tenant of its own per mode with rate, burst and in-flight cap ${QUOTA}`,
  },
  embedded,
  distributed: distributed ?? null,
  ...(distributed ? {} : { distributedSkipped: SKIP_REASON }),
};
await mkdir(path.dirname(OUT), { recursive: true });
await writeFile(OUT, JSON.stringify(result, null, 2) + '\n');

// ---- Table ----
const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const row = (cells: string[], widths: number[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
const W = [12, 8, 6, 6, 6, 10, 10, 12, 10];
console.log(`\nSubmit speed on ${os.cpus().length} x ${cpuModel}, ${ramGiB} GiB, node ${process.version}`);
console.log(`${N} submissions per measurement; JPEG ${SIDE}x${SIDE} q${QUALITY}, mean ${f(result.jpeg.meanBytes / 1000)} KB (${f(result.jpeg.minBytes / 1000)}-${f(result.jpeg.maxBytes / 1000)}), every one distinct`);
if (loadAtStart[0] > 0.5) console.log(`NOTE: load average ${loadAtStart.join(' ')} at the start: the machine was not idle, so these figures are not final`);
console.log('');
console.log(row(['', 'idle p50', 'p95', 'p99', 'mean', 'p50<10ms', `unary/s`, 'unary p50', 'stream/s'], W));
for (const [name, x] of [['embedded', embedded], ['distributed', distributed]] as const) {
  if (!x) {
    console.log(`${name.padEnd(12)}  skipped: ${SKIP_REASON}`);
    continue;
  }
  const L = x.submitLatencyMsIdle;
  console.log(row([name, f(L.p50), f(L.p95), f(L.p99), f(L.mean), x.aimMet ? 'met' : 'NOT met', f(x.unary.submissionsPerSecond), f(x.unary.latencyMs?.p50), f(x.stream.submissionsPerSecond)], W));
}
console.log(`(ms; idle = one Submit at a time, pipeline idle, Submit round trip only; unary/s with ${IN_FLIGHT} calls in flight, unary p50 = per-call round trip under that load; stream/s = one SubmitBatch of ${N})`);
for (const [name, x] of [['embedded', embedded], ['distributed', distributed]] as const) {
  if (!x) continue;
  console.log(
    `${name}: the analyses finished ${f(x.unary.analysesDoneSeconds - x.unary.seconds)} s after the last unary response and ${f(x.stream.analysesDoneSeconds - x.stream.seconds)} s after the batch response (Submit outruns the stages); results: ${Object.entries(x.statuses).map(([k, v]) => `${k} ${v}`).join(', ')}`,
  );
}
const shown = path.relative(process.cwd(), OUT);
console.log(`written to ${shown && !shown.startsWith('..') ? shown : OUT}`);
