// provenance service: consumes image.ingested, publishes provenance.checked (distributed mode),
// with its hashes in PostgreSQL; beside the stage it records each analysis's final verdict from
// the results topic. Its gRPC port serves health only.
import { Bucket, connectBusAndStore, createGrpcServer, createLogger, limitsOf, loadConfig, requireDistributed, serveStage } from '@tampertrace/shared';
import { openPostgres } from '@tampertrace/shared/pg';
import { PROVENANCE, provenanceStage } from './stage.ts';
import { HashStore } from './store.ts';
import { runVerdictRecorder } from './verdicts.ts';

const cfg = loadConfig();
const log = createLogger(PROVENANCE);
requireDistributed(cfg, { kafka: true, database: true });
const sql = await openPostgres(cfg.TAMPERTRACE_DATABASE_URL);
const hashes = new HashStore(sql);
await hashes.migrate();
const { bus, store } = await connectBusAndStore(cfg, log, PROVENANCE);
await store.ensureBuckets([Bucket.originals]);
await serveStage(cfg, log, { bus, store }, provenanceStage({ store, hashes, limits: limitsOf(cfg) }), createGrpcServer(cfg, []), () => sql.close(), {
  sql,
  beside: async (b) => [await runVerdictRecorder(b, hashes, log, cfg.TAMPERTRACE_STAGE_CONCURRENCY)],
});
