// audit service: records every stage event and dead letter in PostgreSQL (distributed mode). Its
// gRPC port serves health only: the audit trail is read through the ingest service's AuditService.
import { connectBusAndStore, createGrpcServer, createLogger, loadConfig, requireDistributed, runUntilSignal, startGrpcServer, stopGrpcServer } from '@tampertrace/shared';
import { AUDIT_GROUP, runAuditConsumer } from './consumer.ts';
import { openPostgres } from '@tampertrace/shared/pg';
import { AuditStore } from './store.ts';

const cfg = loadConfig();
const log = createLogger(AUDIT_GROUP);
requireDistributed(cfg, { kafka: true, database: true });
const audit = new AuditStore(await openPostgres(cfg.TAMPERTRACE_DATABASE_URL));
await audit.migrate();
const { bus } = await connectBusAndStore(cfg, log, AUDIT_GROUP);
const sub = await runAuditConsumer(bus, audit, log, {
  checkpointEvery: cfg.TAMPERTRACE_AUDIT_CHECKPOINT_EVERY,
  checkpointIntervalMs: cfg.TAMPERTRACE_AUDIT_CHECKPOINT_INTERVAL_MS,
});
const health = createGrpcServer(cfg, []);
const grpcPort = await startGrpcServer(health, cfg, log);
health.health.serving();
log.info({ grpcPort }, 'ready');
await runUntilSignal(log, async () => {
  await stopGrpcServer(health, 1000);
  await sub.stop();
  await bus.close();
  await audit.close();
}, cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS);
