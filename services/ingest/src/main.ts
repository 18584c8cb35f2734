// ingest service (distributed mode): the gRPC API (IngestService) and the HTTP endpoint in front
// of the stage services, with tenants and the results view in PostgreSQL.
import { connectBusAndStore, createLogger, loadConfig, requireDistributed, runUntilSignal, startOps } from '@tampertrace/shared';
import { openPostgres } from '@tampertrace/shared/pg';
import { openIngest, serveIngest } from './service.ts';
import { INGEST } from './ingest-stage.ts';

const cfg = loadConfig();
const log = createLogger(INGEST);
requireDistributed(cfg, { kafka: true, s3: true, database: true, pepper: true });
const sql = await openPostgres(cfg.TAMPERTRACE_DATABASE_URL);
const { bus, store } = await connectBusAndStore(cfg, log, INGEST);
const ingest = await openIngest({ cfg, log, bus, store, sql, pepper: cfg.TAMPERTRACE_API_KEY_PEPPER });
const servers = await serveIngest(ingest, cfg);
const { readiness, ops } = await startOps(cfg, log, servers.health, { bus, store, sql });
await readiness.started(cfg.TAMPERTRACE_READINESS_INTERVAL_MS);
log.info({ grpc: `${cfg.TAMPERTRACE_GRPC_HOST}:${servers.grpcPort}`, http: `http://${cfg.TAMPERTRACE_HTTP_HOST}:${servers.httpPort}`, opsPort: ops.port, ready: readiness.report.ready }, 'started');
await runUntilSignal(
  log,
  async () => {
    readiness.stopping();
    // New calls are refused first; the ones in flight (a Submit waiting on Kafka) finish.
    await servers.stop();
    await ingest.stop();
    await bus.close();
    await sql.close();
    await ops.close();
  },
  cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS,
);
