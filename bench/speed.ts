// Speed of the analysis on the benchmark workload, in one run on the same inputs: the raw loop
// (stage functions back to back, no bus, no storage), the embedded pipeline, and, when the server
// addresses are in the environment (TAMPERTRACE_KAFKA_BROKERS, _S3_ENDPOINT, _DATABASE_URL; `make
// bench` starts the local servers), the distributed mode: every service its own process on Kafka,
// S3 and PostgreSQL (bench/distributed.ts). Everything is started and warmed up first; then
// BENCH_ROUNDS rounds (default 3), each measuring in turn: the raw loop one image at a time (the
// issue's baseline), the raw loop with BENCH_WINDOW images at once (what the bare code gets out
// of every core), and each pipeline mode with all images offered through the same bounded
// in-flight window. Ratios are taken within a round and reported as the median over rounds, so
// that load from elsewhere on a shared machine hits every mode alike. Then, once per pipeline
// mode, one image at a time (idle latency: submit to AnalysisCompleted seen).
//
// Then each pipeline mode is offered open-loop Poisson arrivals at fractions of the rate it
// sustained (BENCH_SWEEP, default 0.3,0.5,0.7,0.9,1.2,2), for throughput and latency against
// offered load, and the lowest rate once more after the highest (does latency recover?); the
// plot of those goes next to the JSON (speed.svg, bench/plot.ts).
//
// Usage: `make bench` or `node --import tsx bench/speed.ts [count]` (default 24 images).
// BENCH_WORKLOAD: `mixed` (default: issue #8's stream of 1080p and 12 MP JPEGs with 0, 1 or 3
// faces, forgeries and bad inputs; bench/workload.ts) or `oneface` (1080p, one face each).
// BENCH_WINDOW: images in flight at saturation (default 8). BENCH_ROUNDS: measuring rounds
// (default 3). BENCH_SWEEP_COUNT: images per
// offered-load level (default: count). BENCH_OUT: where the JSON goes (default
// bench/results/speed.json; point it elsewhere for trial runs).
import { readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, Semaphore, createLogger, decodeRgb, loadConfig, rng } from '@tampertrace/shared';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { loadModels, startEmbedded } from '../services/tampertrace/src/embedded.ts';
import { DISTRIBUTED_SKIP_REASON, distributedReady, startDistributed, type Driver, type Seen } from './distributed.ts';
import { speedSvg } from './plot.ts';
import { mixedWorkload, oneFace1080p, type WorkItem } from './workload.ts';
import { mean, median, pct, pcts } from './stats.ts';

const N = Number(process.argv[2] ?? 24);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 8);
const WORKLOAD = process.env.BENCH_WORKLOAD || 'mixed';
const SWEEP = (process.env.BENCH_SWEEP ?? '0.3,0.5,0.7,0.9,1.2,2').split(',').filter(Boolean).map(Number);
const SWEEP_COUNT = Number(process.env.BENCH_SWEEP_COUNT ?? N);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`BENCH_ROUNDS must be a positive integer, got ${process.env.BENCH_ROUNDS}`);
if (!['mixed', 'oneface'].includes(WORKLOAD)) throw new Error(`BENCH_WORKLOAD must be mixed or oneface, got ${WORKLOAD}`);
if (SWEEP.some((x) => !(x > 0))) throw new Error(`BENCH_SWEEP must be positive fractions, got ${process.env.BENCH_SWEEP}`);
/** Warm-up per pipeline mode, never counted: this many images one at a time, then one full window. */
const WARM_SINGLES = 2;
const OUT = path.resolve(process.env.BENCH_OUT || path.join(REPO_ROOT, 'bench', 'results', 'speed.json'));
if (!Number.isInteger(N) || N < 1) throw new Error(`image count must be a positive integer, got ${process.argv[2]}`);
if (!Number.isInteger(WINDOW) || WINDOW < 1) throw new Error(`BENCH_WINDOW must be a positive integer, got ${process.env.BENCH_WINDOW}`);

const note = (what: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${what}\n`);
note(`building ${N} inputs`);
const loadAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
const items: WorkItem[] =
  WORKLOAD === 'mixed'
    ? await mixedWorkload(N)
    : (await oneFace1080p(N)).map((bytes) => ({ bytes, kind: '1920x1080 1 face', width: 1920, height: 1080, faces: 1 as const, forged: false, bad: false }));
const inputs = items.map((x) => x.bytes);
const expectedFaces = items.reduce((a, x) => a + x.faces, 0);
const limits = { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 };
/** Peak RSS of this process so far (the raw loops and the embedded pipeline all run here). */
const peakRssMiB = () => process.resourceUsage().maxRSS / 1024;
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

// ---- Raw loop ----
const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: await mkdtemp(path.join(os.tmpdir(), 'tt-bench-')) });
const m = await loadModels(cfg);

interface RawRun {
  seconds: number;
  cpuMsPerImage: number;
  /** Per image, in input order (a bad input ends at the decode, as it does in the pipeline). */
  latencyMs: number[];
  stageMs: { decode: number[]; detect: number[]; localize: number[]; explain: number[] };
  faces: number;
  rejected: number;
}

/** The stage functions back to back for every input, `par` inputs at a time; no bus, no storage. */
async function rawLoop(par: number): Promise<RawRun> {
  const r: RawRun = { seconds: 0, cpuMsPerImage: 0, latencyMs: [], stageMs: { decode: [], detect: [], localize: [], explain: [] }, faces: 0, rejected: 0 };
  const slots = new Semaphore(par);
  const cpu0 = cpuNow();
  const start = performance.now();
  await Promise.all(
    inputs.map(async (bytes, i) => {
      await slots.acquire();
      try {
        const t0 = performance.now();
        let t = t0;
        let img;
        try {
          img = await decodeRgb(bytes, limits);
        } catch {
          r.rejected++;
          r.latencyMs[i] = performance.now() - t0;
          return;
        }
        r.stageMs.decode.push(performance.now() - t);
        t = performance.now();
        const det = await m.detector.detect(img);
        r.stageMs.detect.push(performance.now() - t);
        r.faces += det.length;
        t = performance.now();
        const loc = await m.localizer.localize(img, det);
        r.stageMs.localize.push(performance.now() - t);
        t = performance.now();
        if (loc.faces.length) await m.explainer.explain({ verdict: loc.verdict!, faces: loc.faces.map((f, k) => ({ faceIndex: k, forgeryScore: f.forgeryScore, regions: f.regions })) });
        r.stageMs.explain.push(performance.now() - t);
        r.latencyMs[i] = performance.now() - t0;
      } finally {
        slots.release();
      }
    }),
  );
  r.seconds = (performance.now() - start) / 1000;
  r.cpuMsPerImage = ((cpuNow() - cpu0) * 1000) / N;
  return r;
}

// ---- The pipeline modes, measured the same way ----

interface ModeRun {
  seconds: number;
  loaded: Seen[];
  idle: Seen[];
}

async function warmUp(d: Driver): Promise<void> {
  for (let i = 0; i < WARM_SINGLES; i++) await d.analyze(inputs[i % N], 'warm-up.jpg');
  await Promise.all(Array.from({ length: WINDOW }, (_, i) => d.analyze(inputs[i % N], 'warm-up.jpg')));
}

/** Every input offered, at most WINDOW in flight; the clock runs from the first submit to the last result. */
async function saturate(d: Driver): Promise<{ seconds: number; loaded: Seen[] }> {
  const slots = new Semaphore(WINDOW);
  const start = performance.now();
  const loaded = await Promise.all(
    inputs.map(async (b, i) => {
      await slots.acquire();
      try {
        return await d.analyze(b, `in-${i}.jpg`);
      } finally {
        slots.release();
      }
    }),
  );
  return { seconds: (performance.now() - start) / 1000, loaded };
}

async function oneAtATime(d: Driver): Promise<Seen[]> {
  const out: Seen[] = [];
  for (const [i, b] of inputs.entries()) out.push(await d.analyze(b, `single-${i}.jpg`));
  return out;
}

/** One offered-load level: open-loop Poisson arrivals, whatever the pipeline's state. */
interface SweepPoint {
  fraction: number;
  /** Offered right after the overload levels: does latency come back down when the load drops? */
  afterOverload?: boolean;
  offeredPerSecond: number;
  /**
   * Submissions per second as they really went out. Lower than offered where the pipeline shares
   * this process's event loop (embedded mode) and delays the timers of the load generator.
   */
  submittedPerSecond: number;
  achievedPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number };
  /** Highest resident memory seen while the level ran (sampled every 250 ms), per process. */
  peakRssMiB: Record<string, number>;
  statuses: Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function offer(d: Driver, rate: number, fraction: number, seed: number, rss: () => Promise<Record<string, number>>): Promise<SweepPoint> {
  const rand = rng(seed);
  const peak: Record<string, number> = {};
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const [k, v] of Object.entries(await rss())) peak[k] = Math.max(peak[k] ?? 0, v);
      await sleep(250);
    }
  })();
  const start = performance.now();
  let next = 0;
  const pending: Promise<Seen>[] = [];
  let lastSubmit = start;
  for (let i = 0; i < SWEEP_COUNT; i++) {
    const wait = start + next - performance.now();
    if (wait > 0) await sleep(wait);
    lastSubmit = performance.now();
    pending.push(d.analyze(inputs[i % N], `offered-${fraction}-${i}.jpg`));
    next += (-Math.log(1 - rand()) / rate) * 1000;
  }
  const seen = await Promise.all(pending);
  const seconds = (performance.now() - start) / 1000;
  sampling = false;
  await sampler;
  return {
    fraction,
    offeredPerSecond: rate,
    submittedPerSecond: SWEEP_COUNT > 1 ? (SWEEP_COUNT - 1) / ((lastSubmit - start) / 1000) : rate,
    achievedPerSecond: SWEEP_COUNT / seconds,
    latencyMs: pcts(seen.map((x) => x.ms)),
    peakRssMiB: peak,
    statuses: statusCounts(seen),
  };
}

/**
 * Every BENCH_SWEEP fraction of the rate the mode sustained at saturation, lowest first, then
 * the lowest again right after the highest (recovery).
 */
async function sweep(d: Driver, sustained: number, rss: () => Promise<Record<string, number>>): Promise<SweepPoint[]> {
  const out: SweepPoint[] = [];
  const levels = [...SWEEP].sort((a, b) => a - b);
  for (const [k, f] of levels.entries()) {
    note(`  offered ${(f * sustained).toFixed(2)} images/s (${f} x sustained)`);
    out.push(await offer(d, f * sustained, f, 100 + k, rss));
  }
  note(`  offered ${(levels[0] * sustained).toFixed(2)} images/s again, after the overload`);
  out.push({ ...(await offer(d, levels[0] * sustained, levels[0], 99, rss)), afterOverload: true });
  return out;
}

const STAGES = { ingest: Stage.INGEST, provenance: Stage.PROVENANCE, faceDetection: Stage.FACE_DETECTION, forgeryLocalization: Stage.FORGERY_LOCALIZATION, explanation: Stage.EXPLANATION };
const stageOf = (a: Analysis, s: Stage) => a.timings.find((t) => t.stage === s)?.durationMs ?? 0;
const stageMeans = (seen: Seen[]) => Object.fromEntries(Object.entries(STAGES).map(([k, s]) => [k, mean(seen.map((x) => stageOf(x.analysis, s)))])) as Record<keyof typeof STAGES, number>;
/** Latency minus the stages' own handler time: the bus hops, queueing, commits and result delivery. */
const outsideStages = (seen: Seen[]) => seen.map((x) => x.ms - x.analysis.timings.reduce((a, t) => a + t.durationMs, 0));
const statusCounts = (seen: Seen[]) => {
  const c: Record<string, number> = {};
  for (const x of seen) c[AnalysisStatus[x.analysis.status]] = (c[AnalysisStatus[x.analysis.status]] ?? 0) + 1;
  return c;
};

function figures(r: ModeRun, cpuSecondsUnderLoad: number) {
  return {
    imagesPerSecond: N / r.seconds,
    latencyMsUnderLoad: pcts(r.loaded.map((x) => x.ms)),
    latencyMsIdle: { ...pcts(r.idle.map((x) => x.ms)), max: Math.max(...r.idle.map((x) => x.ms)) },
    /** Handler time per stage, mean over the images under load. */
    stageMsMean: stageMeans(r.loaded),
    /** The same, one image at a time. */
    stageMsMeanIdle: stageMeans(r.idle),
    /** Idle latency minus the stage handlers' time: hops, fetch waits, commits, result delivery. */
    outsideStagesMsIdle: { p50: pct(outsideStages(r.idle), 50), mean: mean(outsideStages(r.idle)) },
    cpuMsPerImageUnderLoad: (cpuSecondsUnderLoad * 1000) / N,
    statuses: statusCounts([...r.loaded, ...r.idle]),
  };
}

// Everything up at once, so that the rounds can take turns: the embedded pipeline (stage
// concurrency from config, default 2) in this process, and the distributed mode, every service its
// own process on Kafka, S3 and PostgreSQL, images submitted through the Ingestor here.
const embedded = await startEmbedded(cfg, createLogger('bench', 'warn'));
const embDriver: Driver = {
  async analyze(bytes, name) {
    const t0 = performance.now();
    const analysis = await embedded.analyze(bytes, name);
    return { ms: performance.now() - t0, analysis };
  },
};
let d: Awaited<ReturnType<typeof startDistributed>> | undefined;
let stopped: Awaited<ReturnType<Awaited<ReturnType<typeof startDistributed>>['stop']>> | undefined;
interface Round {
  rawSequential: RawRun;
  rawParallel: RawRun;
  embedded: { seconds: number; loaded: Seen[]; cpuSeconds: number };
  distributed?: { seconds: number; loaded: Seen[]; cpuSeconds: Record<string, number> };
}
let measured: { rounds: Round[]; embIdle: Seen[]; embSweep: SweepPoint[]; distIdle?: Seen[]; distSweep?: SweepPoint[] } | undefined;
if (distributedReady) {
  note('distributed: starting the services');
  d = await startDistributed();
}
try {
  note('warm-up: raw loop, embedded' + (d ? `, distributed (run ${d.run})` : ''));
  {
    const warm = await decodeRgb(inputs[0], limits);
    await m.localizer.localize(warm, await m.detector.detect(warm)); // first ONNX runs allocate
  }
  await warmUp(embDriver);
  if (d) await warmUp(d);

  const rounds: Round[] = [];
  for (let k = 0; k < ROUNDS; k++) {
    note(`round ${k + 1} of ${ROUNDS}: raw loop one at a time, raw loop ${WINDOW} at a time, embedded${d ? ', distributed' : ''}`);
    const rawSequential = await rawLoop(1);
    const rawParallel = await rawLoop(WINDOW);
    const embCpu0 = cpuNow();
    const embSat = await saturate(embDriver);
    const round: Round = { rawSequential, rawParallel, embedded: { ...embSat, cpuSeconds: cpuNow() - embCpu0 } };
    if (d) {
      const cpu0 = await d.cpuSeconds();
      const sat = await saturate(d);
      const cpu1 = await d.cpuSeconds();
      round.distributed = { ...sat, cpuSeconds: Object.fromEntries(Object.keys(cpu1).map((p) => [p, cpu1[p] - (cpu0[p] ?? 0)])) };
    }
    rounds.push(round);
  }

  note('embedded: one at a time, then the offered-load sweep');
  const embIdle = await oneAtATime(embDriver);
  const embSustained = median(rounds.map((r) => N / r.embedded.seconds));
  const embSweep = await sweep(embDriver, embSustained, async () => ({ 'tampertrace (embedded)': process.memoryUsage().rss / 2 ** 20 }));
  let distIdle: Seen[] | undefined;
  let distSweep: SweepPoint[] | undefined;
  if (d) {
    note('distributed: one at a time, then the offered-load sweep');
    distIdle = await oneAtATime(d);
    distSweep = await sweep(d, median(rounds.map((r) => N / r.distributed!.seconds)), () => d!.rssMiB());
    note("distributed: stopping the services and removing the run's topics, buckets and schema");
    stopped = await d.stop();
  }
  measured = { rounds, embIdle, embSweep, distIdle, distSweep };
} finally {
  if (d && !stopped) await d.stop();
}
const embPeakRssMiB = peakRssMiB();
await embedded.close();
await Promise.all([m.detector.close(), m.model.close()]);
await rm(cfg.TAMPERTRACE_HOME, { recursive: true, force: true });

if (!measured) throw new Error('unreachable: the measurements ended without an error');
const { rounds } = measured;
/** What `pick` takes from the round in the middle by `by` (a mode's time): its latencies and stage times stand for the mode. */
const mid = <T,>(pick: (r: (typeof rounds)[number]) => T | undefined, by: (r: (typeof rounds)[number]) => number): T => {
  const order = [...rounds].sort((a, b) => by(a) - by(b));
  return pick(order[Math.floor((order.length - 1) / 2)])!;
};
const emb = {
  ...figures({ seconds: median(rounds.map((r) => r.embedded.seconds)), loaded: mid((r) => r.embedded.loaded, (r) => r.embedded.seconds), idle: measured.embIdle }, median(rounds.map((r) => r.embedded.cpuSeconds))),
  sweep: measured.embSweep,
  peakRssMiB: { 'tampertrace (raw loops and embedded)': embPeakRssMiB },
};
let dist: (ReturnType<typeof figures> & { run: string; cpuMsPerImageUnderLoadByProcess: Record<string, number>; peakRssMiB: Record<string, number>; sweep: SweepPoint[] }) | undefined;
if (d && stopped) {
  const cpuByProcess = mid((r) => r.distributed!.cpuSeconds, (r) => r.distributed!.seconds);
  dist = {
    // CPU of every process involved: the services, Kafka, S3Proxy, PostgreSQL and this one.
    ...figures(
      { seconds: median(rounds.map((r) => r.distributed!.seconds)), loaded: mid((r) => r.distributed!.loaded, (r) => r.distributed!.seconds), idle: measured.distIdle! },
      Object.values(cpuByProcess).reduce((a, b) => a + b, 0),
    ),
    run: d.run,
    cpuMsPerImageUnderLoadByProcess: Object.fromEntries(Object.entries(cpuByProcess).map(([k, v]) => [k, (v * 1000) / N])),
    peakRssMiB: stopped.peakRssMiB,
    sweep: measured.distSweep!,
  };
}
const rawSeq = mid((r) => r.rawSequential, (r) => r.rawSequential.seconds);
const rawPar = mid((r) => r.rawParallel, (r) => r.rawParallel.seconds);
/** Per round: each mode's images/s over the raw loop's in the same round. */
const byRound = rounds.map((r) => ({
  rawSequentialPerSecond: N / r.rawSequential.seconds,
  rawParallelPerSecond: N / r.rawParallel.seconds,
  embeddedPerSecond: N / r.embedded.seconds,
  distributedPerSecond: r.distributed ? N / r.distributed.seconds : null,
  embeddedOverRaw: r.rawSequential.seconds / r.embedded.seconds,
  distributedOverRaw: r.distributed ? r.rawSequential.seconds / r.distributed.seconds : null,
  embeddedOverRawParallel: r.rawParallel.seconds / r.embedded.seconds,
  distributedOverRawParallel: r.distributed ? r.rawParallel.seconds / r.distributed.seconds : null,
}));
const medianOf = (k: keyof (typeof byRound)[number]) => (byRound.every((x) => x[k] !== null) ? median(byRound.map((x) => x[k] as number)) : null);

// ---- Results ----
function countBy(xs: string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const x of xs) c[x] = (c[x] ?? 0) + 1;
  return c;
}
/** p99 / p50 latency at the sweep level nearest to this fraction of the sustained rate (aim <= 3). */
function p99OverP50(points: SweepPoint[], fraction: number): { fraction: number; ratio: number } | null {
  const p = points.filter((x) => !x.afterOverload).sort((a, b) => Math.abs(a.fraction - fraction) - Math.abs(b.fraction - fraction))[0];
  return p ? { fraction: p.fraction, ratio: p.latencyMs.p99 / p.latencyMs.p50 } : null;
}
const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'cpu';
const ramGiB = Math.round(os.totalmem() / 2 ** 30);
const rawIps = median(rounds.map((r) => N / r.rawSequential.seconds));
const rawParIps = median(rounds.map((r) => N / r.rawParallel.seconds));
const rawLat = pcts(rawSeq.latencyMs);
const rawMsByKind: Record<string, number[]> = {};
rawSeq.latencyMs.forEach((ms, i) => (rawMsByKind[items[i].kind] ??= []).push(ms));
const rawFigures = (r: RawRun) => ({
  msPerImage: (r.seconds * 1000) / N,
  stageMsMean: Object.fromEntries(Object.entries(r.stageMs).map(([k, v]) => [k, mean(v)])),
  stageMsP95: Object.fromEntries(Object.entries(r.stageMs).map(([k, v]) => [k, pct(v, 95)])),
  cpuMsPerImage: r.cpuMsPerImage,
  rejected: r.rejected,
});
const faces = rawSeq.faces;
const result = {
  date: new Date().toISOString(),
  machine: `${os.cpus().length} x ${cpuModel}, ${ramGiB} GiB, ${process.platform}/${process.arch}, node ${process.version}`,
  machineDetail: { cpuModel, cores: os.cpus().length, ramGiB, os: `${os.type()} ${os.release()}`, arch: process.arch, node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100) },
  workload:
    WORKLOAD === 'mixed'
      ? `${N} inputs (bench/workload.ts mixedWorkload, seed 11): ${Object.entries(countBy(items.map((x) => x.kind))).map(([k, v]) => `${v} ${k}`).join(', ')}; ${items.filter((x) => x.forged).length} self-blended forgeries; JPEG quality 90`
      : `${N} JPEGs 1920x1080, one face each (90-350 px), quality 90`,
  expectedFaces,
  window: WINDOW,
  warmUp: `${WARM_SINGLES} images one at a time, then ${WINDOW} at once, per pipeline mode (not counted)`,
  rounds: ROUNDS,
  method: `${ROUNDS} rounds, each: raw loop one image at a time, raw loop ${WINDOW} at a time, embedded, distributed, all servers and services up throughout; ratios taken within each round, figures below are medians over rounds (latencies and stage times from the round with the median throughput)`,
  facesFound: faces,
  /** The issue's raw loop: stage functions back to back, one image at a time. */
  raw: {
    imagesPerSecond: rawIps,
    ...rawFigures(rawSeq),
    /** Mean loop time per input kind. */
    msMeanByKind: Object.fromEntries(Object.entries(rawMsByKind).map(([k, v]) => [k, mean(v)])),
  },
  /** The same loop with `window` images at a time: the bare code on every core, a stricter baseline. */
  rawParallel: { imagesPerSecond: rawParIps, ...rawFigures(rawPar) },
  embedded: emb,
  distributed: dist ?? null,
  ...(dist ? {} : { distributedSkipped: DISTRIBUTED_SKIP_REASON }),
  /** Medians over rounds of the ratios within each round. */
  ratios: {
    embeddedOverRaw: medianOf('embeddedOverRaw')!,
    distributedOverRaw: medianOf('distributedOverRaw'),
    distributedOverEmbedded: dist ? dist.imagesPerSecond / emb.imagesPerSecond : null,
    embeddedOverRawParallel: medianOf('embeddedOverRawParallel')!,
    distributedOverRawParallel: medianOf('distributedOverRawParallel'),
    /** CPU per image over the raw loop's (all processes for distributed): overhead, whatever the load. */
    embeddedCpuOverRaw: emb.cpuMsPerImageUnderLoad / rawSeq.cpuMsPerImage,
    distributedCpuOverRaw: dist ? dist.cpuMsPerImageUnderLoad / rawSeq.cpuMsPerImage : null,
  },
  ratiosByRound: byRound,
  /** One image at a time (raw: one loop iteration). */
  latencyMs: {
    raw: rawLat,
    embedded: pcts(measured.embIdle.map((x) => x.ms)),
    distributed: dist ? { p50: dist.latencyMsIdle.p50, p95: dist.latencyMsIdle.p95, p99: dist.latencyMsIdle.p99 } : null,
  },
  /** Idle p50 latency, distributed minus embedded. */
  addedP50Ms: dist ? dist.latencyMsIdle.p50 - emb.latencyMsIdle.p50 : null,
  aims: { distributedOverEmbeddedAtLeast: 0.6, addedP50MsBelow: 30 },
  /** Issue #8's targets, as this run measured them (not tests: the machine is shared). */
  targets: {
    embeddedOverRawAtLeast09: medianOf('embeddedOverRaw')! >= 0.9,
    distributedOverRawAtLeast07: dist ? medianOf('distributedOverRaw')! >= 0.7 : null,
    p99OverP50At70Percent: {
      embedded: p99OverP50(emb.sweep, 0.7),
      distributed: dist ? p99OverP50(dist.sweep, 0.7) : null,
    },
  },
};
await mkdir(path.dirname(OUT), { recursive: true });
await writeFile(OUT, JSON.stringify(result, null, 2) + '\n');
const SVG = OUT.replace(/\.json$/, '') + '.svg';
await writeFile(SVG, speedSvg(result));

// ---- Table ----
const f = (x: number | null | undefined, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const row = (cells: string[], widths: number[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
const W = [12, 6, 6, 6, 8, 8, 8, 8, 8, 8, 9];
console.log(`\nSpeed on ${result.machine}`);
console.log(`${result.workload}; faces found ${faces} (${expectedFaces} placed); window ${WINDOW} in flight; warm-up: ${result.warmUp}`);
if (loadAtStart[0] > 0.5) console.log(`NOTE: load average ${loadAtStart.join(' ')} at the start: the machine was not idle, so these figures are not final`);
console.log('');
console.log(row(['', 'img/s', 'x raw', 'x emb', 'idle p50', 'p95', 'p99', 'load p50', 'p95', 'p99', 'CPU ms/img'], W));
console.log(row(['raw loop', f(rawIps), '1.00', '', f(rawLat.p50, 0), f(rawLat.p95, 0), f(rawLat.p99, 0), '', '', '', f(rawSeq.cpuMsPerImage, 0)], W));
console.log(row([`raw x${WINDOW}`, f(rawParIps), f(rawParIps / rawIps, 2), '', '', '', '', f(pct(rawPar.latencyMs, 50), 0), f(pct(rawPar.latencyMs, 95), 0), f(pct(rawPar.latencyMs, 99), 0), f(rawPar.cpuMsPerImage, 0)], W));
for (const [name, x] of [['embedded', emb], ['distributed', dist]] as const) {
  if (!x) {
    console.log(row([name, 'skipped: ' + DISTRIBUTED_SKIP_REASON], [12, 0]));
    continue;
  }
  const L = x.latencyMsIdle;
  const U = x.latencyMsUnderLoad;
  console.log(row([name, f(x.imagesPerSecond), f(x.imagesPerSecond / rawIps, 2), f(x.imagesPerSecond / emb.imagesPerSecond, 2), f(L.p50, 0), f(L.p95, 0), f(L.p99, 0), f(U.p50, 0), f(U.p95, 0), f(U.p99, 0), f(x.cpuMsPerImageUnderLoad, 0)], W));
}
console.log('(latency in ms: idle = one image at a time, load = all offered through the window; submit to AnalysisCompleted seen)');
console.log('');
const S = [12, 7, 11, 10, 13, 12, 8, 15];
console.log(row(['stage ms', 'ingest', 'provenance', 'detection', 'localization', 'explanation', 'sum', 'outside stages'], S));
console.log(row(['raw loop', '', '', f(result.raw.stageMsMean.decode + result.raw.stageMsMean.detect), f(result.raw.stageMsMean.localize), f(result.raw.stageMsMean.explain), f(mean(rawSeq.latencyMs)), ''], S));
for (const [name, x] of [['embedded', emb], ['distributed', dist]] as const) {
  if (!x) continue;
  const s = x.stageMsMeanIdle;
  console.log(row([name, f(s.ingest), f(s.provenance), f(s.faceDetection), f(s.forgeryLocalization), f(s.explanation), f(s.ingest + s.provenance + s.faceDetection + s.forgeryLocalization + s.explanation), `${f(x.outsideStagesMsIdle.mean)} (p50 ${f(x.outsideStagesMsIdle.p50)})`], S));
}
console.log('(mean handler time per stage, one image at a time; raw detection includes the decode, which the embedded pipeline does once for both stages)');
if (dist) {
  console.log('');
  console.log(row(['distributed processes', 'peak RSS MiB', 'CPU ms/img under load'], [26, 13, 22]));
  const names = [...new Set([...Object.keys(dist.peakRssMiB), ...Object.keys(dist.cpuMsPerImageUnderLoadByProcess)])];
  for (const k of names) console.log(row([k, f(dist.peakRssMiB[k], 0), f(dist.cpuMsPerImageUnderLoadByProcess[k], 1)], [26, 13, 22]));
  const statuses = Object.entries(dist.statuses).map(([k, v]) => `${k} ${v}`).join(', ');
  console.log(`distributed results: ${statuses}`);
  console.log('');
  const ratio = result.ratios.distributedOverEmbedded!;
  const added = result.addedP50Ms!;
  console.log(`distributed/embedded throughput: ${ratio.toFixed(3)} (aim >= 0.6: ${ratio >= 0.6 ? 'met' : 'NOT met'})`);
  console.log(`added p50 latency, one image (distributed - embedded): ${added >= 0 ? '+' : ''}${added.toFixed(1)} ms (aim < 30 ms: ${added < 30 ? 'met' : 'NOT met'})`);
}
console.log(`embedded/raw throughput: ${result.ratios.embeddedOverRaw.toFixed(2)}; embedded results: ${Object.entries(emb.statuses).map(([k, v]) => `${k} ${v}`).join(', ')}`);
console.log('');
console.log(row(['offered load', 'x sust.', 'offered/s', 'sent/s', 'achieved/s', 'p50 ms', 'p95', 'p99', 'p99/p50', 'peak RSS MiB (max over processes)'], [12, 8, 10, 8, 11, 8, 8, 8, 8, 34]));
for (const [name, x] of [['embedded', emb], ['distributed', dist]] as const) {
  for (const p of x?.sweep ?? []) {
    const rss = Math.max(...Object.values(p.peakRssMiB));
    console.log(row([p.afterOverload ? `${name} (after)` : name, f(p.fraction, 1), f(p.offeredPerSecond, 2), f(p.submittedPerSecond, 2), f(p.achievedPerSecond, 2), f(p.latencyMs.p50, 0), f(p.latencyMs.p95, 0), f(p.latencyMs.p99, 0), f(p.latencyMs.p99 / p.latencyMs.p50, 2), f(rss, 0)], [12, 8, 10, 8, 11, 8, 8, 8, 8, 34]));
  }
}
console.log('');
console.log(row(['round', 'raw/s', `raw x${WINDOW}/s`, 'emb/s', 'dist/s', 'emb/raw', 'dist/raw', `emb/raw x${WINDOW}`, `dist/raw x${WINDOW}`], [6, 7, 10, 7, 7, 8, 9, 12, 13]));
byRound.forEach((x, k) => console.log(row([String(k + 1), f(x.rawSequentialPerSecond, 2), f(x.rawParallelPerSecond, 2), f(x.embeddedPerSecond, 2), f(x.distributedPerSecond, 2), f(x.embeddedOverRaw, 2), f(x.distributedOverRaw, 2), f(x.embeddedOverRawParallel, 2), f(x.distributedOverRawParallel, 2)], [6, 7, 10, 7, 7, 8, 9, 12, 13])));
console.log(`ratios (median of ${ROUNDS} rounds): embedded/raw ${result.ratios.embeddedOverRaw.toFixed(2)} (target >= 0.9), distributed/raw ${f(result.ratios.distributedOverRaw, 2)} (target >= 0.7); against the raw loop ${WINDOW} at a time: embedded ${result.ratios.embeddedOverRawParallel.toFixed(2)}, distributed ${f(result.ratios.distributedOverRawParallel, 2)}; CPU per image over the raw loop's: embedded ${result.ratios.embeddedCpuOverRaw.toFixed(2)}, distributed ${f(result.ratios.distributedCpuOverRaw, 2)}`);
console.log(`written to ${path.relative(process.cwd(), OUT) || OUT} and ${path.relative(process.cwd(), SVG) || SVG}`);
