// The distributed mode as bench/speed.ts measures it: every service of `tampertrace service`
// (SERVICES: the ingest gateway, face-detection, forgery-localization, explanation-generation,
// audit) as a separate process on the local Kafka, S3Proxy and PostgreSQL, started through the
// integration tests' Cluster helper (this run's own topic prefix, bucket prefix and schema, all
// removed again by stop()). Images go in through the Ingestor in this process, on the real Kafka
// and S3, as Cluster does; results are read from the results topic. Also what the processes cost:
// peak RSS and CPU time, read from /proc.
import { execFileSync } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { REPO_ROOT, Topic, serviceClient, type Subscription, type grpc } from '@tampertrace/shared';
import { IngestService } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisCompletedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { SERVICES } from '@tampertrace/shared';
import { Cluster, SKIP_REASON, serversReady } from '../services/tampertrace/src/cluster.testing.ts';

export { SKIP_REASON as DISTRIBUTED_SKIP_REASON, serversReady as distributedReady };

/** One analysis as a benchmark sees it: submit to AnalysisCompleted seen by the submitter. */
export interface Seen {
  ms: number;
  analysis: Analysis;
}

/** What speed.ts drives, in every mode: submit one image, resolve when its final result is seen. */
export interface Driver {
  analyze(bytes: Uint8Array, sourceName: string): Promise<Seen>;
}

export interface Distributed extends Driver {
  /** This run's topic prefix, bucket prefix and schema suffix. */
  readonly run: string;
  /** CPU seconds used so far by each process of the distributed mode (services, servers, this process). */
  cpuSeconds(): Promise<Record<string, number>>;
  /** Resident memory now (VmRSS) of each service process and of Kafka and S3Proxy. */
  rssMiB(): Promise<Record<string, number>>;
  /** A gRPC client of the ingest service's public API, for a new tenant with these limits. */
  apiClient(name: string, limits: { ratePerS: number; burst: number; maxInFlight: number }): Promise<grpc.Client>;
  /** A new tenant with these limits: its API key and the ingest service's public addresses. */
  apiTenant(name: string, limits: { ratePerS: number; burst: number; maxInFlight: number }): Promise<{ apiKey: string; grpcAddress: string; httpUrl: string }>;
  /** Pid of each service process (undefined once it has exited). */
  servicePids(): Record<string, number | undefined>;
  /** Peak RSS (VmHWM) of each service process and server, then stops the services and removes this run's topics, buckets, groups and schema. */
  stop(): Promise<{ peakRssMiB: Record<string, number> }>;
}

export const TENANT = 'bench';
const UP_DEADLINE_MS = 180_000;

export async function startDistributed(): Promise<Distributed> {
  // The gateway's HTTP port; the services' gRPC ports follow it. Clear of the local servers' and the tests' ports.
  const cluster = new Cluster(21000 + (process.pid % 500) * 8);
  const waiting = new Map<string, (s: { at: number; analysis: Analysis }) => void>();
  const early = new Map<string, { at: number; analysis: Analysis }>();
  const resolved = new Set<string>();
  let sub: Subscription | undefined;
  const teardown = async () => {
    await sub?.stop().catch(() => {});
    await cluster.down().catch((err) => console.error(`distributed: stopping the services failed: ${String(err)}`));
  };
  try {
    // A service that fails before "ready" can stay alive without exiting (seen once, on a fresh
    // broker); Cluster gives each start 120 s, and this deadline bounds the rest of up() as well.
    // teardown stops whatever did start.
    const up = cluster.up([...SERVICES]);
    up.catch(() => {}); // settles after the deadline too, when teardown stops the processes
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`distributed: the services did not all say ready within ${UP_DEADLINE_MS / 1000} s`)), UP_DEADLINE_MS);
    });
    await Promise.race([up, deadline]).finally(() => clearTimeout(timer));
    // Our own view of the results topic (Cluster's keeps only status and counts): the full
    // Analysis, for its stage timings, and the moment it was seen, to wake the submitter at once.
    sub = await cluster.bus.subscribe({
      group: `${cluster.run}-bench`,
      topics: [Topic.analysisCompleted],
      handler: async (m) => {
        const at = performance.now();
        const analysis = fromBinary(AnalysisCompletedSchema, m.value).analysis!;
        const id = analysis.analysisId;
        if (resolved.has(id) || early.has(id)) return; // a redelivery
        const w = waiting.get(id);
        if (w) w({ at, analysis });
        else early.set(id, { at, analysis });
      },
    });
  } catch (err) {
    await teardown();
    throw err;
  }
  const seen = (id: string) =>
    new Promise<{ at: number; analysis: Analysis }>((resolve) => {
      const done = (s: { at: number; analysis: Analysis }) => {
        waiting.delete(id);
        early.delete(id);
        resolved.add(id);
        resolve(s);
      };
      const e = early.get(id);
      if (e) done(e);
      else waiting.set(id, done);
    });
  const servers = await serverPids();

  return {
    run: cluster.run,
    async analyze(bytes, sourceName) {
      const t0 = performance.now();
      const r = await cluster.ingestor.submit(bytes, { tenantId: TENANT, sourceName });
      const s = await seen(r.analysisId);
      return { ms: s.at - t0, analysis: s.analysis };
    },
    async cpuSeconds() {
      const out: Record<string, number> = {};
      for (const [name, p] of cluster.procs) if (p.pid) out[name] = await cpuSecondsOf([p.pid]);
      for (const [name, pids] of Object.entries(servers)) out[name] = await cpuSecondsOf(name === 'postgres' ? await withChildren(pids[0]) : pids);
      const u = process.cpuUsage();
      out['bench (ingest + results)'] = (u.user + u.system) / 1e6;
      return out;
    },
    async rssMiB() {
      const out: Record<string, number> = {};
      const pids: Array<[string, number | undefined]> = [...[...cluster.procs].map(([name, p]) => [name, p.pid] as [string, number | undefined]), ['kafka', servers.kafka?.[0]], ['s3proxy', servers.s3proxy?.[0]]];
      for (const [name, pid] of pids) {
        const kib = pid ? await procStatusKiB(pid, 'VmRSS') : undefined;
        if (kib !== undefined) out[name] = kib / 1024;
      }
      return out;
    },
    async apiTenant(name, limits) {
      const { apiKey } = await cluster.createTenantWithSecret(name, '--rate', String(limits.ratePerS), '--burst', String(limits.burst), '--max-in-flight', String(limits.maxInFlight));
      return { apiKey, grpcAddress: cluster.grpcAddress, httpUrl: `http://127.0.0.1:${cluster.env.TAMPERTRACE_HTTP_PORT}` };
    },
    servicePids() {
      return Object.fromEntries([...cluster.procs].map(([name, p]) => [name, p.exitCode === null && p.signalCode === null ? p.pid : undefined]));
    },
    async apiClient(name, limits) {
      const { apiKey } = await cluster.createTenantWithSecret(name, '--rate', String(limits.ratePerS), '--burst', String(limits.burst), '--max-in-flight', String(limits.maxInFlight));
      return serviceClient(IngestService, cluster.grpcAddress, { apiKey });
    },
    async stop() {
      const peakRssMiB: Record<string, number> = {};
      for (const [name, p] of cluster.procs) {
        const kib = p.pid ? await vmHwmKiB(p.pid) : undefined;
        if (kib !== undefined) peakRssMiB[name] = kib / 1024;
      }
      for (const name of ['kafka', 's3proxy'] as const) {
        const kib = servers[name] ? await vmHwmKiB(servers[name][0]) : undefined;
        if (kib !== undefined) peakRssMiB[name] = kib / 1024;
      }
      await teardown();
      return { peakRssMiB };
    },
  };
}


// ---- /proc readings (Linux; each one is undefined or 0 where /proc cannot tell) ----

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Peak resident set size of a live process, in KiB. */
export async function vmHwmKiB(pid: number): Promise<number | undefined> {
  return procStatusKiB(pid, 'VmHWM');
}

/** A KiB figure of /proc/<pid>/status (VmHWM: peak resident, VmRSS: resident now). */
async function procStatusKiB(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number | undefined> {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** [ppid, user + system CPU seconds] of a live process. */
async function stat(pid: number): Promise<[number, number] | undefined> {
  try {
    const s = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces): state ppid ... utime(14) stime(15).
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return [Number(f[1]), (Number(f[11]) + Number(f[12])) / CLK_TCK];
  } catch {
    return undefined;
  }
}

async function cpuSecondsOf(pids: number[]): Promise<number> {
  let sum = 0;
  for (const pid of pids) sum += (await stat(pid))?.[1] ?? 0;
  return sum;
}

/** The process and its direct children (PostgreSQL's backends and workers). */
async function withChildren(pid: number): Promise<number[]> {
  const out = [pid];
  for (const d of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(d)) continue;
    if ((await stat(Number(d)))?.[0] === pid) out.push(Number(d));
  }
  return out;
}

/** The local servers' pids, from deploy/local/infra.sh's pid files (absent where not readable). */
async function serverPids(): Promise<Record<string, number[]>> {
  const dir = process.env.TAMPERTRACE_INFRA_DIR || path.join(REPO_ROOT, '.infra');
  const files = { kafka: 'kafka/kafka.pid', s3proxy: 's3/s3.pid', postgres: 'postgres/data/postmaster.pid' };
  const out: Record<string, number[]> = {};
  for (const [name, file] of Object.entries(files)) {
    try {
      const pid = Number((await readFile(path.join(dir, file), 'utf8')).split('\n')[0].trim());
      if (pid > 0 && (await stat(pid))) out[name] = [pid];
    } catch {
      // not started by infra.sh from this checkout: not measured
    }
  }
  return out;
}
