// Server outages in the middle of a stream, with every service as its own process: a Kafka
// broker restart. Nothing may be lost, nothing may come out twice.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT } from '@tampertrace/shared';
import { astronautPng } from '@tampertrace/shared/testing';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { SERVICES } from './cli.ts';
import { Cluster, SKIP_REASON, serversReady, waitFor } from './cluster.testing.ts';

const INFRA = path.join(REPO_ROOT, 'deploy', 'local', 'infra.sh');

if (!serversReady) {
  test('outages', { skip: SKIP_REASON }, () => {});
} else {
  const cluster = new Cluster(19500 + (process.pid % 400));
  before(() => cluster.up([...SERVICES]));
  after(() => cluster.down());

  test('a Kafka broker restart mid-stream: the pipeline recovers by itself and completes every image once', async () => {
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
}
