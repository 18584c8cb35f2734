// Deduplication and the in-flight cap under concurrent submissions, shared by the PGlite test
// (embedded mode's database, one replica) and the PostgreSQL one (two ingest replicas on one database).
// The replicas run no stages, so nothing leaves PENDING: every analysis ever admitted is still
// in flight at the end, and the database's count is the most that were ever in flight at once.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import sharp from 'sharp';
import { FsObjectStore, InMemoryBus, grpc, loadConfig, serviceClient, sha256Hex, stopGrpcServer, unary, type SqlClient } from '@tampertrace/shared';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { IngestService, SubmitRequestSchema, type SubmitResponse } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { openIngest } from './service.ts';
import { serveGrpc } from './grpc.ts';

/** One ingest replica: the ingest service's API on its own bus and connection pool, serving gRPC on a free port. */
export interface Replica {
  port: number;
  tenants: Awaited<ReturnType<typeof openIngest>>['tenants'];
  close(): Promise<void>;
}

export async function openReplica(sql: SqlClient, pepper: string): Promise<Replica> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'tt-admission-'));
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home, TAMPERTRACE_GRPC_PORT: '0' });
  const bus = new InMemoryBus();
  const ingest = await openIngest({ cfg, log: pino({ level: 'silent' }), bus, store: new FsObjectStore(path.join(home, 'objects')), sql, pepper });
  const { server, port } = await serveGrpc(ingest, cfg);
  return {
    port,
    tenants: ingest.tenants,
    async close() {
      await stopGrpcServer(server);
      await ingest.stop();
      await bus.close();
    },
  };
}

/** A distinct valid 64x64 PNG per n. */
export const png = (n: number) =>
  sharp({ create: { width: 64, height: 64, channels: 3, background: { r: n % 256, g: Math.floor(n / 256) % 256, b: 99 } } })
    .png()
    .toBuffer();

type Outcome = SubmitResponse | grpc.ServiceError;

/** Submits every input at once, spread over the replicas' clients in turn. */
async function submitAll(clients: grpc.Client[], inputs: Buffer[], reanalyze = false): Promise<Outcome[]> {
  return Promise.all(
    inputs.map((bytes, i) =>
      unary<SubmitResponse>(clients[i % clients.length], 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: bytes }, reanalyze })).catch((err: grpc.ServiceError) => err),
    ),
  );
}

const clientsOf = (replicas: Replica[], apiKey: string) => replicas.map((r) => serviceClient(IngestService, `127.0.0.1:${r.port}`, { apiKey }));
const isError = (o: Outcome): o is grpc.ServiceError => o instanceof Error;

/** 20 identical new submissions at once make one analysis; every caller gets its id. */
export async function identicalSubmissionsMakeOneAnalysis(replicas: Replica[], sql: SqlClient): Promise<void> {
  const { apiKey } = await replicas[0].tenants.create(`dedup-${Date.now().toString(36)}`, { ratePerS: 1000, burst: 1000 });
  const clients = clientsOf(replicas, apiKey);
  try {
    const bytes = await png(7);
    const out = await submitAll(clients, Array.from({ length: 20 }, () => bytes));
    const errors = out.filter(isError);
    assert.deepEqual(errors.map((e) => e.details), []);
    const ok = out as SubmitResponse[];
    assert.equal(new Set(ok.map((r) => r.analysisId)).size, 1, 'every caller gets the one analysis');
    assert.equal(ok.filter((r) => !r.deduplicated).length, 1, 'exactly one submission made it');
    const rows = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM analyses WHERE content_sha256 = $1', [sha256Hex(bytes)]);
    assert.equal(Number(rows.rows[0].n), 1);
    // reanalyze is the way to a second analysis of the same bytes: each such submission makes one.
    const again = await submitAll(clients, Array.from({ length: 4 }, () => bytes), true);
    assert.ok(again.every((o) => !isError(o) && !o.deduplicated));
    assert.equal(new Set((again as SubmitResponse[]).map((r) => r.analysisId)).size, 4);
    const after = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM analyses WHERE content_sha256 = $1', [sha256Hex(bytes)]);
    assert.equal(Number(after.rows[0].n), 5);
  } finally {
    clients.forEach((c) => c.close());
  }
}

/** 50 different submissions at once for a tenant capped at 3 in flight: 3 are admitted, 47 refused with QUOTA_EXCEEDED. */
export async function inFlightCapHolds(replicas: Replica[], sql: SqlClient): Promise<void> {
  const tenant = `cap-${Date.now().toString(36)}`;
  const { apiKey } = await replicas[0].tenants.create(tenant, { ratePerS: 1000, burst: 1000, maxInFlight: 3 });
  const clients = clientsOf(replicas, apiKey);
  try {
    const inputs = await Promise.all(Array.from({ length: 50 }, (_, i) => png(1000 + i)));
    const out = await submitAll(clients, inputs);
    const refused = out.filter(isError);
    assert.deepEqual([...new Set(refused.map((e) => `${grpc.status[e.code]} ${e.metadata.get('tt-error-code')[0]}`))], ['RESOURCE_EXHAUSTED QUOTA_EXCEEDED']);
    const rows = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM analyses WHERE tenant_id = $1 AND status = ${AnalysisStatus.PENDING}`, [tenant]);
    // No stages run: whatever was admitted is still in flight, so this is the most there ever were.
    assert.equal(Number(rows.rows[0].n), 3);
    assert.equal(out.length - refused.length, 3);
  } finally {
    clients.forEach((c) => c.close());
  }
}
