// What tracing costs: embedded-pipeline throughput with tracing off, and on at 100% sampling
// exporting OTLP (http/protobuf, the SDK's default batch processor) to a receiver in this process,
// in one run on the same images. Each measurement is its own child process (tracing must start
// before the pipeline's modules load), alternating off/on so that drift on this shared machine
// hits both alike; the figure is the ratio of the medians.
//   node --import tsx bench/tracing.ts [images per run] [rounds]     (make bench-tracing)
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';

const here = import.meta.dirname;
const childMode = process.argv[2] === '--child';

if (childMode) {
  // ---- child: one measurement ----
  const [, , , dir, home] = process.argv;
  const { startTracing, stopTracing } = await import('@tampertrace/shared/tracing-sdk');
  const tracing = await startTracing('bench-tracing');
  const { createLogger, loadConfig } = await import('@tampertrace/shared');
  const { startEmbedded } = await import('../services/tampertrace/src/embedded.ts');
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home });
  const embedded = await startEmbedded(cfg, createLogger('bench', 'warn'));
  const files = (await readdir(dir)).sort();
  const images = await Promise.all(files.map((f) => readFile(path.join(dir, f))));
  // Warm-up: model sessions' first runs, JIT; not counted.
  await Promise.all(images.slice(0, 2).map((b, i) => embedded.analyze(b, `warm-${i}`)));
  const measured = images.slice(2);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const results = await Promise.all(measured.map((b, i) => embedded.analyze(b, `img-${i}`)));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await embedded.close();
  await stopTracing();
  process.stdout.write(
    JSON.stringify({ tracing, images: measured.length, seconds, imagesPerS: measured.length / seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, completed: results.filter((a) => a.status !== 0).length }) + '\n',
  );
  process.exit(0);
}

// ---- parent ----
const N = Number(process.argv[2] || 40);
const ROUNDS = Number(process.argv[3] || 5);
const OUT = process.env.BENCH_OUT_TRACING ?? path.join(here, 'results', 'tracing.json');
const note = (what: string) => process.stderr.write(`[bench-tracing ${new Date().toISOString().slice(11, 19)}] ${what}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const loadAvg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

const { startOtlpReceiver } = await import('../services/tampertrace/src/otlp-receiver.testing.ts');
const { astronautPng, cameraPng } = await import('@tampertrace/shared/testing');

const work = await mkdtemp(path.join(os.tmpdir(), 'tt-bench-tracing-'));
const imgDir = path.join(work, 'images');
await mkdir(imgDir);
// N + 2 distinct 1920x1080 one-face JPEGs: a face photo on a canvas, placed differently per image.
note(`building ${N + 2} distinct 1920x1080 JPEGs in ${imgDir}`);
for (let i = 0; i < N + 2; i++) {
  const face = await sharp(i % 2 ? cameraPng() : astronautPng()).resize(560, 560).toBuffer();
  const jpeg = await sharp({ create: { width: 1920, height: 1080, channels: 3, background: { r: 40 + ((i * 23) % 150), g: 90, b: 120 } } })
    .composite([{ input: face, left: 200 + ((i * 97) % 1100), top: 120 + ((i * 31) % 380) }])
    .jpeg({ quality: 88 })
    .toBuffer();
  await writeFile(path.join(imgDir, `${String(i).padStart(4, '0')}.jpg`), jpeg);
}

const receiver = await startOtlpReceiver();
const loadAtStart = loadAvg();
const runs: Array<{ mode: 'off' | 'on'; imagesPerS: number; seconds: number; cpuSeconds: number }> = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of ['off', 'on'] as const) {
      const home = path.join(work, `home-${round}-${mode}`);
      const env: NodeJS.ProcessEnv = { ...process.env, TAMPERTRACE_LOG_LEVEL: 'warn' };
      for (const k of Object.keys(env)) if (k.startsWith('OTEL_')) delete env[k];
      if (mode === 'on') Object.assign(env, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_TRACES_SAMPLER: 'always_on' });
      const out = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['--import', 'tsx', path.join(here, 'tracing.ts'), '--child', imgDir, home], { env, maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
          err ? reject(new Error(`${mode} run failed: ${stderr || err}`)) : resolve(stdout),
        ),
      );
      const r = JSON.parse(out.trim().split('\n').pop()!) as { tracing: boolean; imagesPerS: number; seconds: number; cpuSeconds: number; completed: number };
      if (r.tracing !== (mode === 'on')) throw new Error(`${mode} run: tracing was ${r.tracing ? 'on' : 'off'}`);
      if (r.completed !== N) throw new Error(`${mode} run: ${r.completed} of ${N} analyses completed`);
      runs.push({ mode, imagesPerS: r.imagesPerS, seconds: r.seconds, cpuSeconds: r.cpuSeconds });
      note(`round ${round + 1} tracing ${mode}: ${r.imagesPerS.toFixed(2)} img/s, ${r.cpuSeconds.toFixed(1)} CPU s`);
      await rm(home, { recursive: true, force: true });
    }
  }
} finally {
  await receiver.close();
  await rm(work, { recursive: true, force: true });
}

const off = runs.filter((r) => r.mode === 'off');
const on = runs.filter((r) => r.mode === 'on');
const ratio = median(on.map((r) => r.imagesPerS)) / median(off.map((r) => r.imagesPerS));
const cpuRatio = median(on.map((r) => r.cpuSeconds)) / median(off.map((r) => r.cpuSeconds));
const result = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  loadAverage: { atStart: loadAtStart, atEnd: loadAvg() },
  method: `embedded pipeline, ${N} distinct 1920x1080 one-face JPEGs per run (after 2 warm-up images), all submitted at once; ${ROUNDS} rounds of tracing off then on, each a fresh process; on = OTel Node SDK, 100% sampling (always_on), OTLP http/protobuf with the default batch span processor to an in-process receiver`,
  imagesPerS: { off: off.map((r) => r.imagesPerS), on: on.map((r) => r.imagesPerS) },
  cpuSeconds: { off: off.map((r) => r.cpuSeconds), on: on.map((r) => r.cpuSeconds) },
  spansExported: { requests: receiver.requests, bytes: receiver.bytes },
  ratios: { throughputOnOverOff: Math.round(ratio * 1000) / 1000, cpuOnOverOff: Math.round(cpuRatio * 1000) / 1000 },
  costPercent: Math.round((1 - ratio) * 1000) / 10,
};
await writeFile(OUT, JSON.stringify(result, null, 2) + '\n');
note(`tracing on/off throughput ratio ${result.ratios.throughputOnOverOff} (cost ${result.costPercent}%), CPU ratio ${result.ratios.cpuOnOverOff}; written to ${OUT}`);
