// What every distributed-mode service process shares: its transports, and an orderly exit on
// SIGTERM/SIGINT within a deadline (stop fetching, finish in-flight work, commit, disconnect).
import { KafkaBus } from './kafka-bus.ts';
import { S3ObjectStore } from './s3-object-store.ts';
import { requireDistributed, type Config } from './config.ts';
import type { Logger } from './log.ts';
import type { DescMessage } from '@bufbuild/protobuf';
import type { EventBus } from './bus.ts';
import { runStage, type StageDefinition } from './stage.ts';
import { startGrpcServer, stopGrpcServer, type GrpcApi } from './grpc.ts';
import { allTopics } from './topics.ts';
import { Bucket } from './object-store.ts';

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
  return { bus, store };
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
  bus: EventBus,
  def: StageDefinition<I, O>,
  api: GrpcApi,
  release: () => Promise<void> = async () => {},
): Promise<void> {
  const grpcPort = await startGrpcServer(api, cfg, log);
  const sub = await runStage(bus, def, { concurrency: cfg.TAMPERTRACE_STAGE_CONCURRENCY, maxAttempts: cfg.TAMPERTRACE_MAX_ATTEMPTS, log });
  api.health.serving();
  log.info({ grpcPort }, 'ready');
  await runUntilSignal(
    log,
    async () => {
      api.health.notServing();
      await Promise.all([sub.stop(), stopGrpcServer(api, Math.min(5000, cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS / 2))]);
      await bus.close();
      await release();
    },
    cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS,
  );
}
