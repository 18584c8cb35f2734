// Memory over a long run: COUNT analyses (default 10,000) of small one-face JPEGs through the
// embedded pipeline or, with BENCH_SOAK_MODE=distributed, through the five service processes
// on the local Kafka, S3 and PostgreSQL; resident memory of every process is sampled as it goes.
// "Flat" means the last sample is within 10% of the one taken after the first tenth of the run
// (the warm-up: caches, pools and JIT fill up first). A single sample can land on a peak of the
// garbage collector's sawtooth, so the median of the last quarter's samples against the median of
// those from the first tenth to the first quarter is reported too.
//
// Usage: `node --import tsx bench/soak.ts [count]`. BENCH_SOAK_MODE: embedded (default) or
// distributed (needs the local servers' addresses, as bench/speed.ts). BENCH_SOAK_SIZE: image
// width (default 640; height 3/4 of it). BENCH_WINDOW: in flight (default 4). BENCH_OUT: the
// JSON (default bench/results/soak-<mode>.json).
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT, Semaphore, createLogger, loadConfig } from '@tampertrace/shared';
import { astronautPng } from '@tampertrace/shared/testing';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { startEmbedded } from '../services/tampertrace/src/embedded.ts';
import { distributedReady, startDistributed, type Driver } from './distributed.ts';
import { median } from './stats.ts';

const COUNT = Number(process.argv[2] ?? 10_000);
const MODE = process.env.BENCH_SOAK_MODE || 'embedded';
const WIDTH = Number(process.env.BENCH_SOAK_SIZE ?? 640);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 4);
const OUT = path.resolve(process.env.BENCH_OUT || path.join(REPO_ROOT, 'bench', 'results', `soak-${MODE}.json`));
const SAMPLES = 40;
if (!['embedded', 'distributed'].includes(MODE)) throw new Error(`BENCH_SOAK_MODE must be embedded or distributed, got ${MODE}`);
if (MODE === 'distributed' && !distributedReady) throw new Error('distributed soak: the local servers\' addresses are not set (eval "$(deploy/local/infra.sh env)")');

const note = (what: string) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${what}\n`);
const loadAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);

// Eight distinct small photos: the astronaut at different crops and JPEG qualities.
const HEIGHT = Math.round((WIDTH * 3) / 4);
const inputs: Buffer[] = [];
for (let i = 0; i < 8; i++) {
  const side = Math.round(HEIGHT * (0.8 + 0.1 * (i % 3)));
  const photo = await sharp(astronautPng()).resize(side).toBuffer();
  inputs.push(
    await sharp({ create: { width: WIDTH, height: HEIGHT, channels: 3, background: { r: 90 + i * 10, g: 110, b: 130 } } })
      .composite([{ input: photo, left: Math.round(((WIDTH - side) * i) / 7), top: HEIGHT - side }])
      .jpeg({ quality: 80 + i })
      .toBuffer(),
  );
}

let driver: Driver;
let rss: () => Promise<Record<string, number>>;
let stop: () => Promise<unknown>;
let home: string | undefined;
if (MODE === 'embedded') {
  home = await mkdtemp(path.join(os.tmpdir(), 'tt-soak-'));
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home, TAMPERTRACE_DATABASE_URL: '', TAMPERTRACE_KAFKA_BROKERS: '', TAMPERTRACE_S3_ENDPOINT: '' });
  const embedded = await startEmbedded(cfg, createLogger('soak', 'warn'));
  driver = {
    async analyze(bytes, name) {
      const t0 = performance.now();
      const analysis = await embedded.analyze(bytes, name);
      return { ms: performance.now() - t0, analysis };
    },
  };
  rss = async () => ({ 'tampertrace (embedded)': process.memoryUsage().rss / 2 ** 20 });
  stop = () => embedded.close();
} else {
  note('starting the services');
  const d = await startDistributed();
  driver = d;
  rss = () => d.rssMiB();
  stop = () => d.stop();
}

const samples: Array<{ done: number; seconds: number; rssMiB: Record<string, number> }> = [];
const statuses: Record<string, number> = {};
const slots = new Semaphore(WINDOW);
const start = performance.now();
let done = 0;
let nextSample = 0;
try {
  await Promise.all(
    Array.from({ length: COUNT }, async (_, i) => {
      await slots.acquire();
      try {
        const { analysis } = await driver.analyze(inputs[i % inputs.length], `soak-${i}.jpg`);
        const status = AnalysisStatus[analysis.status];
        statuses[status] = (statuses[status] ?? 0) + 1;
      } finally {
        slots.release();
      }
      done++;
      if (done >= nextSample) {
        nextSample += Math.max(1, Math.floor(COUNT / SAMPLES));
        const r = await rss();
        samples.push({ done, seconds: (performance.now() - start) / 1000, rssMiB: r });
        note(`${done}/${COUNT}: ${Object.entries(r).map(([k, v]) => `${k} ${v.toFixed(0)} MiB`).join(', ')}`);
      }
    }),
  );
  samples.push({ done, seconds: (performance.now() - start) / 1000, rssMiB: await rss() });
} finally {
  await stop();
  if (home) await rm(home, { recursive: true, force: true });
}

// After the first tenth (warm-up) against the end, per process.
const base = samples.find((s) => s.done >= COUNT / 10) ?? samples[0];
const last = samples[samples.length - 1];
const growth = Object.fromEntries(Object.keys(last.rssMiB).map((k) => [k, last.rssMiB[k] / (base.rssMiB[k] ?? last.rssMiB[k]) - 1]));
const early = samples.filter((x) => x.done >= COUNT / 10 && x.done <= COUNT / 4);
const late = samples.filter((x) => x.done >= (COUNT * 3) / 4);
const growthOfMedians = Object.fromEntries(
  Object.keys(last.rssMiB).map((k) => [k, median(late.map((x) => x.rssMiB[k] ?? 0)) / median(early.map((x) => x.rssMiB[k] ?? 0)) - 1]),
);
const result = {
  date: new Date().toISOString(),
  machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`,
  loadAverageAtStart: loadAtStart,
  loadAverageAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
  mode: MODE,
  workload: `${COUNT} analyses of 8 distinct ${WIDTH}x${HEIGHT} one-face JPEGs, ${WINDOW} in flight`,
  imagesPerSecond: COUNT / last.seconds,
  statuses,
  /** RSS growth from after the first tenth of the run to the end, per process (aim: within 10%). */
  rssGrowth: growth,
  flatWithin10Percent: Object.values(growth).every((g) => Math.abs(g) <= 0.1),
  /** Median RSS of the last quarter's samples over that of the first tenth to quarter, per process. */
  rssGrowthOfMedians: growthOfMedians,
  samples,
};
await mkdir(path.dirname(OUT), { recursive: true });
await writeFile(OUT, JSON.stringify(result, null, 2) + '\n');
console.log(`${result.workload} (${MODE}): ${result.imagesPerSecond.toFixed(1)} images/s; load average ${loadAtStart.join(' ')} -> ${result.loadAverageAtEnd.join(' ')}`);
for (const k of Object.keys(last.rssMiB)) console.log(`  ${k}: ${base.rssMiB[k]?.toFixed(0)} MiB after ${base.done} -> ${last.rssMiB[k].toFixed(0)} MiB after ${last.done} (${(growth[k] * 100).toFixed(1)}%); median of the last quarter over the early one ${(growthOfMedians[k] * 100).toFixed(1)}%`);
console.log(`written to ${path.relative(process.cwd(), OUT)}`);
