// Where the embedded pipeline's main thread spends its time: runs the benchmark workload through
// it under the V8 profiler (node:inspector; the same data as `node --cpu-prof`) and prints the
// functions and files with the most self time. sharp and onnxruntime work on their own threads,
// so their time shows here only as the JS around them; "(idle)" is the main thread waiting.
//
// Usage: `node --import tsx bench/profile.ts [count]` (default 24). BENCH_PROFILE_OUT: also
// write the .cpuprofile there (open it in Chrome DevTools or speedscope).
import { Session } from 'node:inspector/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, Semaphore, createLogger, loadConfig } from '@tampertrace/shared';
import { startEmbedded } from '../services/tampertrace/src/embedded.ts';
import { mixedWorkload } from './workload.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

const N = Number(process.argv[2] ?? 24);
const items = await mixedWorkload(N);
const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: await mkdtemp(path.join(os.tmpdir(), 'tt-profile-')), TAMPERTRACE_DATABASE_URL: '', TAMPERTRACE_KAFKA_BROKERS: '', TAMPERTRACE_S3_ENDPOINT: '' });
const embedded = await startEmbedded(cfg, createLogger('profile', 'warn'));
for (const x of items.slice(0, 2)) await embedded.analyze(x.bytes, 'warm-up.jpg');

const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 500 });
await session.post('Profiler.start');
const slots = new Semaphore(8);
const start = performance.now();
const cpu0 = process.cpuUsage();
await Promise.all(
  items.map(async (x, i) => {
    await slots.acquire();
    try {
      await embedded.analyze(x.bytes, `p-${i}.jpg`);
    } finally {
      slots.release();
    }
  }),
);
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpu0);
const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: { nodes: ProfileNode[]; startTime: number; endTime: number } };
session.disconnect();
await embedded.close();
await rm(cfg.TAMPERTRACE_HOME, { recursive: true, force: true });
if (process.env.BENCH_PROFILE_OUT) await writeFile(process.env.BENCH_PROFILE_OUT, JSON.stringify(profile));

const total = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0);
const byFn = new Map<string, number>();
const byFile = new Map<string, number>();
for (const n of profile.nodes) {
  const hits = n.hitCount ?? 0;
  const file = n.callFrame.url ? path.relative(REPO_ROOT, n.callFrame.url.replace(/^file:\/\//, '')) : n.callFrame.functionName;
  const fn = `${n.callFrame.functionName || '(anonymous)'} ${file}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
  byFn.set(fn, (byFn.get(fn) ?? 0) + hits);
  const group = file.includes('node_modules/') ? file.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, '$1 (dependency)') : file;
  byFile.set(group, (byFile.get(group) ?? 0) + hits);
}
const top = (m: Map<string, number>, k: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k);
console.log(`${N} inputs through the embedded pipeline, 8 in flight: ${(N / seconds).toFixed(2)} images/s; process CPU ${((cpu.user + cpu.system) / 1e3 / N).toFixed(0)} ms per image (all threads); load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('\nmain thread, share of samples by file:');
for (const [k, v] of top(byFile, 15)) console.log(`${((100 * v) / total).toFixed(1).padStart(6)}%  ${k}`);
console.log('\nmain thread, share of samples by function (self time):');
for (const [k, v] of top(byFn, 25)) console.log(`${((100 * v) / total).toFixed(1).padStart(6)}%  ${k}`);
