// Speed and memory of every forgery-localization model in the manifest, in one run on the same
// crops: milliseconds per face at batch 1 and 8 with onnxruntime's intra-op threads 1 and 2, as
// ratios against forensic-inconsistency at batch 1 on 1 thread, and the resident memory of a
// process that holds one session of the model, as the localization service does. Each model and
// thread count runs in its own child process, so that one's memory and allocator state do not
// colour another's; the two batch sizes alternate within rounds, and each figure is the median
// over rounds.
//
// Usage: part of `make bench`, or `node --import tsx bench/localizer-speed.ts [rounds]` (default 5).
// BENCH_LOCALIZER_OUT: where the JSON goes (default bench/results/localizer-speed.json).
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, decodeRgb, loadConfig, readManifest } from '@tampertrace/shared';
import { ASTRONAUT_FACE, astronautPng, cameraPng } from '@tampertrace/shared/testing';
import { cropRectFor } from '@tampertrace/forgery-localization/geometry';
import { cropFace } from '@tampertrace/forgery-localization/localize';
import { loadForgeryModel } from '@tampertrace/forgery-localization/model';
import { median } from './stats.ts';

const BASELINE = 'forensic-inconsistency';
const BATCHES = [1, 8];
const THREADS = [1, 2];
const RUNS_PER_ROUND = 4; // runs of each configuration per round, after one warm-up run

interface ChildResult {
  model: string;
  threads: number;
  /** `${batch}x${threads}` -> median ms per face over rounds. */
  msPerFace: Record<string, number>;
  rssMiB: { afterLoad: number; peak: number };
}

async function child(name: string, threads: number, rounds: number): Promise<ChildResult> {
  const cfg = loadConfig();
  const manifest = await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST);
  const entry = manifest.models.find((e) => e.name === name)!;
  const limits = { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 };
  const imgs = [await decodeRgb(astronautPng(), limits), await decodeRgb(cameraPng(), limits)];
  const rect = cropRectFor(ASTRONAUT_FACE.box, entry.cropScale ?? 1.5);
  const crops = await Promise.all(Array.from({ length: 8 }, (_, i) => cropFace(imgs[i % 2], { ...rect, x: rect.x + 3 * i }, entry.inputSize)));
  let peak = 0;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
  const timer = setInterval(sample, 5);
  const m = await loadForgeryModel(manifest.root, entry, { intraOpNumThreads: threads });
  sample();
  const afterLoad = process.memoryUsage().rss;
  const samples = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (const b of BATCHES) {
      const batch = crops.slice(0, b);
      await m.run(batch); // warm-up
      const times: number[] = [];
      for (let i = 0; i < RUNS_PER_ROUND; i++) {
        const t0 = process.hrtime.bigint();
        await m.run(batch);
        times.push(Number(process.hrtime.bigint() - t0) / 1e6 / b);
      }
      const key = `${b}x${threads}`;
      samples.set(key, [...(samples.get(key) ?? []), median(times)]);
    }
  }
  clearInterval(timer);
  sample();
  await m.close();
  return { model: name, threads, msPerFace: Object.fromEntries([...samples].map(([k, v]) => [k, median(v)])), rssMiB: { afterLoad: afterLoad / 2 ** 20, peak: peak / 2 ** 20 } };
}

function runChild(name: string, threads: number, rounds: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', name, String(threads), String(rounds)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!)) : reject(new Error(`${name}: child exited ${code}`))));
  });
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') {
  console.log(JSON.stringify(await child(argv[1], Number(argv[2]), Number(argv[3]))));
} else {
  const rounds = Number(argv[0] ?? 5);
  const loadAtStart = os.loadavg();
  const cfg = loadConfig();
  const names = (await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST)).models.filter((e) => e.task === 'forgery-localization').map((e) => e.name);
  const results: Array<{ model: string; msPerFace: Record<string, number>; rssMiB: Record<string, { afterLoad: number; peak: number }> }> = [];
  for (const n of names) {
    const runs: ChildResult[] = [];
    for (const t of THREADS) runs.push(await runChild(n, t, rounds));
    results.push({ model: n, msPerFace: Object.assign({}, ...runs.map((r) => r.msPerFace)), rssMiB: Object.fromEntries(runs.map((r) => [`${r.threads} thread${r.threads > 1 ? 's' : ''}`, r.rssMiB])) });
  }
  const base = results.find((r) => r.model === BASELINE)?.msPerFace['1x1'];
  const cpu = os.cpus()[0]?.model ?? 'cpu';
  const out = {
    date: new Date().toISOString(),
    machine: `${os.cpus().length} x ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${process.platform}/${process.arch}, node ${process.version}`,
    loadAverage: { atStart: loadAtStart, atEnd: os.loadavg() },
    commit: (() => {
      try {
        return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT }).toString().trim();
      } catch {
        return undefined;
      }
    })(),
    command: `node --import tsx bench/localizer-speed.ts ${rounds}`,
    method: `one 256x256 crop per face (the astronaut and camera photos); per configuration ${RUNS_PER_ROUND} timed runs after a warm-up, their median, then the median over ${rounds} rounds; session on the calling thread (no worker pool), CPU execution provider, graph optimisation "all"; ratios against ${BASELINE} at batch 1 on 1 thread; RSS in MiB: the child process holding one session, after load and at its peak over the runs`,
    models: results.map((r) => ({ ...r, ratioToBaseline: base ? Object.fromEntries(Object.entries(r.msPerFace).map(([k, v]) => [k, v / base])) : undefined })),
  };
  const file = process.env.BENCH_LOCALIZER_OUT ?? path.join(REPO_ROOT, 'bench', 'results', 'localizer-speed.json');
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`Localizer speed on ${out.machine} (ms per face, ratio to ${BASELINE} batch 1 / 1 thread)`);
  console.log(`${'model'.padEnd(26)} ${BATCHES.flatMap((b) => THREADS.map((t) => `batch ${b}, ${t} thr`.padEnd(20))).join('')}RSS MiB, 1 thread (load / peak)`);
  for (const r of out.models) {
    const cells = BATCHES.flatMap((b) => THREADS.map((t) => `${r.msPerFace[`${b}x${t}`].toFixed(1)} (${r.ratioToBaseline?.[`${b}x${t}`]?.toFixed(2) ?? '-'}x)`.padEnd(20)));
    const rss = r.rssMiB['1 thread'];
    console.log(`${r.model.padEnd(26)} ${cells.join('')}${rss.afterLoad.toFixed(0)} / ${rss.peak.toFixed(0)}`);
  }
  console.log(`written to ${path.relative(REPO_ROOT, file)}`);
}
