// One writer per embedded data folder, through the real commands: `serve` and `analyze` started at
// once on one folder, then more analyses through the server (analyze and HTTP at the same time);
// no audit record is lost and the chain verifies. The audit commands give the same output through
// the server as on the folder directly; the ones the API cannot answer stop with exit 3. A server
// killed with kill -9 leaves a stale lock that the next command takes over.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT } from '@tampertrace/shared';
import { astronautPng, cameraPng } from '@tampertrace/shared/testing';
import { lockFile, type LockHolder } from './data-lock.ts';

const BIN = path.join(REPO_ROOT, 'services', 'tampertrace', 'bin', 'tampertrace.mjs');
let home: string;
let work: string;
let env: NodeJS.ProcessEnv;
let server: ChildProcess | undefined;
let serverOut = '';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tampertrace(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, cwd: work, maxBuffer: 1 << 26 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

/** Distinct small images (so that no submission is a duplicate) and one file that is no image. */
async function inputs(dir: string, size: number, junk: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = [path.join(dir, 'camera.png'), path.join(dir, 'astronaut.png'), path.join(dir, 'notes.jpg')];
  await writeFile(files[0], await sharp(cameraPng()).resize(size, size).png().toBuffer());
  await writeFile(files[1], await sharp(astronautPng()).resize(size, size).png().toBuffer());
  await writeFile(files[2], junk);
  return files;
}

/** Analysis id and status of each output JSON of an analyze run. */
async function outputsOf(dir: string): Promise<Array<{ analysisId: string; status: string }>> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  return Promise.all(names.map(async (n) => JSON.parse(await readFile(path.join(dir, n), 'utf8')) as { analysisId: string; status: string }));
}

const holder = async (): Promise<LockHolder> => JSON.parse(await readFile(lockFile(home), 'utf8'));

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'tt-folder-'));
  work = await mkdtemp(path.join(os.tmpdir(), 'tt-folder-work-'));
  env = { ...process.env, TAMPERTRACE_HOME: home, TAMPERTRACE_LOG_LEVEL: 'warn', TAMPERTRACE_HTTP_PORT: '0', TAMPERTRACE_GRPC_PORT: '0', TAMPERTRACE_OPS_PORT: '0', TAMPERTRACE_AUDIT_CHECKPOINT_EVERY: '4',
    // No timed checkpoints: the outputs taken through the server are compared with later ones.
    TAMPERTRACE_AUDIT_CHECKPOINT_INTERVAL_MS: '0' };
  // Embedded mode even when `make test` has put the local servers' addresses in the environment.
  for (const k of ['TAMPERTRACE_DATABASE_URL', 'TAMPERTRACE_KAFKA_BROKERS', 'TAMPERTRACE_S3_ENDPOINT', 'TAMPERTRACE_TENANT', 'TAMPERTRACE_API_KEY']) delete env[k];
});

after(() => {
  server?.kill('SIGKILL');
});

const ids: Array<{ analysisId: string; status: string }> = [];
let viaServerStdout = '';

test('serve and analyze started at once on one folder both finish: one holds the folder, the other waits or goes through it', async () => {
  const files = await inputs(path.join(work, 'in1'), 200, 'not an image, 1');
  server = spawn(process.execPath, [BIN, 'serve'], { env, cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (d: Buffer) => (serverOut += d));
  server.stderr!.on('data', (d: Buffer) => (serverOut += d));
  const analyzed = await tampertrace(['analyze', '--out', 'out1', ...files]);
  assert.equal(analyzed.code, 2, `one input is no image: ${analyzed.stderr}`);
  const out = await outputsOf(path.join(work, 'out1'));
  assert.equal(out.length, 3);
  assert.equal(out.filter((a) => a.status === 'ANALYSIS_STATUS_REJECTED').length, 1);
  ids.push(...out);
  // The server is up (it waited for analyze, or analyze went through it) and says where it listens.
  for (let i = 0; i < 600 && !serverOut.includes('TamperTrace is running'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(serverOut, /TamperTrace is running/);
  for (let i = 0; i < 50 && !(await holder()).grpc; i++) await new Promise((r) => setTimeout(r, 100));
  const h = await holder();
  assert.equal(h.pid, server.pid);
  assert.equal(h.role, 'server');
  assert.match(h.grpc!, /^127\.0\.0\.1:\d+$/);
  assert.equal(h.tenant, 'default');
});

test('analyze and HTTP submissions at the same time on the served folder: analyze goes through the server, nothing is lost, the chain verifies', async () => {
  const files = await inputs(path.join(work, 'in2'), 240, 'not an image, 2');
  const h = await holder();
  const key = (await readFile(path.join(home, 'api-key'), 'utf8')).trim();
  const viaHttp = Promise.all(
    [cameraPng(), astronautPng()].map(async (png, i) => {
      const body = await sharp(png).resize(280 + i, 280 + i).png().toBuffer();
      const res = await fetch(`${h.http}/v1/analyses?wait=true`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body });
      assert.equal(res.status, 200, await res.clone().text());
      return (await res.json()) as { analysisId: string; status: string };
    }),
  );
  const analyzed = await tampertrace(['analyze', '--out', 'out2', ...files]);
  assert.equal(analyzed.code, 2, analyzed.stderr);
  assert.match(analyzed.stderr, /in use by pid \d+ .*analysing through it/);
  viaServerStdout = analyzed.stdout;
  ids.push(...(await outputsOf(path.join(work, 'out2'))), ...(await viaHttp));
  assert.equal(new Set(ids.map((a) => a.analysisId)).size, 8);

  // Every analysis has its trail, ending with a record of its final status; no other records.
  let total = 0;
  for (const a of ids) {
    const trail = await tampertrace(['audit', 'trail', a.analysisId]);
    assert.equal(trail.code, 0, trail.stderr);
    const rows = trail.stdout.trim().split('\n').map((l) => JSON.parse(l) as { status: string });
    assert.equal(`ANALYSIS_STATUS_${rows.at(-1)!.status}`, a.status, `final record of ${a.analysisId}`);
    total += rows.length;
  }
  const verified = await tampertrace(['audit', 'verify']);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  assert.equal(verified.stdout, `OK: ${total} records verify for tenant default\n`);
});

const AUDIT_COMMANDS = [
  ['query'],
  ['query', '--limit', '3'],
  ['query', '--status', 'REJECTED'],
  ['export'],
  ['export', '--format', 'csv'],
  ['export', '--stage', 'EXPLANATION'],
  ['verify'],
  ['verify', '--from', '2', '--to', '5'],
  ['checkpoints'],
];
const throughServer = new Map<string, Run>();

test('the audit commands through the server; checkpoint, prune, tenant and a second serve stop with exit 3 and say why', async () => {
  for (const a of ids.slice(0, 3)) throughServer.set(`trail ${a.analysisId}`, await tampertrace(['audit', 'trail', a.analysisId]));
  for (const args of AUDIT_COMMANDS) throughServer.set(args.join(' '), await tampertrace(['audit', ...args]));
  for (const [name, r] of throughServer) assert.equal(r.code, 0, `${name}: ${r.stderr}`);
  assert.match(throughServer.get('query --limit 3')!.stderr, /more records follow: --page-token /);
  assert.ok(throughServer.get('checkpoints')!.stdout.trim().split('\n').length >= 2, 'a checkpoint every 4 records');

  const checkpoint = await tampertrace(['audit', 'checkpoint']);
  assert.equal(checkpoint.code, 3);
  assert.match(checkpoint.stderr, /in use by pid \d+ .*audit checkpoint.*operator only.*stop that server first/);
  const prune = await tampertrace(['audit', 'prune', '--before', '1']);
  assert.equal(prune.code, 3);
  const other = await tampertrace(['audit', 'query', '--tenant', 'someone-else']);
  assert.equal(other.code, 3);
  assert.match(other.stderr, /answers for tenant "default" only, not "someone-else"/);
  const tenant = await tampertrace(['tenant', 'list']);
  assert.equal(tenant.code, 3);
  assert.match(tenant.stderr, /changes the folder's database outside the API/);
  const second = await tampertrace(['serve']);
  assert.equal(second.code, 3);
  assert.match(second.stderr, /one server serves a data folder/);
});

test('after kill -9 of the server its stale lock is taken over, and every audit command prints exactly what it printed through the server', async () => {
  const pid = server!.pid!;
  server!.kill('SIGKILL');
  await new Promise((r) => server!.once('exit', r));
  server = undefined;
  assert.equal((await holder()).pid, pid, 'the killed server left its lock behind');
  for (const [name, via] of throughServer) {
    const args = name.split(' ');
    const direct = await tampertrace(['audit', ...args]);
    assert.equal(direct.code, 0, `${name}: ${direct.stderr}`);
    assert.equal(direct.stdout, via.stdout, `audit ${name}: same output directly and through the server`);
    if (args[0] === 'query') assert.equal(direct.stderr, via.stderr, `audit ${name}: same page token`);
  }
  // The direct commands released the folder; nothing holds it now.
  await assert.rejects(readFile(lockFile(home), 'utf8'), { code: 'ENOENT' });
});

/**
 * An output JSON without what differs between two analyses of the same bytes: ids, times, and
 * provenance (its links to earlier analyses of the same picture, the explanation's sentence and
 * fact about them), which rightly depends on how many ran before.
 */
async function comparable(file: string): Promise<unknown> {
  const a = JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;
  const id = a.analysisId as string;
  for (const k of ['analysisId', 'submittedAt', 'completedAt', 'timings', 'provenance']) delete a[k];
  if (a.explanation) {
    a.explanation.text = String(a.explanation.text).replace(/ ?(This picture|A mirrored copy of this picture) was analysed before.*$/s, '');
    a.explanation.facts = (a.explanation.facts ?? []).filter((f: { cue?: string }) => f.cue !== 'CUE_SEEN_BEFORE');
  }
  return JSON.parse(JSON.stringify(a).replaceAll(id, 'ID'));
}

test('analyze on the folder directly writes the same outputs as analyze through the server did', async () => {
  // The same inputs again, analysed anew in-process (analyze always analyses; through a server it asks to reanalyze).
  const files = ['camera.png', 'astronaut.png', 'notes.jpg'].map((n) => path.join(work, 'in2', n));
  const direct = await tampertrace(['analyze', '--out', 'out3', ...files]);
  assert.equal(direct.code, 2, direct.stderr);
  assert.doesNotMatch(direct.stderr, /through it/);
  const table = (out: string) => out.replace(/^Results written to .*$/m, '');
  assert.equal(table(direct.stdout), table(viaServerStdout), 'the same summary table');
  const names = (await readdir(path.join(work, 'out2'))).sort();
  assert.deepEqual((await readdir(path.join(work, 'out3'))).sort(), names);
  for (const n of names) {
    const [via, here] = [path.join(work, 'out2', n), path.join(work, 'out3', n)];
    if (n.endsWith('.json')) assert.deepEqual(await comparable(here), await comparable(via), n);
    else assert.ok((await readFile(here)).equals(await readFile(via)), `${n}: same bytes`);
  }
});
