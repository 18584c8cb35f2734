// ingest service (distributed mode): the gRPC API (IngestService) and the HTTP endpoint in front
// of the stage services, with the results view in PostgreSQL.
import { connectBusAndStore, createLogger, loadConfig, requireDistributed, runUntilSignal } from '@tampertrace/shared';
import { openPostgres } from '@tampertrace/shared/pg';
import { Gateway } from './gateway.ts';
import { serveGrpc, stopGrpc } from './grpc.ts';
import { serveHttp } from './http.ts';
import { INGEST } from './ingest.ts';

const cfg = loadConfig();
const log = createLogger(INGEST);
requireDistributed(cfg, { kafka: true, s3: true, database: true });
const sql = await openPostgres(cfg.TAMPERTRACE_DATABASE_URL);
const { bus, store } = await connectBusAndStore(cfg, log, INGEST);
const gateway = await Gateway.start({ cfg, log, bus, store, sql });
const { server: grpcServer, port: grpcPort } = await serveGrpc(gateway, cfg, log);
const http = await serveHttp(gateway, cfg, log);
const httpAddr = http.address();
log.info({ grpc: `${cfg.TAMPERTRACE_GRPC_HOST}:${grpcPort}`, http: typeof httpAddr === 'object' && httpAddr ? `http://${cfg.TAMPERTRACE_HTTP_HOST}:${httpAddr.port}` : '' }, 'ready');
await runUntilSignal(
  log,
  async () => {
    // New calls are refused first; the ones in flight (a Submit waiting on Kafka) finish.
    await Promise.all([stopGrpc(grpcServer), new Promise<void>((resolve) => http.close(() => resolve()))]);
    await gateway.stop();
    await bus.close();
    await sql.close();
  },
  cfg.TAMPERTRACE_SHUTDOWN_TIMEOUT_MS,
);
