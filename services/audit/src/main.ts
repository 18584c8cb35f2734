// audit service: records every stage event and dead letter in PostgreSQL (distributed mode). Its
// gRPC port serves health only: the audit trail is read through the ingest service's AuditService.
import { connectBusAndStore, createGrpcServer, createLogger, loadConfig, requireDistributed, runUntilSignal, startGrpcServer, startOps, stopGrpcServer } from '@tampertrace/shared';
import { AUDIT_GROUP, runAuditConsumer } from './consumer.ts';
import { openPostgres } from '@tampertrace/shared/pg';
import { AuditStore } from '@tampertrace/shared/audit-trail/store';

const cfg = loadConfig();
const log = createLogger(AUDIT_GROUP);
requireDistributed(cfg, { kafka: true, database: true });
const sql = await openPostgres(cfg.TAMPERTRACE_DATABASE_URL);
const audit = new AuditStore(sql);
await audit.migrate();
const { bus } = await connectBusAndStore(cfg, log, AUDIT_GROUP);
const health = createGrpcServer(cfg, [], log);
const { readiness, ops } = await startOps(cfg, log, health.health, { bus, sql });
const sub = await runAuditConsumer(bus, audit, log, {
  concurrency: cfg.TAMPERTRACE_AUDIT_CONCURRENCY,
  batchWaitMs: cfg.TAMPERTRACE_AUDIT_BATCH_WAIT_MS,
  checkpointEvery: cfg.TAMPERTRACE_AUDIT_CHECKPOINT_EVERY,
  checkpointIntervalMs: cfg.TAMPERTRACE_AUDIT_CHECKPOINT_INTERVAL_MS,
});
const grpcPort = await startGrpcServer(health, cfg, log);
await readiness.started(cfg.TAMPERTRACE_READINESS_INTERVAL_MS);
log.info({ grpcPort, opsPort: ops.port, ready: readiness.report.ready }, 'started');
await runUntilSignal(log, async () => {
  readiness.stopping();
  await stopGrpcServer(health, 1000);
  await sub.stop();
  await bus.close();
  await audit.close();
  await ops.close();
}, cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS);
