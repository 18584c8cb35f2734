// Distributed mode across processes: ingest, face-detection, forgery-localization,
// explanation-generation and audit each run as their own process on the real Kafka, S3Proxy and
// PostgreSQL; the tests submit through the ingest service's gRPC API (or the ingest logic) and
// read the results topic.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { Kafka, AssignerProtocol, logLevel } from 'kafkajs';
import { pino } from 'pino';
import { Semaphore, allTopics, grpc, loadConfig, serviceClient, sha256Hex, unary, withPrefix } from '@tampertrace/shared';
import { Cue, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { GetAnalysisRequestSchema, IngestService, SubmitRequestSchema, type GetAnalysisResponse, type SubmitResponse } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { astronautPng, cameraPng, truncatedJpeg } from '@tampertrace/shared/testing';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { PIPELINE, SERVICES } from '@tampertrace/shared';
import { BIN, Cluster, SKIP_REASON, mixedInputs, serversReady, waitFor } from './cluster.testing.ts';
import { startEmbedded } from './embedded.ts';

if (!serversReady) {
  test('services as separate processes', { skip: SKIP_REASON }, () => {});
} else {
  // Ports below 19000: the local S3 server listens there, Kafka on 19092-19093.
  const cluster = new Cluster(17000 + (process.pid % 900) * 2);
  const { results, env: serviceEnv } = cluster;

  let client: grpc.Client;
  let apiKey: string;
  let kafka: Kafka;
  before(async () => {
    await cluster.up([...SERVICES]);
    apiKey = await cluster.createTenant('tenant-a');
    client = serviceClient(IngestService, cluster.grpcAddress, { apiKey });
    kafka = new Kafka({ clientId: `${cluster.run}-admin`, brokers: cluster.cfg.TAMPERTRACE_KAFKA_BROKERS, logLevel: logLevel.NOTHING });
  });
  after(async () => {
    client?.close();
    await cluster.down();
  });

  /** The analysis id of a submission; a refused image is an error with its REJECTED analysis's id in a trailer. */
  const grpcSubmit = async (bytes: Uint8Array, sourceName: string): Promise<string> => {
    try {
      return (await unary<SubmitResponse>(client, 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: bytes }, sourceName, reanalyze: true }))).analysisId;
    } catch (err) {
      const id = (err as grpc.ServiceError).metadata?.get('tt-analysis-id')[0];
      if (typeof id !== 'string') throw err;
      return id;
    }
  };

  test('every topic and dead-letter topic exists with the configured partitions once the services are up', async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const want = allTopics().map((t) => withPrefix(cluster.run, t));
      const meta = await admin.fetchTopicMetadata({ topics: want });
      for (const t of meta.topics) assert.equal(t.partitions.length, cluster.cfg.TAMPERTRACE_TOPIC_PARTITIONS, t.name);
      assert.deepEqual(meta.topics.map((t) => t.name).sort(), want.sort());
      assert.ok(want.includes(withPrefix(cluster.run, 'tampertrace.dlq.ingest-results.v1')));
    } finally {
      await admin.disconnect();
    }
  });

  test('100 mixed inputs through the ingest process: each comes out once, the same as in embedded mode', { timeout: 600_000 }, async () => {
    const inputs = await mixedInputs(cluster.cfg, 100);
    assert.equal(inputs.length, 100);
    const slots = new Semaphore(8);
    const ids = await Promise.all(
      inputs.map(async ({ name, bytes }) => {
        await slots.acquire();
        try {
          return await grpcSubmit(bytes, name);
        } finally {
          slots.release();
        }
      }),
    );
    await waitFor(() => ids.every((id) => results.has(id)), 400_000, 'all 100 results');
    for (const [i, id] of ids.entries()) assert.equal(results.get(id)!.eventIds.size, 1, `${inputs[i].name}: one result`);
    // The results view (PostgreSQL) answers GetAnalysis with the same final state.
    const distributed: Analysis[] = [];
    for (const id of ids) {
      const a = (await unary<GetAnalysisResponse>(client, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: id }))).analysis!;
      assert.equal(a.status, results.get(id)!.status);
      distributed.push(a);
    }
    // The same inputs in embedded mode, in this process.
    const home = await mkdtemp(path.join(os.tmpdir(), 'tt-compare-'));
    const embedded = await startEmbedded(loadConfig({ ...process.env, TAMPERTRACE_HOME: home }), pino({ level: 'silent' }));
    const local: Analysis[] = [];
    try {
      for (const { name, bytes } of inputs) local.push(await embedded.analyze(bytes, name));
    } finally {
      await embedded.close();
    }
    // The provenance sentence names earlier analyses of the same picture, which depend on the order
    // the tenant's submissions arrived in: not the same in the two runs. The rest must be.
    const withoutProvenance = (a: Analysis) => {
      const text = a.explanation?.text ?? '';
      const seen = a.explanation?.facts.find((f) => f.cue === Cue.SEEN_BEFORE);
      return seen ? text.slice(0, text.indexOf(seen.statement)).trim() : text;
    };
    const outcome = (a: Analysis) => ({
      status: AnalysisStatus[a.status],
      error: a.error?.code,
      verdict: a.verdict,
      faces: a.faces.map((f) => ({ box: f.box, score: f.forgeryScore, regions: f.regions.map((r) => [r.name, r.score]) })),
      mask: a.artifacts?.mask?.sha256 ?? '',
      heatmap: a.artifacts?.heatmap?.sha256 ?? '',
      explanation: withoutProvenance(a),
    });
    const counts = new Map<string, number>();
    for (const [i, a] of distributed.entries()) {
      assert.deepEqual(outcome(a), outcome(local[i]), inputs[i].name);
      counts.set(AnalysisStatus[a.status], (counts.get(AnalysisStatus[a.status]) ?? 0) + 1);
    }
    // The workload really is mixed: every kind of outcome occurs.
    for (const s of ['COMPLETED', 'NO_FACE', 'REJECTED']) assert.ok((counts.get(s) ?? 0) >= 5, `${s}: ${counts.get(s)}`);
  });

  test('the final event carries presigned URLs that S3 serves until they are tampered with', async () => {
    const r = [...results.values()].find((x) => x.status === AnalysisStatus.COMPLETED)!;
    const mask = r.analysis.artifacts!.mask!;
    assert.match(mask.url, /^http:\/\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/);
    assert.ok(mask.urlExpiresAt && Number(mask.urlExpiresAt.seconds) * 1000 > Date.now());
    const res = await fetch(mask.url);
    assert.equal(res.status, 200);
    assert.equal(sha256Hex(new Uint8Array(await res.arrayBuffer())), mask.sha256);
    const forged = mask.url.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
    assert.equal((await fetch(forged)).status, 403);
    // The stored results view keeps no URL; GetAnalysis signs fresh ones.
    const stored = await cluster.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${cluster.schema}.analyses WHERE position('X-Amz-Signature' in encode(analysis, 'escape')) > 0`);
    assert.equal(stored[0].n, 0);
    const got = (await unary<GetAnalysisResponse>(client, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: r.analysis.analysisId }))).analysis!;
    assert.equal((await fetch(got.artifacts!.mask!.url)).status, 200);
  });

  test('two face-detection processes share the partitions; stopping one moves them to the other without loss', { timeout: 300_000 }, async () => {
    await cluster.start('face-detection-2', 'face-detection');
    const admin = kafka.admin();
    await admin.connect();
    const group = withPrefix(cluster.run, 'face-detection');
    const assignments = async () => {
      const { groups } = await admin.describeGroups([group]);
      return groups[0].members.map((m) => Object.values(AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment ?? {}).flat().length);
    };
    try {
      let parts: number[] = [];
      for (let i = 0; i < 300 && !(parts.length === 2 && parts.every((n) => n > 0)); i++) {
        parts = await assignments();
        if (parts.length === 2 && parts.every((n) => n > 0)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(parts.length, 2, 'two members');
      assert.ok(parts.every((n) => n > 0), `each member has partitions: ${parts}`);
      assert.equal(parts.reduce((a, b) => a + b, 0), cluster.cfg.TAMPERTRACE_TOPIC_PARTITIONS);

      const crop = (i: number) => sharp(cameraPng()).extract({ left: i * 5, top: i * 3, width: 420, height: 420 }).png().toBuffer();
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) ids.push(await grpcSubmit(await crop(i), `pair-${i}`));
      await waitFor(() => ids.some((id) => results.has(id)), 60_000, 'the first result');
      await cluster.stop('face-detection');
      // The survivor takes over every partition (it learns of the rebalance at its next heartbeat) ...
      for (let i = 0; i < 150; i++) {
        parts = await assignments();
        if (parts.length === 1 && parts[0] === cluster.cfg.TAMPERTRACE_TOPIC_PARTITIONS) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.deepEqual(parts, [cluster.cfg.TAMPERTRACE_TOPIC_PARTITIONS], 'the survivor owns every partition');
      // ... and work keyed onto the stopped member's former partitions is done by it too.
      for (let i = 8; i < 16; i++) ids.push(await grpcSubmit(await crop(i), `pair-${i}`));
      await waitFor(() => ids.every((id) => results.has(id)), 200_000, 'every result after one member stopped');
      for (const id of ids) {
        assert.equal(results.get(id)!.status, AnalysisStatus.COMPLETED);
        assert.equal(results.get(id)!.eventIds.size, 1);
      }
    } finally {
      await admin.disconnect();
    }
  });

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
      if (rows.length >= ids.length * (PIPELINE.length + 1)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(rows.length, ids.length * (PIPELINE.length + 1));
    assert.ok(rows.every((r) => r.n === 1), 'no stage recorded twice');
  });

  test('tampertrace submit sends files to the gateway process and writes the same outputs as analyze', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tt-submit-'));
    await mkdir(path.join(dir, 'in'));
    await writeFile(path.join(dir, 'in', 'astronaut.png'), astronautPng());
    await writeFile(path.join(dir, 'in', 'text.jpg'), 'not an image');
    const out = path.join(dir, 'out');
    const server = cluster.grpcAddress;
    const code = await new Promise<number>((resolve) => {
      execFile(process.execPath, [BIN, 'submit', '--server', server, '--out', out, path.join(dir, 'in')], { env: { ...serviceEnv, TAMPERTRACE_API_KEY: apiKey } }, (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0));
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
