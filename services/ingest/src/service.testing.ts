// The ingest service alone, for the tests beside its files: its API on PGlite, the in-memory bus
// and a local object store, with no stages behind it. A test plays the stages by publishing the
// events they would (a stage's output, the final AnalysisCompleted) onto the same bus.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { pino } from 'pino';
import sharp from 'sharp';
import { FsObjectStore, InMemoryBus, Topic, encodeEvent, eventId, loadConfig, type Config, type SqlClient } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema, EventMetaSchema, FacesDetectedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { openIngest, type Ingest } from './service.ts';

export interface IngestUnderTest {
  cfg: Config;
  ingest: Ingest;
  bus: InMemoryBus;
  sql: SqlClient;
  store: FsObjectStore;
  /** A new tenant (generous limits unless given) and its API key. */
  tenant(opts?: { ratePerS?: number; burst?: number; maxInFlight?: number }): Promise<{ tenantId: string; apiKey: string }>;
  /** Plays face detection: its FacesDetected event for the analysis (no faces), once consumed. */
  detected(a: Pick<Analysis, 'analysisId' | 'tenantId' | 'contentSha256'>): Promise<void>;
  /** Plays the pipeline's end: the final analysis (COMPLETED unless `fields` say otherwise), once consumed. */
  finish(a: Analysis, fields?: MessageInitShape<typeof AnalysisSchema>): Promise<Analysis>;
  close(): Promise<void>;
}

export async function openIngestUnderTest(env: Record<string, string> = {}): Promise<IngestUnderTest> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'tt-ingest-'));
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home, TAMPERTRACE_GRPC_PORT: '0', TAMPERTRACE_HTTP_PORT: '0', ...env });
  const bus = new InMemoryBus();
  const sql = await openPglite(undefined);
  const store = new FsObjectStore(path.join(home, 'objects'));
  const ingest = await openIngest({ cfg, log: pino({ level: 'silent' }), bus, store, sql, pepper: 'ingest-test-pepper' });
  let n = 0;
  const meta = (a: Pick<Analysis, 'analysisId' | 'tenantId' | 'contentSha256'>, stage: string) => create(EventMetaSchema, { eventId: eventId(a.analysisId, stage), analysisId: a.analysisId, tenantId: a.tenantId, contentSha256: a.contentSha256 });
  return {
    cfg,
    ingest,
    bus,
    sql,
    store,
    async tenant(opts = {}) {
      const tenantId = `t${++n}-${Date.now().toString(36)}`;
      const { apiKey } = await ingest.tenants.create(tenantId, { ratePerS: 1000, burst: 1000, ...opts });
      return { tenantId, apiKey };
    },
    async detected(a) {
      await bus.publish(encodeEvent(Topic.facesDetected, FacesDetectedSchema, create(FacesDetectedSchema, { meta: meta(a, 'face-detection') })));
      await bus.idle();
    },
    async finish(a, fields = {}) {
      // Fields named one by one: create() takes a spread message as finished and would leave `fields` unconverted.
      const { analysisId, tenantId, contentSha256, sourceName, submittedAt } = a;
      const analysis = create(AnalysisSchema, { analysisId, tenantId, contentSha256, sourceName, submittedAt, status: AnalysisStatus.COMPLETED, ...fields });
      await bus.publish(encodeEvent(Topic.analysisCompleted, AnalysisCompletedSchema, create(AnalysisCompletedSchema, { meta: meta(a, 'explanation'), analysis })));
      await bus.idle();
      return analysis;
    },
    async close() {
      await ingest.stop();
      await bus.close();
      await sql.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** A distinct valid small PNG per n. */
export const png = (n: number, size = 32): Promise<Buffer> =>
  sharp({ create: { width: size, height: size, channels: 3, background: { r: n % 256, g: Math.floor(n / 256) % 256, b: 42 } } })
    .png()
    .toBuffer();
