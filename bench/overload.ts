// Overload through the public API (issue #8): what happens when images come in faster than the
// pipeline can analyse them, for minutes rather than seconds. Per mode (BENCH_OVERLOAD_MODE:
// embedded, distributed or both, the default when the local servers' addresses are set):
//   1. the sustained rate: the benchmark workload through the pipeline, 8 in flight;
//   2. calm:     open-loop Poisson submissions at 0.5x that rate for BENCH_CALM_S (default 40 s);
//   3. overload: at 2x for BENCH_OVERLOAD_S (default 180 s);
//   4. recovery: at 0.5x again for BENCH_RECOVERY_S (default 90 s).
// Every submission is a gRPC Submit (reanalyze: the workload repeats) for a tenant whose
// analyses in flight are capped (BENCH_MAX_IN_FLIGHT, default 48): beyond the cap ingest answers
// RESOURCE_EXHAUSTED and the image is counted as refused, not retried. Each accepted analysis is
// followed to its end with WatchAnalysis (latency: Submit to the final state). The resident memory
// of every process is sampled every 2 s.
//
// Bounded: in the overload phase's second half, no process's RSS is above its first-half peak
// by more than 10%. Recovered: latency p50 of the recovery phase's second half within 1.5x the
// calm phase's. Reported, not asserted: the machine is shared.
//
// Usage: `make bench-overload` or `node --import tsx bench/overload.ts`. BENCH_OUT: the JSON
// (default bench/results/overload.json).
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { REPO_ROOT, Semaphore, createLogger, grpc, loadConfig, rng, serviceClient, unary } from '@tampertrace/shared';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { IngestService, SubmitRequestSchema, type SubmitResponse } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { serveIngest } from '@tampertrace/ingest/service';
import { startEmbedded } from '../services/tampertrace/src/embedded.ts';
import { distributedReady, startDistributed } from './distributed.ts';
import { mixedWorkload } from './workload.ts';
import { pct } from './stats.ts';
import { finalAnalysis } from './api-client.ts';

const num = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt);
  if (!(v > 0)) throw new Error(`${name} must be a positive number, got ${process.env[name]}`);
  return v;
};
const CALM_S = num('BENCH_CALM_S', 40);
const OVERLOAD_S = num('BENCH_OVERLOAD_S', 180);
const RECOVERY_S = num('BENCH_RECOVERY_S', 90);
const MAX_IN_FLIGHT = num('BENCH_MAX_IN_FLIGHT', 48);
const MODES = (process.env.BENCH_OVERLOAD_MODE || (distributedReady ? 'embedded,distributed' : 'embedded')).split(',');
for (const m of MODES) if (!['embedded', 'distributed'].includes(m)) throw new Error(`BENCH_OVERLOAD_MODE: embedded, distributed or both, got ${m}`);
if (MODES.includes('distributed') && !distributedReady) throw new Error('distributed: the local servers\' addresses are not set (eval "$(deploy/local/infra.sh env)")');
const OUT = path.resolve(process.env.BENCH_OUT || path.join(REPO_ROOT, 'bench', 'results', 'overload.json'));
const SAMPLE_MS = 2000;

const note = (what: string) => process.stderr.write(`[overload ${new Date().toISOString().slice(11, 19)}] ${what}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const loadAvg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

const items = await mixedWorkload(24);
const loadAtStart = loadAvg();

/** Submit, then the analysis followed to its end; `refused` when ingest answered RESOURCE_EXHAUSTED. */
async function analyze(client: grpc.Client, bytes: Uint8Array, name: string): Promise<{ refused: true } | { refused: false; ms: number; status: string }> {
  const t0 = performance.now();
  let r: SubmitResponse;
  try {
    r = await unary<SubmitResponse>(client, 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: bytes }, sourceName: name, reanalyze: true }));
  } catch (err) {
    const code = (err as grpc.ServiceError).code;
    if (code === grpc.status.RESOURCE_EXHAUSTED) return { refused: true };
    // A bad input is rejected by Submit itself, with the id of its REJECTED analysis.
    if (code === grpc.status.INVALID_ARGUMENT) return { refused: false, ms: performance.now() - t0, status: AnalysisStatus[AnalysisStatus.REJECTED] };
    // No answer within the client's deadline: a failure of the pipeline, counted, not fatal.
    if (code === grpc.status.DEADLINE_EXCEEDED) return { refused: false, ms: performance.now() - t0, status: 'SUBMIT_DEADLINE_EXCEEDED' };
    throw err;
  }
  const last = await finalAnalysis(client, r.analysisId);
  return { refused: false, ms: performance.now() - t0, status: AnalysisStatus[last.status] };
}

interface Done {
  phase: string;
  /** Seconds since the phase began, at submission. */
  at: number;
  refused: boolean;
  ms?: number;
  status?: string;
}

async function runMode(mode: string, client: grpc.Client, rss: () => Promise<Record<string, number>>) {
  note(`${mode}: the sustained rate (24 images, 8 in flight)`);
  const slots = new Semaphore(8);
  for (const [i, x] of items.slice(0, 4).entries()) await analyze(client, x.bytes, `warm-${i}.jpg`);
  const t0 = performance.now();
  const sat = await Promise.all(
    items.map(async (x, i) => {
      await slots.acquire();
      try {
        return await analyze(client, x.bytes, `sat-${i}.jpg`);
      } finally {
        slots.release();
      }
    }),
  );
  if (sat.some((x) => x.refused)) throw new Error('refused while measuring the sustained rate: raise BENCH_MAX_IN_FLIGHT');
  const sustained = items.length / ((performance.now() - t0) / 1000);
  note(`${mode}: sustained ${sustained.toFixed(2)} images/s`);

  const samples: Array<{ t: number; phase: string; inFlight: number; rssMiB: Record<string, number> }> = [];
  const done: Done[] = [];
  const pending: Promise<void>[] = [];
  let inFlight = 0;
  let phase = '';
  const start = performance.now();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push({ t: (performance.now() - start) / 1000, phase, inFlight, rssMiB: await rss() });
      await sleep(SAMPLE_MS);
    }
  })();
  const rand = rng(5);
  let k = 0;
  for (const [name, factor, seconds] of [['calm', 0.5, CALM_S], ['overload', 2, OVERLOAD_S], ['recovery', 0.5, RECOVERY_S]] as const) {
    phase = name;
    note(`${mode}: ${name}, ${(factor * sustained).toFixed(2)} images/s offered for ${seconds} s`);
    const p0 = performance.now();
    let next = 0;
    while (next < seconds * 1000) {
      const wait = p0 + next - performance.now();
      if (wait > 0) await sleep(wait);
      const at = (performance.now() - p0) / 1000;
      const x = items[k % items.length];
      const i = k++;
      inFlight++;
      pending.push(
        analyze(client, x.bytes, `${name}-${i}.jpg`).then((r) => {
          inFlight--;
          done.push(r.refused ? { phase: name, at, refused: true } : { phase: name, at, refused: false, ms: r.ms, status: r.status });
        }),
      );
      next += (-Math.log(1 - rand()) / (factor * sustained)) * 1000;
    }
  }
  note(`${mode}: waiting for the last analyses`);
  await Promise.all(pending);
  sampling = false;
  await sampler;

  const phases = ['calm', 'overload', 'recovery'].map((name) => {
    const len = { calm: CALM_S, overload: OVERLOAD_S, recovery: RECOVERY_S }[name]!;
    const all = done.filter((d) => d.phase === name);
    const ok = all.filter((d) => !d.refused);
    const secondHalf = ok.filter((d) => d.at >= len / 2).map((d) => d.ms!);
    const inPhase = samples.filter((s) => s.phase === name);
    const peak = (ss: typeof samples) => {
      const out: Record<string, number> = {};
      for (const s of ss) for (const [p, v] of Object.entries(s.rssMiB)) out[p] = Math.max(out[p] ?? 0, v);
      return out;
    };
    const statuses: Record<string, number> = {};
    for (const d of ok) statuses[d.status!] = (statuses[d.status!] ?? 0) + 1;
    return {
      phase: name,
      seconds: len,
      submitted: all.length,
      refused: all.filter((d) => d.refused).length,
      statuses,
      latencyMs: { p50: pct(ok.map((d) => d.ms!), 50), p95: pct(ok.map((d) => d.ms!), 95), p99: pct(ok.map((d) => d.ms!), 99) },
      latencyMsSecondHalf: { p50: pct(secondHalf, 50), p95: pct(secondHalf, 95) },
      maxInFlight: Math.max(0, ...inPhase.map((s) => s.inFlight)),
      peakRssMiBFirstHalf: peak(inPhase.filter((s) => s.t - inPhase[0].t < len / 2)),
      peakRssMiBSecondHalf: peak(inPhase.filter((s) => s.t - inPhase[0].t >= len / 2)),
    };
  });
  const [calm, over, rec] = phases;
  const growth = Object.fromEntries(Object.keys(over.peakRssMiBSecondHalf).map((p) => [p, over.peakRssMiBSecondHalf[p] / (over.peakRssMiBFirstHalf[p] ?? over.peakRssMiBSecondHalf[p]) - 1]));
  return {
    mode,
    sustainedPerSecond: sustained,
    phases,
    /** Overload, second half's peak RSS over the first half's, per process (aim: within 10%). */
    overloadRssGrowth: growth,
    bounded: Object.values(growth).every((g) => g <= 0.1),
    /** Recovery phase's second-half p50 over the calm phase's p50 (aim: within 1.5). */
    recoveryP50OverCalm: rec.latencyMsSecondHalf.p50 / calm.latencyMs.p50,
    recovered: rec.latencyMsSecondHalf.p50 <= 1.5 * calm.latencyMs.p50,
    samples,
  };
}

const results = [];
for (const mode of MODES) {
  if (mode === 'embedded') {
    const home = await mkdtemp(path.join(os.tmpdir(), 'tt-overload-'));
    const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home, TAMPERTRACE_GRPC_PORT: '0', TAMPERTRACE_HTTP_PORT: '0', TAMPERTRACE_DATABASE_URL: '', TAMPERTRACE_KAFKA_BROKERS: '', TAMPERTRACE_S3_ENDPOINT: '' });
    const embedded = await startEmbedded(cfg, createLogger('overload', 'warn'));
    const servers = await serveIngest(embedded.ingest, cfg);
    const { apiKey } = await embedded.ingest.tenants.create('overload', { ratePerS: 10_000, burst: 10_000, maxInFlight: MAX_IN_FLIGHT });
    const client = serviceClient(IngestService, `127.0.0.1:${servers.grpcPort}`, { apiKey });
    try {
      results.push(await runMode(mode, client, async () => ({ 'tampertrace (embedded)': process.memoryUsage().rss / 2 ** 20 })));
    } finally {
      client.close();
      await servers.stop();
      await embedded.close();
      await rm(home, { recursive: true, force: true });
    }
  } else {
    note('distributed: starting the services');
    const d = await startDistributed();
    try {
      const client = await d.apiClient('overload', { ratePerS: 10_000, burst: 10_000, maxInFlight: MAX_IN_FLIGHT });
      try {
        results.push(await runMode(mode, client, () => d.rssMiB()));
      } finally {
        client.close();
      }
    } finally {
      await d.stop();
    }
  }
}

const result = {
  date: new Date().toISOString(),
  machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`,
  loadAverageAtStart: loadAtStart,
  loadAverageAtEnd: loadAvg(),
  workload: `bench/workload.ts mixedWorkload(24), repeated (reanalyze); gRPC Submit + WatchAnalysis; tenant cap ${MAX_IN_FLIGHT} analyses in flight; calm ${CALM_S} s at 0.5x, overload ${OVERLOAD_S} s at 2x, recovery ${RECOVERY_S} s at 0.5x the sustained rate`,
  modes: results,
};
await mkdir(path.dirname(OUT), { recursive: true });
await writeFile(OUT, JSON.stringify(result, null, 2) + '\n');
const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
for (const r of results) {
  console.log(`\n${r.mode}: sustained ${f(r.sustainedPerSecond, 2)} images/s`);
  console.log('phase      submitted  refused  p50 ms   p95 ms  2nd-half p50  max in flight  peak RSS MiB (1st half -> 2nd half)');
  for (const p of r.phases) {
    const rssTxt = Object.keys(p.peakRssMiBSecondHalf).map((k) => `${k} ${f(p.peakRssMiBFirstHalf[k])}->${f(p.peakRssMiBSecondHalf[k])}`).join(', ');
    console.log(`${p.phase.padEnd(10)} ${String(p.submitted).padStart(9)} ${String(p.refused).padStart(8)} ${f(p.latencyMs.p50).padStart(7)} ${f(p.latencyMs.p95).padStart(8)} ${f(p.latencyMsSecondHalf.p50).padStart(13)} ${String(p.maxInFlight).padStart(14)}  ${rssTxt}`);
  }
  console.log(`memory bounded under 2x (2nd-half peak within 10% of the 1st half's, every process): ${r.bounded ? 'yes' : 'NO'}; recovered (recovery p50 / calm p50 = ${f(r.recoveryP50OverCalm, 2)}, aim <= 1.5): ${r.recovered ? 'yes' : 'NO'}`);
}
console.log(`written to ${path.relative(process.cwd(), OUT)}`);
