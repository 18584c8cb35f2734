// deploy/local/services.sh (`make up`) after a service was killed: `up` must start a new process
// and report it ready from that process, whether the killed one is already gone, still exiting,
// a zombie nobody reaped, or its pid now belongs to another process. Runs the audit service (the
// lightest) on the local servers, with its own state folder, ports and topic prefix.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '@tampertrace/shared';
import { SKIP_REASON, serversReady } from './cluster.testing.ts';

const SCRIPT = path.join(REPO_ROOT, 'deploy', 'local', 'services.sh');
const AUDIT_INDEX = 4; // services.sh's order: ingest, face-detection, forgery-localization, explanation-generation, audit

function freePort(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port whose audit gRPC and ops ports (base + 4) are both free, away from the local servers. */
async function portBases(): Promise<{ grpc: number; ops: number }> {
  for (let base = 30000 + (process.pid % 500) * 20; ; base += 20) {
    if ((await freePort(base + AUDIT_INDEX)) && (await freePort(base + 10 + AUDIT_INDEX))) return { grpc: base, ops: base + 10 };
  }
}

/** Start time of a process (field 22 of /proc/PID/stat), as services.sh records it. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** No such process, or only its zombie (this machine's init may be slow to reap). */
const isGone = (pid: number): boolean => ['Z', 'X', undefined].includes(procState(pid));

if (!serversReady || !existsSync('/proc/self/stat')) {
  test('services.sh after kill -9', { skip: serversReady ? 'needs /proc (Linux)' : SKIP_REASON }, () => {});
} else {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let ops: number;

  const script = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(SCRIPT, args, { env, timeout: 180_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    });
  const pidFile = async (): Promise<{ pid: number; start: string }> => {
    const [pid, start] = (await readFile(path.join(dir, 'audit.pid'), 'utf8')).trim().split(' ');
    return { pid: Number(pid), start };
  };
  const readyz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${ops}/readyz`)).status;
  /** `up audit` succeeded and reported a ready audit service with a pid other than `old`; returns the new pid. */
  const upAgain = async (old: number): Promise<number> => {
    const r = await script('up', 'audit');
    assert.equal(r.code, 0, r.stderr);
    const m = /audit ready \(pid (\d+),/.exec(r.stdout);
    assert.ok(m, r.stdout);
    const pid = Number(m[1]);
    assert.notEqual(pid, old, 'a new process, not the killed one');
    assert.deepEqual(await pidFile(), { pid, start: startTime(pid) });
    assert.notEqual(procState(pid), 'Z');
    assert.equal(await readyz(), 200, 'the new process answers ready');
    return pid;
  };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tt-services-'));
    const bases = await portBases();
    ops = bases.ops + AUDIT_INDEX;
    env = {
      ...process.env,
      TAMPERTRACE_SERVICES_DIR: dir,
      TAMPERTRACE_GRPC_PORT: String(bases.grpc),
      TAMPERTRACE_OPS_PORT: String(bases.ops),
      TAMPERTRACE_TOPIC_PREFIX: `svcsh${process.pid}`,
      TAMPERTRACE_API_KEY_PEPPER: 'services-script-test-pepper',
    };
    // The default tenant is made on the first `up` of an install; this test needs none.
    await writeFile(path.join(dir, 'api-key'), 'not-used\n', { mode: 0o600 });
  });
  after(async () => {
    if (dir) await script('stop', 'audit');
  });

  test('up starts the service, and a second up leaves the running one alone', async () => {
    const first = await script('up', 'audit');
    assert.equal(first.code, 0, first.stderr);
    const { pid, start } = await pidFile();
    assert.match(first.stdout, new RegExp(`audit ready \\(pid ${pid},`));
    assert.equal(start, startTime(pid));
    assert.equal(await readyz(), 200);
    const second = await script('up', 'audit');
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, new RegExp(`audit ready \\(pid ${pid},`));
  });

  test('up right after kill -9 waits for the killed process to be gone and reports the new one ready', async () => {
    const { pid } = await pidFile();
    process.kill(pid, 'SIGKILL');
    const next = await upAgain(pid);
    assert.ok(isGone(pid), 'the killed process is gone');
    assert.ok(next > 0);
  });

  test('a pid file naming a zombie (killed, never reaped) is not taken for a running service', async () => {
    const { pid: running } = await pidFile();
    await script('stop', 'audit');
    assert.ok(isGone(running), 'stop ended the service');
    // `sleep 0` exits; its parent becomes `sleep 60` by exec and never reaps it: a zombie that
    // kill -0 still finds.
    const parent = spawn('bash', ['-c', 'sleep 0 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const zombie = await new Promise<number>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
    try {
      for (let i = 0; i < 50 && procState(zombie) !== 'Z'; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(procState(zombie), 'Z');
      await writeFile(path.join(dir, 'audit.pid'), `${zombie} ${startTime(zombie)}\n`);
      await upAgain(zombie);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  test('a pid file whose pid now belongs to another process: up starts the service, stop leaves that process alone', async () => {
    const { pid: running } = await pidFile();
    await script('stop', 'audit');
    assert.ok(isGone(running));
    // The pid was reused: same number, another process, another start time.
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const otherPid = other.pid!;
      await writeFile(path.join(dir, 'audit.pid'), `${otherPid} 1\n`);
      const started = await upAgain(otherPid);
      await writeFile(path.join(dir, 'audit.pid'), `${otherPid} 1\n`);
      const stopped = await script('stop', 'audit');
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.ok(!isGone(otherPid), 'the unrelated process was not signalled');
      // Hand the service back to the pid file, for after() to stop.
      await writeFile(path.join(dir, 'audit.pid'), `${started} ${startTime(started)}\n`);
    } finally {
      other.kill('SIGKILL');
    }
  });
}
