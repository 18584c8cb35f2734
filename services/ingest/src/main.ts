// ingest service (distributed mode): the gRPC API (IngestService) and the HTTP endpoint in front
// of the stage services, with tenants and the results view in PostgreSQL.
import { connectBusAndStore, createLogger, loadConfig, requireDistributed, runUntilSignal } from '@tampertrace/shared';
import { openPostgres } from '@tampertrace/shared/pg';
import { openIngest, serveIngest } from './api.ts';
import { INGEST } from './ingest.ts';

const cfg = loadConfig();
const log = createLogger(INGEST);
requireDistributed(cfg, { kafka: true, s3: true, database: true, pepper: true });
const sql = await openPostgres(cfg.TAMPERTRACE_DATABASE_URL);
const { bus, store } = await connectBusAndStore(cfg, log, INGEST);
const ingest = await openIngest({ cfg, log, bus, store, sql, pepper: cfg.TAMPERTRACE_API_KEY_PEPPER });
const servers = await serveIngest(ingest, cfg);
log.info({ grpc: `${cfg.TAMPERTRACE_GRPC_HOST}:${servers.grpcPort}`, http: `http://${cfg.TAMPERTRACE_HTTP_HOST}:${servers.httpPort}` }, 'ready');
await runUntilSignal(
  log,
  async () => {
    // New calls are refused first; the ones in flight (a Submit waiting on Kafka) finish.
    await servers.stop();
    await ingest.stop();
    await bus.close();
    await sql.close();
  },
  cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS,
);
