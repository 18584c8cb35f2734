// The data folder's lock: it names its holder, refuses a second holder while the first lives,
// and is taken over when the holder was killed (kill -9) or its pid now names another process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DataFolderBusy, acquireDataLock, acquireOrWait, holderAlive, lockFile, lockHolder, processStartTime, type LockHolder } from './data-lock.ts';

const tmpHome = () => mkdtemp(path.join(os.tmpdir(), 'tt-lock-'));
const holderIn = async (home: string) => JSON.parse(await readFile(lockFile(home), 'utf8')) as LockHolder;

test('the lock names its holder (pid, start time, host, command) and a second taker gets DataFolderBusy naming it', async () => {
  const home = await tmpHome();
  const lock = await acquireDataLock(home, 'command', 'tampertrace analyze x.png');
  const h = await holderIn(home);
  assert.equal(h.pid, process.pid);
  assert.equal(h.host, os.hostname());
  assert.equal(h.command, 'tampertrace analyze x.png');
  assert.equal(h.role, 'command');
  if (processStartTime() !== undefined) assert.match(h.startTime!, /^\d+$/);
  await assert.rejects(acquireDataLock(home, 'command'), (err: unknown) => err instanceof DataFolderBusy && err.holder.pid === process.pid && /in use by pid \d+/.test(err.message));
  assert.equal((await lockHolder(home))?.pid, process.pid);

  await lock.update({ grpc: '127.0.0.1:1234', tenant: 'default' });
  assert.equal((await holderIn(home)).grpc, '127.0.0.1:1234');
  await lock.release();
  assert.equal(await lockHolder(home), undefined);
  await (await acquireDataLock(home, 'command')).release();
});

test('a lock whose holder was killed with kill -9 is stale and taken over', async () => {
  const home = await tmpHome();
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', `import('${path.join(import.meta.dirname, 'data-lock.ts')}').then(async (m) => { await m.acquireDataLock(${JSON.stringify(home)}, 'server', 'holder'); process.stdout.write('held\\n'); setInterval(() => {}, 1000); })`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const held = await holderIn(home);
  assert.equal(held.pid, child.pid);
  assert.ok(holderAlive(held));
  await assert.rejects(acquireDataLock(home, 'command'), DataFolderBusy);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(!holderAlive(held), 'a killed holder is not alive');
  const lock = await acquireDataLock(home, 'command', 'after the kill');
  assert.equal((await holderIn(home)).command, 'after the kill');
  await lock.release();
});

test('a lock naming a live pid with another start time (the pid was reused) is stale', { skip: processStartTime() === undefined ? 'needs /proc' : false }, async () => {
  const home = await tmpHome();
  // This process's own pid, but not its start time: what a reused pid looks like.
  const reused: LockHolder = { pid: process.pid, startTime: String(Number(processStartTime()) - 1), host: os.hostname(), command: 'gone', role: 'server', since: new Date().toISOString(), grpc: '127.0.0.1:1' };
  assert.ok(!holderAlive(reused));
  await writeFile(lockFile(home), JSON.stringify(reused));
  assert.equal(await lockHolder(home), undefined);
  const lock = await acquireDataLock(home, 'command', 'new holder');
  assert.equal((await holderIn(home)).command, 'new holder');
  await lock.release();
});

test('another host\'s lock is held (its processes cannot be checked); a garbled lock is stale', async () => {
  const home = await tmpHome();
  await writeFile(lockFile(home), JSON.stringify({ pid: 1, host: `${os.hostname()}-elsewhere`, command: 'x', role: 'command', since: '' }));
  await assert.rejects(acquireDataLock(home, 'command'), DataFolderBusy);
  await writeFile(lockFile(home), 'not json');
  await (await acquireDataLock(home, 'command')).release();
});

test('release leaves a lock that names another process alone', async () => {
  const home = await tmpHome();
  const lock = await acquireDataLock(home, 'command');
  const other = { ...(await holderIn(home)), host: 'another-host' };
  await writeFile(lockFile(home), JSON.stringify(other));
  await lock.release();
  assert.equal((await holderIn(home)).host, 'another-host');
});

test('acquireOrWait waits while a finite command holds the folder and takes it once released; a listening server is not waited for', async () => {
  const home = await tmpHome();
  const first = await acquireDataLock(home, 'command', 'first');
  const waited: LockHolder[] = [];
  const second = acquireOrWait(home, 'command', (h) => waited.push(h), 20);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(waited.length, 1);
  assert.equal(waited[0].command, 'first');
  await first.release();
  const lock = await second;
  assert.equal(lock.holder.pid, process.pid);
  await lock.update({ grpc: '127.0.0.1:9' });
  await lock.release();

  const server = await acquireDataLock(home, 'server', 'serve');
  await server.update({ grpc: '127.0.0.1:9' });
  await assert.rejects(acquireOrWait(home, 'command', () => {}, 20), (err: unknown) => err instanceof DataFolderBusy && err.holder.grpc === '127.0.0.1:9');
  await server.release();
});
