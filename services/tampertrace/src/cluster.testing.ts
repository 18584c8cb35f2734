// For integration tests: the five services as separate processes on the local servers, with
// this run's own topic prefix, bucket prefix and database schema, and a view of the results topic.
import { randomBytes } from 'node:crypto';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import pg from 'pg';
import sharp from 'sharp';
import { pino } from 'pino';
import { Kafka, logLevel } from 'kafkajs';
import { Bucket, KafkaBus, REPO_ROOT, S3ObjectStore, SERVICES, Topic, allTopics, limitsOf, loadConfig, withPrefix, type Config } from '@tampertrace/shared';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
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
  /** The analysis as first delivered (with its presigned URLs). */
  analysis: Analysis;
}

export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Ports are planned in the order of every service (shared/src/pipeline.ts), then second instances. */
const SERVICE_ORDER = [...SERVICES, 'face-detection-2'];

function serviceIndex(name: string): number {
  const i = SERVICE_ORDER.indexOf(name);
  if (i < 0) throw new Error(`no ports planned for ${name}`);
  return i;
}

export class Cluster {
  readonly run = `mp${Date.now()}${process.pid}`;
  readonly schema = `it_${this.run}`;
  readonly env: NodeJS.ProcessEnv;
  readonly cfg: Config;
  readonly results = new Map<string, Result>();
  readonly procs = new Map<string, ChildProcess>();
  /** Where the services' logs go (kept after the run). */
  readonly logDir = path.join(os.tmpdir(), 'tampertrace-it', this.run);
  bus!: KafkaBus;
  ingestor!: Ingestor;

  /** `env` adds to (or overrides) what every service process gets, e.g. OTEL_* variables. */
  constructor(httpPort: number, env: NodeJS.ProcessEnv = {}) {
    this.env = {
      ...process.env,
      TAMPERTRACE_TOPIC_PREFIX: this.run,
      TAMPERTRACE_S3_BUCKET_PREFIX: `${this.run}-`,
      // Every connection of the audit service lands in this run's schema.
      TAMPERTRACE_DATABASE_URL: `${process.env.TAMPERTRACE_DATABASE_URL}?options=-c%20search_path%3D${this.schema}`,
      TAMPERTRACE_LOG_LEVEL: 'info',
      TAMPERTRACE_SHUTDOWN_TIMEOUT_MS: '10000',
      TAMPERTRACE_HTTP_PORT: String(httpPort),
      TAMPERTRACE_API_KEY_PEPPER: randomBytes(24).toString('hex'),
      // Test servers (image hosts, webhook receivers) listen on 127.0.0.2 over http; 127.0.0.1
      // and every other non-public address stay refused.
      TAMPERTRACE_URL_ALLOW_HTTP: 'true',
      TAMPERTRACE_URL_ALLOW_PRIVATE: '127.0.0.2/32',
      // The first of the services' gRPC ports (grpcPortOf).
      TAMPERTRACE_GRPC_PORT: String(httpPort + 1),
      ...env,
    };
    this.cfg = loadConfig(this.env);
  }

  /** The ingest service's gRPC address. */
  get grpcAddress(): string {
    return `127.0.0.1:${this.grpcPortOf('ingest')}`;
  }

  /** Every service process serves gRPC; each gets a port of its own, ingest the first. */
  grpcPortOf(name: string): number {
    return Number(this.env.TAMPERTRACE_GRPC_PORT) + serviceIndex(name);
  }

  /** Each service process's ops endpoint (/metrics, /livez, /readyz): ten ports above the gRPC ones. */
  opsPortOf(name: string): number {
    return Number(this.env.TAMPERTRACE_GRPC_PORT) + 10 + serviceIndex(name);
  }

  /**
   * One service through the command users run: `tampertrace service <service>`, known here as
   * `name` (a second instance of a stage needs a name of its own); resolves when it says ready.
   */
  start(name: string, service = name): Promise<void> {
    // Each service's log goes to a file that outlives the run, for reading after a failure.
    mkdirSync(this.logDir, { recursive: true });
    const logFile = path.join(this.logDir, `${name}.log`);
    const out = openSync(logFile, 'a');
    // A restarted service appends to its log: only what this process writes counts.
    const from = statSync(logFile).size;
    const child = spawn(process.execPath, [BIN, 'service', service], { env: { ...this.env, TAMPERTRACE_GRPC_PORT: String(this.grpcPortOf(name)), TAMPERTRACE_OPS_PORT: String(this.opsPortOf(name)) }, stdio: ['ignore', out, out] });
    closeSync(out);
    this.procs.set(name, child);
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if (/"msg":"ready"/.test(readFileSync(logFile).subarray(from).toString())) {
          clearInterval(poll);
          resolve();
        } else if (Date.now() - started > 120_000) {
          clearInterval(poll);
          reject(new Error(`${name} not ready after 120 s; its log: ${logFile}`));
        }
      }, 100);
      child.once('exit', (code) => {
        clearInterval(poll);
        reject(new Error(`${name} exited with ${code}; its log: ${logFile}\n${readFileSync(logFile, 'utf8').slice(-2000)}`));
      });
    });
  }

  /** SIGTERM, and resolves when the process has exited. */
  async stop(name: string): Promise<void> {
    const p = this.procs.get(name)!;
    p.kill('SIGTERM');
    if (p.exitCode === null && p.signalCode === null) await new Promise((r) => p.once('exit', r));
  }

  /** A new tenant through the admin command users run; resolves with its API key. */
  async createTenant(name: string, ...flags: string[]): Promise<string> {
    return (await this.createTenantWithSecret(name, ...flags)).apiKey;
  }

  createTenantWithSecret(name: string, ...flags: string[]): Promise<{ apiKey: string; keyId: string; signingSecret: string }> {
    return new Promise((resolve, reject) =>
      execFile(process.execPath, [BIN, 'tenant', 'create', name, ...flags], { env: this.env }, (err, stdout, stderr) => {
        const apiKey = /api key \(shown once\): (\S+)/.exec(stdout)?.[1];
        const keyId = /key id: (\S+)/.exec(stdout)?.[1];
        const signingSecret = /signing secret: (\S+)/.exec(stdout)?.[1];
        if (err || !apiKey || !keyId || !signingSecret) reject(new Error(`tenant create ${name} failed: ${stderr || err}`));
        else resolve({ apiKey, keyId, signingSecret });
      }),
    );
  }

  /** Runs the CLI with this cluster's environment; resolves with its exit code and output. */
  cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) =>
      execFile(process.execPath, [BIN, ...args], { env: { ...this.env, ...env } }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
  }

  async kill9(name: string): Promise<void> {
    const p = this.procs.get(name)!;
    p.kill('SIGKILL');
    if (p.exitCode === null && p.signalCode === null) await new Promise((r) => p.once('exit', r));
  }

  async up(services: string[]): Promise<void> {
    await this.sql(`CREATE SCHEMA ${this.schema}`);
    await this.provisionTopics();
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
        const r = this.results.get(a.analysisId) ?? { eventIds: new Set<string>(), deliveries: 0, status: a.status, faces: a.faces.length, at: Date.now(), analysis: a };
        r.eventIds.add(e.meta!.eventId);
        r.deliveries++;
        this.results.set(a.analysisId, r);
      },
    });
  }

  /**
   * Creates this run's topics (dead-letter topics included) before the services start, and waits
   * until every partition has a leader. Otherwise every service creates them at once at start-up,
   * and on a fresh broker one of them could fail its start with "This server does not host this
   * topic-partition" (kafkajs' createTopics waitForLeaders does not retry that error) and then
   * stay alive without saying ready (seen once here with a freshly formatted broker).
   */
  async provisionTopics(): Promise<void> {
    const admin = new Kafka({ clientId: `${this.run}-provision`, brokers: this.cfg.TAMPERTRACE_KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const topics = allTopics().map((t) => withPrefix(this.run, t));
      await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: this.cfg.TAMPERTRACE_TOPIC_PARTITIONS, replicationFactor: 1 })) });
      const end = Date.now() + 30_000;
      for (;;) {
        try {
          const meta = await admin.fetchTopicMetadata({ topics });
          if (meta.topics.length === topics.length && meta.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
        } catch (err) {
          if (Date.now() > end) throw err;
        }
        if (Date.now() > end) throw new Error(`cluster: topics ${topics.join(', ')} have no leader for every partition after 30 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await admin.disconnect();
    }
  }

  /** This run's topics, consumer groups (`<run>.<group>` on the wire, and Cluster's `<run>-results`) and buckets. */
  async dropRunResources(): Promise<void> {
    const run = this.run;
    const admin = new Kafka({ clientId: `${run}-cleanup`, brokers: this.cfg.TAMPERTRACE_KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${run}.`));
      if (topics.length) await admin.deleteTopics({ topics });
      const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(`${run}.`) || g.startsWith(`${run}-`));
      if (groups.length) await admin.deleteGroups(groups);
    } finally {
      await admin.disconnect();
    }
    const store = S3ObjectStore.fromEnv(this.env);
    for (const b of [Bucket.originals, Bucket.artifacts]) {
      const name = store.physicalBucket(b);
      if (!(await store.client.bucketExists(name))) continue;
      const keys: string[] = [];
      for await (const item of store.client.listObjectsV2(name, '', true)) if (item.name) keys.push(item.name);
      if (keys.length) await store.client.removeObjects(name, keys);
      await store.client.removeBucket(name);
    }
  }

  async down(): Promise<void> {
    for (const p of this.procs.values()) p.kill('SIGTERM');
    await Promise.all([...this.procs.values()].map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => p.once('exit', r)))));
    await this.bus?.close();
    await this.sql(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    await this.dropRunResources().catch((err) => console.error(`cluster: cleaning up run ${this.run} failed: ${String(err)}`));
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

/**
 * A deterministic mixed workload of `count` distinct inputs: real photos and variants of them,
 * self-blended forgeries of their faces, face-free pictures and bad inputs of every kind.
 */
export async function mixedInputs(cfg: Config, count = 100): Promise<Array<{ name: string; bytes: Buffer }>> {
  const { loadDetector } = await import('@tampertrace/face-detection/load');
  const { makeSelfBlended, toPng, SBI_TRANSFORMS } = await import('@tampertrace/forgery-localization/sbi');
  const { REGION_NAMES } = await import('@tampertrace/forgery-localization/regions');
  const { decodeRgb } = await import('@tampertrace/shared');
  const { astronautPng, cameraPng, truncatedJpeg, pngDeclaring } = await import('@tampertrace/shared/testing');
  const detector = await loadDetector(cfg);
  const photos = [astronautPng(), cameraPng()];
  const out: Array<{ name: string; bytes: Buffer }> = [];
  const bad: Array<[string, Buffer]> = [
    ['truncated-jpeg', await truncatedJpeg()],
    ['truncated-png', astronautPng().subarray(0, 30_000)],
    ['text', Buffer.from('this is not an image')],
    ['empty', Buffer.alloc(0)],
    ['tiny', await sharp({ create: { width: 10, height: 10, channels: 3, background: '#888' } }).png().toBuffer()],
    ['bomb', pngDeclaring(60000, 60000)],
    ['html', Buffer.from('<!doctype html><html><body>hello</body></html>')],
    ['random', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256))],
  ];
  try {
    for (let i = 0; out.length < count; i++) {
      const k = i % 10;
      const photo = photos[i % 2];
      if (k < 4) {
        // A photo variant: crop, scale and re-encoding differ per item.
        const side = 380 + ((i * 13) % 120);
        const img = sharp(photo).extract({ left: (i * 7) % (512 - side), top: (i * 3) % (512 - side), width: side, height: side });
        out.push({ name: `photo-${i}`, bytes: await (i % 3 === 0 ? img.jpeg({ quality: 80 + (i % 15) }) : img.png()).toBuffer() });
      } else if (k < 7) {
        const src = await decodeRgb(photo, limitsOf(cfg));
        const [face] = await detector.detect(src);
        const regions = [REGION_NAMES[(i * 5) % REGION_NAMES.length], REGION_NAMES[(i * 11 + 3) % REGION_NAMES.length]];
        const sample = await makeSelfBlended(src, face, { regions, transform: SBI_TRANSFORMS[i % SBI_TRANSFORMS.length], seed: 1000 + i });
        out.push({ name: `forged-${i}`, bytes: await toPng(sample.rgb) });
      } else if (k < 9) {
        const w = 200 + ((i * 37) % 400);
        const h = 160 + ((i * 53) % 300);
        const bytes = await sharp({ create: { width: w, height: h, channels: 3, background: { r: (i * 40) % 256, g: 90, b: (i * 17) % 256 }, noise: { type: 'gaussian', mean: 128, sigma: 10 + (i % 30) } } }).jpeg().toBuffer();
        out.push({ name: `noface-${i}`, bytes });
      } else {
        const [name, bytes] = bad[Math.floor(i / 10) % bad.length];
        out.push({ name: `bad-${name}-${i}`, bytes });
      }
    }
  } finally {
    await detector.close();
  }
  return out;
}
