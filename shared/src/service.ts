// What every distributed-mode service process shares: its transports, and an orderly exit on
// SIGTERM/SIGINT within a deadline (stop fetching, finish in-flight work, commit, disconnect).
import { KafkaBus } from './kafka-bus.ts';
import { S3ObjectStore } from './s3-object-store.ts';
import { requireDistributed, type Config } from './config.ts';
import type { Logger } from './log.ts';
import type { DescMessage } from '@bufbuild/protobuf';
import type { Subscription } from './bus.ts';
import { runStage, type StageDefinition } from './stage.ts';
import { startGrpcServer, stopGrpcServer, type GrpcApi } from './grpc.ts';
import { allTopics } from './topics.ts';
import { Bucket, type ObjectStore } from './object-store.ts';
import { setLagSource } from './metrics.ts';
import { Readiness, startOpsServer, type DependencyCheck, type OpsServer } from './ops.ts';
import type { ServiceHealth } from './health.ts';
import type { SqlClient } from './sql.ts';

export async function connectBusAndStore(cfg: Config, log: Logger, service: string): Promise<{ bus: KafkaBus; store: S3ObjectStore }> {
  requireDistributed(cfg, { kafka: true, s3: true });
  const store = new S3ObjectStore({
    endpoint: cfg.TAMPERTRACE_S3_ENDPOINT,
    region: cfg.TAMPERTRACE_S3_REGION,
    accessKey: cfg.TAMPERTRACE_S3_ACCESS_KEY,
    secretKey: cfg.TAMPERTRACE_S3_SECRET_KEY,
    bucketPrefix: cfg.TAMPERTRACE_S3_BUCKET_PREFIX || undefined,
  });
  const bus = await KafkaBus.connect({
    brokers: cfg.TAMPERTRACE_KAFKA_BROKERS,
    clientId: service,
    topicPrefix: cfg.TAMPERTRACE_TOPIC_PREFIX,
    partitions: cfg.TAMPERTRACE_TOPIC_PARTITIONS,
    replicationFactor: cfg.TAMPERTRACE_TOPIC_REPLICATION,
    log,
  });
  // Every service creates every topic it could touch, dead-letter topics included, so that none
  // is born by accident with broker defaults, and a DLQ exists before its first message.
  for (let attempt = 1; ; attempt++) {
    try {
      await bus.provision(allTopics());
      break;
    } catch (err) {
      // A broker that has just started may still refuse ("does not host this topic-partition").
      if (attempt >= 5) throw err;
      log.warn({ attempt, err: String(err) }, 'topic provisioning failed; retrying');
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
  await store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
  setLagSource(() => bus.lag());
  return { bus, store };
}

/** What a process depends on, as readiness checks; `fatal` fails liveness (a consumer that will not restart). */
export function dependencyChecks(deps: { bus?: KafkaBus; store?: ObjectStore; sql?: SqlClient }): DependencyCheck[] {
  const checks: DependencyCheck[] = [];
  if (deps.bus) checks.push({ name: 'kafka', check: () => deps.bus!.ping() });
  if (deps.store) checks.push({ name: 's3', check: () => deps.store!.ping() });
  if (deps.sql) checks.push({ name: 'postgresql', check: async () => void (await deps.sql!.query('SELECT 1')) });
  return checks;
}

/**
 * Readiness over these dependencies, driving `health` (gRPC) and served with /metrics and /livez
 * on the ops port. Call `readiness.started()` once start-up is done, `stopping()` on a signal.
 */
export async function startOps(cfg: Config, log: Logger, health: ServiceHealth | undefined, deps: { bus?: KafkaBus; store?: ObjectStore; sql?: SqlClient }): Promise<{ readiness: Readiness; ops: OpsServer }> {
  const readiness = new Readiness(dependencyChecks(deps), health, log, () => deps.bus?.fatal);
  const ops = await startOpsServer(cfg, log, readiness);
  return { readiness, ops };
}

/** Resolves when the process is asked to stop; then runs `stop` and exits, forcibly after the deadline. */
export async function runUntilSignal(log: Logger, stop: () => Promise<void>, timeoutMs: number): Promise<void> {
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info({ signal, timeoutMs }, 'stopping');
  const deadline = setTimeout(() => {
    log.error({ timeoutMs }, 'shutdown deadline passed; exiting with work in flight (it will be redelivered)');
    process.exit(1);
  }, timeoutMs);
  deadline.unref();
  await stop();
  log.info('stopped');
}

/**
 * The life of a stage service: serve its gRPC API (its synchronous method, health), consume
 * with the stage, report SERVING once the consumer has joined and say ready; on a signal report
 * NOT_SERVING at once, stop fetching and taking calls, let in-flight work and calls finish,
 * disconnect, then release the stage's own resources (its models).
 */
export async function serveStage<I extends DescMessage, O extends DescMessage>(
  cfg: Config,
  log: Logger,
  { bus, store }: { bus: KafkaBus; store: ObjectStore },
  def: StageDefinition<I, O>,
  api: GrpcApi,
  release: () => Promise<void> = async () => {},
  /** A database the stage uses (checked for readiness), and consumers the service runs beside its stage (stopped with it). */
  extra: { sql?: SqlClient; beside?: (bus: KafkaBus) => Promise<Subscription[]> } = {},
): Promise<void> {
  const { readiness, ops } = await startOps(cfg, log, api.health, { bus, store, sql: extra.sql });
  const grpcPort = await startGrpcServer(api, cfg, log);
  const sub = await runStage(bus, def, { concurrency: cfg.TAMPERTRACE_STAGE_CONCURRENCY, maxAttempts: cfg.TAMPERTRACE_MAX_ATTEMPTS, log });
  const beside = (await extra.beside?.(bus)) ?? [];
  await readiness.started(cfg.TAMPERTRACE_READINESS_INTERVAL_MS);
  log.info({ grpcPort, opsPort: ops.port, ready: readiness.report.ready }, 'started');
  await runUntilSignal(
    log,
    async () => {
      readiness.stopping();
      await Promise.all([sub.stop(), ...beside.map((s) => s.stop()), stopGrpcServer(api, Math.min(5000, cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS / 2))]);
      await bus.close();
      await release();
      await ops.close();
    },
    cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS,
  );
}
