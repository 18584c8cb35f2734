// Server outages in the middle of a stream, with every service as its own process: a Kafka
// broker restart, a 20 s S3 outage. Nothing may be lost, nothing may come out twice. Every test
// has a deadline so that a hang fails instead of blocking. (A run of both once hung: kafkajs'
// idempotent producer did not recover from the broker restart; KafkaBus now renews it.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import sharp from 'sharp';
import { create } from '@bufbuild/protobuf';
import { REPO_ROOT, grpc, serviceClient, unary } from '@tampertrace/shared';
import { astronautPng, grpcError } from '@tampertrace/shared/testing';
import { IngestService, SubmitRequestSchema } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { SERVICES } from '@tampertrace/shared';
import { Cluster, SKIP_REASON, serversReady, waitFor } from './cluster.testing.ts';

const INFRA = path.join(REPO_ROOT, 'deploy', 'local', 'infra.sh');

if (!serversReady) {
  test('outages', { skip: SKIP_REASON }, () => {});
} else {
  const cluster = new Cluster(19500 + (process.pid % 400));
  before(() => cluster.up([...SERVICES]));
  after(() => cluster.down());

  test('a Kafka broker restart mid-stream: the pipeline recovers by itself and completes every image once', { timeout: 240_000 }, async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const bytes = await sharp(astronautPng()).extract({ left: i * 6, top: i * 5, width: 450, height: 450 }).png().toBuffer();
      ids.push((await cluster.ingestor.submit(bytes, { tenantId: 'outage', sourceName: `k-${i}` })).analysisId);
    }
    await waitFor(() => ids.some((id) => cluster.results.has(id)), 60_000, 'the first result');
    execFileSync(INFRA, ['down', 'kafka'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 3000));
    execFileSync(INFRA, ['up', 'kafka'], { stdio: 'ignore' });
    // More work after the restart, through the same producer.
    for (let i = 6; i < 8; i++) {
      const bytes = await sharp(astronautPng()).extract({ left: i * 6, top: i * 5, width: 450, height: 450 }).png().toBuffer();
      ids.push((await cluster.ingestor.submit(bytes, { tenantId: 'outage', sourceName: `k-${i}` })).analysisId);
    }
    await waitFor(() => ids.every((id) => cluster.results.has(id)), 150_000, 'every result after the broker restart');
    for (const id of ids) {
      const r = cluster.results.get(id)!;
      assert.equal(r.status, AnalysisStatus.COMPLETED);
      assert.equal(r.eventIds.size, 1);
    }
  });

  test('the S3 server stopped for 20 s mid-stream: work waits and retries, nothing is lost', { timeout: 200_000 }, async () => {
    const ids: string[] = [];
    // Enough work that the stages are still busy when S3 goes away (about 1 s to stop it).
    const inputs = await Promise.all(Array.from({ length: 24 }, (_, i) => sharp(astronautPng()).extract({ left: 60 - (i % 12) * 5, top: i * 2, width: 440, height: 440 }).png().toBuffer()));
    for (const [i, bytes] of inputs.entries()) {
      ids.push((await cluster.ingestor.submit(bytes, { tenantId: 'outage', sourceName: `s3-${i}` })).analysisId);
    }
    // Down as soon as the originals are stored, so the stages meet the outage.
    execFileSync(INFRA, ['down', 's3'], { stdio: 'ignore' });
    // Meanwhile the API tells callers to come back: UNAVAILABLE (DEPENDENCY_UNAVAILABLE), not an error of theirs.
    const client = serviceClient(IngestService, cluster.grpcAddress, { apiKey: await cluster.createTenant('outage-api') });
    const refused = await grpcError(unary(client, 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: inputs[0] } }), { deadline: Date.now() + 15_000 }));
    client.close();
    assert.equal(grpc.status[refused.code], 'UNAVAILABLE', refused.details);
    assert.equal(refused.metadata.get('tt-error-code')[0], 'DEPENDENCY_UNAVAILABLE');
    await new Promise((r) => setTimeout(r, 20_000));
    const back = Date.now();
    execFileSync(INFRA, ['up', 's3'], { stdio: 'ignore' });
    await waitFor(() => ids.every((id) => cluster.results.has(id)), 120_000, 'every result after the S3 outage');
    for (const id of ids) {
      const r = cluster.results.get(id)!;
      assert.equal(r.status, AnalysisStatus.COMPLETED);
      assert.equal(r.eventIds.size, 1);
    }
    assert.ok(ids.some((id) => cluster.results.get(id)!.at >= back), 'work really waited for S3');
  });
}
