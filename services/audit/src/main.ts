// audit service: records every stage event in PostgreSQL (distributed mode).
import { connectBusAndStore, createLogger, loadConfig, requireDistributed, runUntilSignal } from '@tampertrace/shared';
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
log.info('ready');
await runUntilSignal(log, async () => {
  await sub.stop();
  await bus.close();
  await audit.close();
}, cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS);
