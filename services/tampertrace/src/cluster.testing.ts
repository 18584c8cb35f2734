// For integration tests: the five services as separate processes on the local servers, with
// this run's own topic prefix, bucket prefix and database schema, and a view of the results topic.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import pg from 'pg';
import { pino } from 'pino';
import { KafkaBus, REPO_ROOT, S3ObjectStore, Topic, limitsOf, loadConfig, type Config } from '@tampertrace/shared';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { Ingestor } from '@tampertrace/ingest';

export const BIN = path.join(REPO_ROOT, 'services', 'tampertrace', 'bin', 'tampertrace.mjs');
export const serversReady = Boolean(process.env.TAMPERTRACE_KAFKA_BROKERS && process.env.TAMPERTRACE_S3_ENDPOINT && process.env.TAMPERTRACE_DATABASE_URL);
export const SKIP_REASON = 'server addresses not set: run `make infra-up` and `eval "$(deploy/local/infra.sh env)"`';

export interface Result {
  eventIds: Set<string>;
  deliveries: number;
  status: AnalysisStatus;
  faces: number;
  /** Date.now() at the first delivery. */
  at: number;
}

export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export class Cluster {
  readonly run = `mp${Date.now()}${process.pid}`;
  readonly schema = `it_${this.run}`;
  readonly env: NodeJS.ProcessEnv;
  readonly cfg: Config;
  readonly results = new Map<string, Result>();
  readonly procs = new Map<string, ChildProcess>();
  bus!: KafkaBus;
  ingestor!: Ingestor;

  constructor(httpPort: number) {
    this.env = {
      ...process.env,
      TAMPERTRACE_TOPIC_PREFIX: this.run,
      TAMPERTRACE_S3_BUCKET_PREFIX: `${this.run}-`,
      // Every connection of the audit service lands in this run's schema.
      TAMPERTRACE_DATABASE_URL: `${process.env.TAMPERTRACE_DATABASE_URL}?options=-c%20search_path%3D${this.schema}`,
      TAMPERTRACE_LOG_LEVEL: 'info',
      TAMPERTRACE_SHUTDOWN_TIMEOUT_MS: '10000',
      TAMPERTRACE_HTTP_PORT: String(httpPort),
    };
    this.cfg = loadConfig(this.env);
  }

  /** One service through the command users run: `tampertrace service <name>`; resolves when it says ready. */
  start(name: string): Promise<void> {
    const child = spawn(process.execPath, [BIN, 'service', name], { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.procs.set(name, child);
    return new Promise((resolve, reject) => {
      let log = '';
      child.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        if (/"msg":"ready"/.test(log)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${log.slice(-2000)}`)));
    });
  }

  async kill9(name: string): Promise<void> {
    const p = this.procs.get(name)!;
    p.kill('SIGKILL');
    if (p.exitCode === null && p.signalCode === null) await new Promise((r) => p.once('exit', r));
  }

  async up(services: string[]): Promise<void> {
    await this.sql(`CREATE SCHEMA ${this.schema}`);
    await Promise.all(services.map((s) => this.start(s)));
    const cfg = this.cfg;
    this.bus = await KafkaBus.connect({ brokers: cfg.TAMPERTRACE_KAFKA_BROKERS, clientId: `${this.run}-test`, topicPrefix: this.run, log: pino({ level: 'silent' }), sessionTimeoutMs: 6000, heartbeatIntervalMs: 300, maxWaitTimeInMs: 200 });
    const store = new S3ObjectStore({ endpoint: cfg.TAMPERTRACE_S3_ENDPOINT, region: cfg.TAMPERTRACE_S3_REGION, accessKey: cfg.TAMPERTRACE_S3_ACCESS_KEY, secretKey: cfg.TAMPERTRACE_S3_SECRET_KEY, bucketPrefix: `${this.run}-` });
    await store.ensureBuckets(['originals', 'artifacts']);
    this.ingestor = new Ingestor({ bus: this.bus, store, limits: limitsOf(cfg) });
    await this.bus.subscribe({
      group: `${this.run}-results`,
      topics: [Topic.analysisCompleted],
      handler: async (m) => {
        const e = fromBinary(AnalysisCompletedSchema, m.value);
        const a = e.analysis!;
        const r = this.results.get(a.analysisId) ?? { eventIds: new Set<string>(), deliveries: 0, status: a.status, faces: a.faces.length, at: Date.now() };
        r.eventIds.add(e.meta!.eventId);
        r.deliveries++;
        this.results.set(a.analysisId, r);
      },
    });
  }

  async down(): Promise<void> {
    for (const p of this.procs.values()) p.kill('SIGTERM');
    await Promise.all([...this.procs.values()].map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => p.once('exit', r)))));
    await this.bus?.close();
    await this.sql(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
  }

  async sql<T extends pg.QueryResultRow>(text: string): Promise<T[]> {
    const db = new pg.Client({ connectionString: process.env.TAMPERTRACE_DATABASE_URL });
    await db.connect();
    try {
      return (await db.query<T>(text)).rows;
    } finally {
      await db.end();
    }
  }
}
