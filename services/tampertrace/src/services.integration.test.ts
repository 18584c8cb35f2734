// Distributed mode across processes: the gateway, face-detection, forgery-localization,
// explanation-generation and audit each run as their own process on the real Kafka, S3Proxy and
// PostgreSQL; the test submits through the ingest logic and reads the results topic.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { astronautPng, cameraPng, truncatedJpeg } from '@tampertrace/shared/testing';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { SERVICES } from './cli.ts';
import { BIN, Cluster, SKIP_REASON, serversReady, waitFor } from './cluster.testing.ts';

if (!serversReady) {
  test('services as separate processes', { skip: SKIP_REASON }, () => {});
} else {
  const cluster = new Cluster(18000 + (process.pid % 1000));
  const { results, env: serviceEnv } = cluster;

  before(() => cluster.up([...SERVICES, 'ingest']));
  after(() => cluster.down());

  test('images go through four separate service processes; each comes out once, completed or rejected', async () => {
    const noFace = await sharp({ create: { width: 320, height: 240, channels: 3, background: '#5a7' } }).png().toBuffer();
    const inputs: Array<[string, Buffer, AnalysisStatus]> = [
      ['astronaut', astronautPng(), AnalysisStatus.COMPLETED],
      ['camera', cameraPng(), AnalysisStatus.COMPLETED],
      ['noface', noFace, AnalysisStatus.NO_FACE],
      ['cut', await truncatedJpeg(), AnalysisStatus.REJECTED],
      ['text', Buffer.from('not an image'), AnalysisStatus.REJECTED],
    ];
    const ids = await Promise.all(inputs.map(async ([name, bytes]) => (await cluster.ingestor.submit(bytes, { tenantId: 't1', sourceName: name })).analysisId));
    await waitFor(() => ids.every((id) => results.has(id)), 60_000, 'all results');
    ids.forEach((id, i) => {
      const r = results.get(id)!;
      assert.equal(r.status, inputs[i][2], inputs[i][0]);
      assert.equal(r.eventIds.size, 1, `${inputs[i][0]}: one result`);
    });
    assert.equal(results.get(ids[0])!.faces, 1);
  });

  test('kill -9 of the localization worker mid-stream loses nothing and records nothing twice', async () => {
    const before = new Set(results.keys());
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      // Distinct bytes per submission: a different crop of the astronaut.
      const bytes = await sharp(astronautPng()).extract({ left: i * 8, top: i * 4, width: 440, height: 440 }).png().toBuffer();
      ids.push((await cluster.ingestor.submit(bytes, { tenantId: 't2', sourceName: `crop-${i}` })).analysisId);
    }
    await waitFor(() => ids.some((id) => results.has(id)), 60_000, 'the first result');
    await cluster.kill9('forgery-localization');
    await cluster.start('forgery-localization');
    await waitFor(() => ids.every((id) => results.has(id)), 90_000, 'every result after the restart');
    for (const id of ids) {
      const r = results.get(id)!;
      assert.equal(r.status, AnalysisStatus.COMPLETED);
      // Redelivery may repeat a message, never a result: the final event id is deterministic.
      assert.equal(r.eventIds.size, 1);
    }
    assert.ok(![...before].some((id) => ids.includes(id)));
    // The audit service (own process, own group) has exactly one record per analysis and stage.
    let rows: { analysis_id: string; stage: string; n: number }[] = [];
    for (let i = 0; i < 100; i++) {
      rows = await cluster.sql(`SELECT analysis_id, stage, count(*)::int AS n FROM ${cluster.schema}.audit_records WHERE tenant_id = 't2' GROUP BY 1, 2`);
      if (rows.length >= ids.length * 4) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(rows.length, ids.length * 4);
    assert.ok(rows.every((r) => r.n === 1), 'no stage recorded twice');
  });

  test('tampertrace submit sends files to the gateway process and writes the same outputs as analyze', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tt-submit-'));
    await mkdir(path.join(dir, 'in'));
    await writeFile(path.join(dir, 'in', 'astronaut.png'), astronautPng());
    await writeFile(path.join(dir, 'in', 'text.jpg'), 'not an image');
    const out = path.join(dir, 'out');
    const server = `http://127.0.0.1:${serviceEnv.TAMPERTRACE_HTTP_PORT}`;
    const code = await new Promise<number>((resolve) => {
      execFile(process.execPath, [BIN, 'submit', '--server', server, '--out', out, path.join(dir, 'in')], { env: serviceEnv }, (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0));
    });
    assert.equal(code, 2, 'one input rejected');
    const a = JSON.parse(await readFile(path.join(out, 'astronaut.json'), 'utf8'));
    assert.equal(a.status, 'ANALYSIS_STATUS_COMPLETED');
    assert.equal(a.faces.length, 1);
    const mask = await sharp(path.join(out, 'astronaut.mask.png')).metadata();
    assert.deepEqual([mask.width, mask.height], [512, 512]);
    const overlay = await sharp(path.join(out, 'astronaut.overlay.png')).metadata();
    assert.deepEqual([overlay.width, overlay.height], [512, 512]);
    const t = JSON.parse(await readFile(path.join(out, 'text.json'), 'utf8'));
    assert.equal(t.status, 'ANALYSIS_STATUS_REJECTED');
    assert.equal(t.error.code, 'ERROR_CODE_UNSUPPORTED_FORMAT');
  });
}
