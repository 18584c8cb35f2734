// One writer per embedded data folder ($TAMPERTRACE_HOME): PGlite keeps its database in plain
// files with no lock of its own, and two processes writing them corrupt it (lost audit records,
// "missing chunk number 0 for toast value ..."). The process that opens the folder holds
// $TAMPERTRACE_HOME/lock, a JSON file naming it: pid, process start time, host, command and, for
// `serve`, the addresses other commands reach it on. A lock whose process is gone (kill -9) or
// whose pid now belongs to another process (its start time differs) is stale and taken over.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** What the lock file says about its holder. */
export interface LockHolder {
  pid: number;
  /** The process's start time (Linux: field 22 of /proc/PID/stat, clock ticks since boot); absent elsewhere. */
  startTime?: string;
  host: string;
  /** The command line, e.g. "tampertrace serve --port 8080". */
  command: string;
  /** `server` for `serve` (other commands go through its API), `command` for a finite one. */
  role: 'server' | 'command';
  /** When it took the lock, ISO 8601. */
  since: string;
  /** A server's gRPC address (host:port) and HTTP base URL, once it listens. */
  grpc?: string;
  http?: string;
  /** The tenant a server's API key (in $TAMPERTRACE_HOME/api-key) belongs to. */
  tenant?: string;
}

/** The folder is held by another live process. */
export class DataFolderBusy extends Error {
  constructor(
    readonly home: string,
    readonly holder: LockHolder,
  ) {
    super(`${home} is in use by ${describeHolder(holder)}`);
    this.name = 'DataFolderBusy';
  }
}

export function describeHolder(h: LockHolder): string {
  const where = h.grpc ? `, serving gRPC ${h.grpc}${h.http ? ` and ${h.http}` : ''}` : '';
  return `pid ${h.pid} on ${h.host} ("${h.command}", since ${h.since}${where})`;
}

export const lockFile = (home: string) => path.join(home, 'lock');

/** Start time and state of a process from /proc, or undefined (no such process, or no /proc). */
function procStat(pid: number): { startTime: string; state: string } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields start after the last ")".
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: f[0], startTime: f[19] };
}

const hasProc = (() => {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
})();

/** This process's start time, as LockHolder.startTime records it. */
export function processStartTime(pid = process.pid): string | undefined {
  return procStat(pid)?.startTime;
}

/**
 * Whether the holder still runs: same host (another host's processes cannot be seen, so its lock
 * counts as held), the pid exists and is no zombie, and its start time is the recorded one.
 */
export function holderAlive(h: LockHolder): boolean {
  if (h.host !== os.hostname()) return true;
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!hasProc) return true;
  const st = procStat(h.pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return h.startTime === undefined || st.startTime === h.startTime;
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text) as LockHolder;
    return Number.isSafeInteger(h.pid) && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** The current holder of the folder's lock, if a live process holds it. */
export async function lockHolder(home: string): Promise<LockHolder | undefined> {
  const text = await readFile(lockFile(home), 'utf8').catch(() => undefined);
  const h = text === undefined ? undefined : parseHolder(text);
  return h && holderAlive(h) ? h : undefined;
}

/** A held lock: update it (a server's addresses), release it. */
export interface DataLock {
  readonly home: string;
  readonly holder: LockHolder;
  /** Records where a server listens, so other commands can go through it. */
  update(fields: Partial<Pick<LockHolder, 'grpc' | 'http' | 'tenant'>>): Promise<void>;
  /** Removes the lock file if it still names this process. */
  release(): Promise<void>;
}

const tmpName = (file: string) => `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;

/** Creates `file` with `text` only if it does not exist, never visible half-written. */
async function createExclusive(file: string, text: string): Promise<boolean> {
  const tmp = tmpName(file);
  await writeFile(tmp, text, { mode: 0o600 });
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // A file system without hard links: exclusive create (a reader may see it empty for a moment).
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') {
      try {
        await writeFile(file, text, { mode: 0o600, flag: 'wx' });
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw e;
      }
    }
    throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/**
 * Moves a stale lock out of the way, unless it changed since it was read (another process took
 * the folder over in between: then it is put back).
 */
async function removeStale(file: string, staleText: string): Promise<void> {
  const aside = `${tmpName(file)}.stale`;
  try {
    await rename(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await readFile(aside, 'utf8').catch(() => staleText);
  if (moved !== staleText) await link(aside, file).catch(() => {});
  await unlink(aside).catch(() => {});
}

/**
 * Takes the folder's lock, or throws DataFolderBusy naming the live holder. A stale lock (its
 * process gone, or its pid reused by another process) is taken over.
 */
export async function acquireDataLock(home: string, role: LockHolder['role'], command = commandLine()): Promise<DataLock> {
  await mkdir(home, { recursive: true });
  const file = lockFile(home);
  let holder: LockHolder = { pid: process.pid, startTime: processStartTime(), host: os.hostname(), command, role, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 20; attempt++) {
    if (await createExclusive(file, JSON.stringify(holder) + '\n')) {
      return {
        home,
        get holder() {
          return holder;
        },
        async update(fields) {
          holder = { ...holder, ...fields };
          const tmp = tmpName(file);
          await writeFile(tmp, JSON.stringify(holder) + '\n', { mode: 0o600 });
          await rename(tmp, file);
        },
        async release() {
          const text = await readFile(file, 'utf8').catch(() => undefined);
          const h = text === undefined ? undefined : parseHolder(text);
          if (h && h.pid === holder.pid && h.startTime === holder.startTime && h.host === holder.host) await unlink(file).catch(() => {});
        },
      };
    }
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue; // released in between
    const other = parseHolder(text);
    if (other && holderAlive(other)) throw new DataFolderBusy(home, other);
    await removeStale(file, text);
  }
  throw new Error(`could not take the lock ${file}: it keeps changing`);
}

/**
 * acquireDataLock, waiting while the holder is a finite command or a server still starting (no
 * address yet); throws DataFolderBusy once the holder is a server that listens (go through it).
 */
export async function acquireOrWait(home: string, role: LockHolder['role'], onWait: (h: LockHolder) => void, pollMs = 250): Promise<DataLock> {
  let told = false;
  for (;;) {
    try {
      return await acquireDataLock(home, role);
    } catch (err) {
      if (!(err instanceof DataFolderBusy)) throw err;
      if (err.holder.role === 'server' && err.holder.grpc) throw err;
      if (!told) onWait(err.holder);
      told = true;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}

function commandLine(): string {
  const args = process.argv.slice(2).join(' ');
  return `${path.basename(process.argv[1] ?? 'node')}${args ? ` ${args}` : ''}`.slice(0, 200);
}
