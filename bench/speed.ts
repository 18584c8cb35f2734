// Speed of the analysis on 1920x1080 one-face JPEGs: the raw loop (stage functions back to
// back, no bus, no storage) against the embedded pipeline, in one run on the same inputs.
// Writes bench/results/speed.json. Usage: `make bench` or `node --import tsx bench/speed.ts [count]`.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { REPO_ROOT, createLogger, decodeRgb, loadConfig } from '@tampertrace/shared';
import { Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { loadModels, startEmbedded } from '../services/tampertrace/src/embedded.ts';
import { oneFace1080p } from './workload.ts';

const N = Number(process.argv[2] ?? 24);
const inputs = await oneFace1080p(N);
const limits = { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 };
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

// Raw loop.
const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: await mkdtemp(path.join(os.tmpdir(), 'tt-bench-')) });
const m = await loadModels(cfg);
const stageMs = { decode: [] as number[], detect: [] as number[], localize: [] as number[], explain: [] as number[] };
let faces = 0;
const warm = await decodeRgb(inputs[0], limits);
await m.localizer.localize(warm, await m.detector.detect(warm)); // warm-up: first ONNX runs allocate
const rawStart = performance.now();
for (const bytes of inputs) {
  let t = performance.now();
  const img = await decodeRgb(bytes, limits);
  stageMs.decode.push(performance.now() - t);
  t = performance.now();
  const det = await m.detector.detect(img);
  stageMs.detect.push(performance.now() - t);
  faces += det.length;
  t = performance.now();
  const loc = await m.localizer.localize(img, det);
  stageMs.localize.push(performance.now() - t);
  t = performance.now();
  if (loc.faces.length) await m.explainer.explain({ verdict: loc.verdict!, faces: loc.faces.map((f, i) => ({ faceIndex: i, forgeryScore: f.forgeryScore, regions: f.regions })) });
  stageMs.explain.push(performance.now() - t);
}
const rawSeconds = (performance.now() - rawStart) / 1000;
await Promise.all([m.detector.close(), m.model.close()]);

// Embedded pipeline: all inputs offered at once; stage concurrency from config (default 2).
const embedded = await startEmbedded(cfg, createLogger('bench', 'warn'));
await embedded.analyze(inputs[0], 'warm-up.jpg');
const embStart = performance.now();
const analyses = await Promise.all(inputs.map((b, i) => embedded.analyze(b, `in-${i}.jpg`)));
const embSeconds = (performance.now() - embStart) / 1000;
const latencies = analyses.map((a) => timestampDate(a.completedAt!).getTime() - timestampDate(a.submittedAt!).getTime());
// One image at a time: the latency of an idle pipeline.
const single: number[] = [];
for (const b of inputs.slice(0, 8)) {
  const t = performance.now();
  await embedded.analyze(b, 'single.jpg');
  single.push(performance.now() - t);
}
const perStage = (s: Stage) => mean(analyses.map((a) => a.timings.find((t) => t.stage === s)?.durationMs ?? 0));
await embedded.close();
await rm(cfg.TAMPERTRACE_HOME, { recursive: true, force: true });

const result = {
  date: new Date().toISOString(),
  machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${process.platform}/${process.arch}, node ${process.version}`,
  workload: `${N} JPEGs 1920x1080, one face each (90-350 px), quality 90`,
  facesFound: faces,
  raw: {
    imagesPerSecond: N / rawSeconds,
    msPerImage: (rawSeconds * 1000) / N,
    stageMsMean: Object.fromEntries(Object.entries(stageMs).map(([k, v]) => [k, mean(v)])),
    stageMsP95: Object.fromEntries(Object.entries(stageMs).map(([k, v]) => [k, pct(v, 95)])),
  },
  embedded: {
    imagesPerSecond: N / embSeconds,
    latencyMsUnderLoad: { p50: pct(latencies, 50), p95: pct(latencies, 95), p99: pct(latencies, 99) },
    latencyMsIdle: { p50: pct(single, 50), max: Math.max(...single) },
    stageMsMean: {
      ingest: perStage(Stage.INGEST),
      faceDetection: perStage(Stage.FACE_DETECTION),
      forgeryLocalization: perStage(Stage.FORGERY_LOCALIZATION),
      explanation: perStage(Stage.EXPLANATION),
    },
  },
  ratios: { embeddedOverRaw: N / embSeconds / (N / rawSeconds) },
};
await mkdir(path.join(REPO_ROOT, 'bench', 'results'), { recursive: true });
await writeFile(path.join(REPO_ROOT, 'bench', 'results', 'speed.json'), JSON.stringify(result, null, 2) + '\n');
const f = (x: number) => x.toFixed(1);
console.log(`Speed on ${result.machine}; ${result.workload}; faces found ${faces}/${N}`);
console.log(`raw loop:  ${f(result.raw.imagesPerSecond)} img/s, ${f(result.raw.msPerImage)} ms/img  (decode ${f(result.raw.stageMsMean.decode)}, detect ${f(result.raw.stageMsMean.detect)}, localize ${f(result.raw.stageMsMean.localize)}, explain ${f(result.raw.stageMsMean.explain)} ms)`);
console.log(`embedded:  ${f(result.embedded.imagesPerSecond)} img/s; latency under load p50 ${f(result.embedded.latencyMsUnderLoad.p50)} p95 ${f(result.embedded.latencyMsUnderLoad.p95)} p99 ${f(result.embedded.latencyMsUnderLoad.p99)} ms; idle p50 ${f(result.embedded.latencyMsIdle.p50)} ms`);
console.log(`           stages: ingest ${f(result.embedded.stageMsMean.ingest)}, detection ${f(result.embedded.stageMsMean.faceDetection)}, localization ${f(result.embedded.stageMsMean.forgeryLocalization)}, explanation ${f(result.embedded.stageMsMean.explanation)} ms`);
console.log(`ratio embedded/raw throughput: ${result.ratios.embeddedOverRaw.toFixed(2)}`);
