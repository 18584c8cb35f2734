// The public API against running services (each its own process, on the real Kafka, S3 server
// and PostgreSQL): every error status from a real request, tenants kept apart on every read
// path, URL submissions under the address guard, webhooks, deadlines, the submissions topic,
// SubmitBatch and WatchAnalysis.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import sharp from 'sharp';
import { Header, Topic, deadLetterTopic, grpc, serviceClient, unary, type BusMessage } from '@tampertrace/shared';
import { astronautPng, cameraPng, grpcError, pngDeclaring } from '@tampertrace/shared/testing';
import { AnalysisStatus, ErrorCode, ObjectRefSchema, Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import {
  ArtifactKind,
  GetAnalysisRequestSchema,
  GetArtifactRequestSchema,
  IngestService,
  SubmitBatchRequestSchema,
  SubmitRequestSchema,
  WatchAnalysisRequestSchema,
  type GetAnalysisResponse,
  type SubmitBatchResponse,
  type SubmitRequest,
  type SubmitResponse,
  type WatchAnalysisResponse,
} from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { AuditService, GetTrailRequestSchema, VerifyChainRequestSchema, type GetTrailResponse, type VerifyChainResponse } from '@tampertrace/shared/gen/tampertrace/v1/audit_pb';
import { verifyWebhookSignature } from '@tampertrace/ingest/webhook';
import { submissionSignature } from '@tampertrace/ingest/submissions-topic';
import { PIPELINE, SERVICES } from '@tampertrace/shared';
import { Cluster, SKIP_REASON, serversReady, waitFor } from './cluster.testing.ts';

if (!serversReady) {
  test('public API against running services', { skip: SKIP_REASON }, () => {});
} else {
  const cluster = new Cluster(23000 + (process.pid % 900) * 2);
  const tenants: Record<'a' | 'b' | 'quota' | 'hook', { apiKey: string; keyId: string; signingSecret: string; client: grpc.Client }> = {} as never;
  const hooks: Array<{ headers: http.IncomingHttpHeaders; body: Buffer }> = [];
  let web: http.Server;
  let webBase: string;
  let photo: Buffer;

  before(async () => {
    // Image host and webhook receiver on 127.0.0.2, the one address the cluster allows.
    photo = await sharp(astronautPng()).jpeg().toBuffer();
    web = http.createServer((req, res) => {
      if (req.url === '/photo.jpg') return res.end(photo);
      if (req.url === '/slow.jpg') return void setTimeout(() => res.end(photo), 1500);
      if (req.url === '/to-metadata') return res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      if (req.url === '/to-loopback') return res.writeHead(302, { location: `http://127.0.0.1:${(web.address() as { port: number }).port}/photo.jpg` }).end();
      if (req.url === '/hook') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          hooks.push({ headers: req.headers, body: Buffer.concat(chunks) });
          res.end('ok');
        });
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.2', resolve));
    webBase = `http://127.0.0.2:${(web.address() as { port: number }).port}`;
    await cluster.up([...SERVICES]);
    const make = async (name: keyof typeof tenants, tenant: string, ...flags: string[]) => {
      const t = await cluster.createTenantWithSecret(tenant, ...flags);
      tenants[name] = { ...t, client: serviceClient(IngestService, cluster.grpcAddress, { apiKey: t.apiKey }) };
    };
    await make('a', 'tenant-a');
    await make('b', 'tenant-b');
    await make('quota', 'tenant-quota', '--rate', '0.2', '--burst', '2');
    await make('hook', 'tenant-hook', '--webhook', `${webBase}/hook`);
  });

  after(async () => {
    for (const t of Object.values(tenants)) t.client.close();
    await cluster.down();
    await new Promise((r) => web?.close(r));
  });

  const submitReq = (init: MessageInitShape<typeof SubmitRequestSchema>) => create(SubmitRequestSchema, { reanalyze: true, ...init });
  const objectRef = (bucket: string, key: string) => create(ObjectRefSchema, { bucket, key });
  const submit = (client: grpc.Client, req: SubmitRequest, options: grpc.CallOptions = {}) => unary<SubmitResponse>(client, 'submit', req, options);
  const content = (bytes: Uint8Array) => ({ case: 'content' as const, value: bytes });
  const watch = async (client: grpc.Client, analysisId: string): Promise<WatchAnalysisResponse[]> => {
    const steps: WatchAnalysisResponse[] = [];
    const stream = (client as unknown as { watchAnalysis(r: unknown): AsyncIterable<WatchAnalysisResponse> }).watchAnalysis(create(WatchAnalysisRequestSchema, { analysisId }));
    for await (const s of stream) steps.push(s);
    return steps;
  };
  const failure = grpcError;
  const reason = (e: grpc.ServiceError) => e.metadata?.get('tt-error-code')[0];

  test('every error status comes from a real request, with its machine-readable reason', async () => {
    const a = tenants.a.client;
    const noKey = serviceClient(IngestService, cluster.grpcAddress);
    const badKey = serviceClient(IngestService, cluster.grpcAddress, { apiKey: 'tt_0123456789abcdef_' + 'A'.repeat(43) });
    const own = await submit(a, submitReq({ source: content(cameraPng()) }));
    const ownFinal = (await watch(a, own.analysisId)).at(-1)!.analysis!;
    const other = await submit(tenants.b.client, submitReq({ source: content(astronautPng()) }));
    const cases: Array<[string, () => Promise<unknown>, grpc.status, string | undefined]> = [
      ['no API key', () => submit(noKey, submitReq({ source: content(photo) })), grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED'],
      ['unknown API key', () => submit(badKey, submitReq({ source: content(photo) })), grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED'],
      ['no image', () => submit(a, submitReq({})), grpc.status.INVALID_ARGUMENT, 'EMPTY_INPUT'],
      ['zero bytes', () => submit(a, submitReq({ source: content(new Uint8Array(0)) })), grpc.status.INVALID_ARGUMENT, 'EMPTY_INPUT'],
      ['not an image', () => submit(a, submitReq({ source: content(Buffer.from('plain text')) })), grpc.status.INVALID_ARGUMENT, 'UNSUPPORTED_FORMAT'],
      ['truncated', () => submit(a, submitReq({ source: content(photo.subarray(0, photo.length / 2)) })), grpc.status.INVALID_ARGUMENT, 'TRUNCATED_IMAGE'],
      ['decompression bomb (header declares 60000x60000)', () => submit(a, submitReq({ source: content(pngDeclaring(60000, 60000)) })), grpc.status.RESOURCE_EXHAUSTED, 'TOO_MANY_PIXELS'],
      ['URL to loopback', () => submit(a, submitReq({ source: { case: 'url', value: 'http://127.0.0.1:1/a.jpg' } })), grpc.status.INVALID_ARGUMENT, 'URL_REFUSED'],
      ['URL to 10.x', () => submit(a, submitReq({ source: { case: 'url', value: 'http://10.1.2.3/a.jpg' } })), grpc.status.INVALID_ARGUMENT, 'URL_REFUSED'],
      ['URL to the metadata address', () => submit(a, submitReq({ source: { case: 'url', value: 'http://169.254.169.254/latest/meta-data/' } })), grpc.status.INVALID_ARGUMENT, 'URL_REFUSED'],
      ['URL redirecting to the metadata address', () => submit(a, submitReq({ source: { case: 'url', value: `${webBase}/to-metadata` } })), grpc.status.INVALID_ARGUMENT, 'URL_REFUSED'],
      ['URL redirecting to loopback', () => submit(a, submitReq({ source: { case: 'url', value: `${webBase}/to-loopback` } })), grpc.status.INVALID_ARGUMENT, 'URL_REFUSED'],
      ['URL answering 404', () => submit(a, submitReq({ source: { case: 'url', value: `${webBase}/missing.jpg` } })), grpc.status.INVALID_ARGUMENT, 'URL_FETCH_FAILED'],
      ['message over the size limit', () => submit(a, submitReq({ source: content(new Uint8Array(cluster.cfg.TAMPERTRACE_MAX_INPUT_BYTES + 2 * 1024 * 1024)) })), grpc.status.RESOURCE_EXHAUSTED, undefined],
      ['unknown analysis', () => unary(a, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: '01a21cbd-0000-7000-8000-000000000000' })), grpc.status.NOT_FOUND, 'NOT_FOUND'],
      ["another tenant's object", () => submit(a, submitReq({ source: { case: 'object', value: { bucket: 'originals', key: `tenant-b/${other.contentSha256}/original` } } })), grpc.status.NOT_FOUND, 'NOT_FOUND'],
      ['own mask as input', () => submit(a, submitReq({ source: { case: 'object', value: objectRef('artifacts', ownFinal.artifacts!.mask!.key) } })), grpc.status.PERMISSION_DENIED, 'PERMISSION_DENIED'],
      ['deadline shorter than the download', () => submit(a, submitReq({ source: { case: 'url', value: `${webBase}/slow.jpg` } }), { deadline: Date.now() + 50 }), grpc.status.DEADLINE_EXCEEDED, undefined],
    ];
    for (const [name, call, status, why] of cases) {
      const e = await failure(call().then(() => assert.fail(`${name}: expected the call to fail`)));
      assert.equal(grpc.status[e.code], grpc.status[status], name);
      if (why) assert.equal(reason(e), why, name);
    }
    // Quota: a burst of 2, then refused with a retry hint.
    const q = tenants.quota.client;
    await submit(q, submitReq({ source: content(cameraPng()) }));
    await submit(q, submitReq({ source: content(astronautPng()) }));
    const over = await failure(submit(q, submitReq({ source: content(photo) })));
    assert.equal(over.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(reason(over), 'QUOTA_EXCEEDED');
    assert.ok(Number(over.metadata.get('retry-after-ms')[0]) > 0);
    noKey.close();
    badKey.close();
  });

  test('a Submit whose deadline passed leaves no analysis behind', async () => {
    const before = (await cluster.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${cluster.schema}.analyses WHERE tenant_id = 'tenant-a'`))[0].n;
    const e = await failure(submit(tenants.a.client, submitReq({ source: { case: 'url', value: `${webBase}/slow.jpg` }, sourceName: 'late' }), { deadline: Date.now() + 50 }));
    assert.equal(e.code, grpc.status.DEADLINE_EXCEEDED);
    // Past the slow server's answer: had the server gone on, the analysis would exist by now.
    await new Promise((r) => setTimeout(r, 2500));
    const after = (await cluster.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${cluster.schema}.analyses WHERE tenant_id = 'tenant-a'`))[0].n;
    assert.equal(after, before);
  });

  test("no read path shows one tenant's analysis to another: the answer is NOT_FOUND, never a URL", async () => {
    const r = await submit(tenants.a.client, submitReq({ source: content(await sharp(cameraPng()).flop().resize(480).png().toBuffer()) }));
    const mine = (await watch(tenants.a.client, r.analysisId)).at(-1)!.analysis!;
    assert.equal(mine.status, AnalysisStatus.COMPLETED);
    assert.match(mine.artifacts!.mask!.url, /X-Amz-Signature=/);
    const b = tenants.b.client;
    const reads: Array<[string, () => Promise<unknown>]> = [
      ['GetAnalysis', () => unary<GetAnalysisResponse>(b, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: r.analysisId }))],
      ['WatchAnalysis', () => watch(b, r.analysisId)],
      ...[ArtifactKind.MASK, ArtifactKind.HEATMAP, ArtifactKind.OVERLAY, ArtifactKind.ORIGINAL].map(
        (kind) => [`GetArtifact ${ArtifactKind[kind]}`, () => unary(b, 'getArtifact', create(GetArtifactRequestSchema, { analysisId: r.analysisId, kind }))] as [string, () => Promise<unknown>],
      ),
      ['Submit of its original by reference', () => submit(b, submitReq({ source: { case: 'object', value: objectRef('originals', mine.artifacts!.original!.key) } }))],
    ];
    for (const [name, call] of reads) assert.equal(grpc.status[(await failure(call())).code], 'NOT_FOUND', name);
    // The HTTP side, with B's key: the same answers.
    const base = `http://127.0.0.1:${cluster.env.TAMPERTRACE_HTTP_PORT}`;
    for (const p of ['', '/events', '/mask', '/overlay', '/original']) {
      const res = await fetch(`${base}/v1/analyses/${r.analysisId}${p}`, { headers: { authorization: `Bearer ${tenants.b.apiKey}` } });
      assert.equal(res.status, 404, `HTTP ${p || 'get'}`);
    }
    // The same bytes submitted by B are B's own analysis, not a pointer to A's.
    const own = await submit(b, create(SubmitRequestSchema, { source: content(await sharp(cameraPng()).flop().resize(480).png().toBuffer()) }));
    assert.equal(own.deduplicated, false);
    assert.notEqual(own.analysisId, r.analysisId);
  });

  test('a URL submission from an allowed host completes; the tenant webhook receives the signed result', async () => {
    const r = await submit(tenants.hook.client, submitReq({ source: { case: 'url', value: `${webBase}/photo.jpg` } }));
    const final = (await watch(tenants.hook.client, r.analysisId)).at(-1)!.analysis!;
    assert.equal(final.status, AnalysisStatus.COMPLETED);
    assert.equal(final.sourceName, `${webBase}/photo.jpg`);
    await waitFor(() => hooks.some((h) => h.body.includes(r.analysisId)), 30_000, 'the webhook');
    const hook = hooks.find((h) => h.body.includes(r.analysisId))!;
    assert.ok(verifyWebhookSignature(String(hook.headers['tt-signature']), hook.body, tenants.hook.signingSecret, 300));
    assert.ok(!verifyWebhookSignature(String(hook.headers['tt-signature']), hook.body, tenants.a.signingSecret, 300), 'another secret does not verify');
    const body = JSON.parse(hook.body.toString('utf8'));
    assert.equal(body.analysisId, r.analysisId);
    assert.equal(body.status, 'ANALYSIS_STATUS_COMPLETED');
  });

  test('SubmitBatch answers every item in order; WatchAnalysis reports stages in order and ends final', async () => {
    const call = (tenants.a.client as unknown as { submitBatch(cb: (e: grpc.ServiceError | null, r: SubmitBatchResponse) => void): grpc.ClientWritableStream<unknown> });
    const done = new Promise<SubmitBatchResponse>((resolve, reject) => {
      const stream = call.submitBatch((e, r) => (e ? reject(e) : resolve(r)));
      stream.write(create(SubmitBatchRequestSchema, { item: submitReq({ source: content(cameraPng()), sourceName: 'ok' }) }));
      stream.write(create(SubmitBatchRequestSchema, { item: submitReq({ source: content(Buffer.from('nope')), sourceName: 'text' }) }));
      stream.write(create(SubmitBatchRequestSchema, { item: submitReq({ source: { case: 'url', value: 'http://10.0.0.1/x.jpg' } }) }));
      stream.write(create(SubmitBatchRequestSchema, {}));
      stream.end();
    });
    const res = await done;
    assert.deepEqual(res.results.map((r) => r.index), [0, 1, 2, 3]);
    assert.ok(res.results[0].accepted?.analysisId);
    assert.deepEqual(res.results.slice(1).map((r) => ErrorCode[r.error!.code]), ['UNSUPPORTED_FORMAT', 'URL_REFUSED', 'INVALID_MESSAGE']);
    const steps = await watch(tenants.a.client, res.results[0].accepted!.analysisId);
    // Every stage, in the pipeline's order, whatever the watcher's looks missed (the stage topics
    // are consumed independently of the final one in distributed mode).
    assert.deepEqual(steps.map((s) => Stage[s.stage]), ['INGEST', ...PIPELINE.map((p) => Stage[p.stage])]);
    assert.equal(steps.at(-1)!.analysis!.status, AnalysisStatus.COMPLETED);
    assert.ok(steps.slice(0, -1).every((s) => s.analysis!.status === AnalysisStatus.PENDING));
  });

  test('the submissions topic: signed requests are analysed once; unsigned and garbage ones are dead-lettered with a reason', async () => {
    const dlq: BusMessage[] = [];
    await cluster.bus.subscribe({ group: `${cluster.run}-dlq-sub`, topics: [deadLetterTopic('ingest-submissions')], handler: async (m) => void dlq.push(m) });
    const bytes = await sharp(cameraPng()).rotate(90).png().toBuffer();
    const value = toBinary(SubmitRequestSchema, create(SubmitRequestSchema, { source: content(bytes), sourceName: 'from-stream' }));
    const signed = { [Header.tenant]: 'tenant-b', [Header.submissionSignature]: submissionSignature('tenant-b', value, tenants.b.signingSecret) };
    const seen = () => [...cluster.results.values()].filter((r) => r.analysis.sourceName === 'from-stream' && r.analysis.tenantId === 'tenant-b');
    // Twice: a replay of the same message must not analyse the bytes again.
    await cluster.bus.publish({ topic: Topic.submissions, key: 'post-1', value, headers: signed });
    await cluster.bus.publish({ topic: Topic.submissions, key: 'post-1', value, headers: signed });
    await cluster.bus.publish({ topic: Topic.submissions, key: 'post-2', value, headers: { [Header.tenant]: 'tenant-b', [Header.submissionSignature]: 'ab'.repeat(32) } });
    await cluster.bus.publish({ topic: Topic.submissions, key: 'post-3', value, headers: { [Header.tenant]: 'tenant-a' } });
    const junk = Buffer.from([0xff, 0xff, 0xff, 0x01]);
    await cluster.bus.publish({ topic: Topic.submissions, key: 'post-4', value: junk, headers: { [Header.tenant]: 'tenant-b', [Header.submissionSignature]: submissionSignature('tenant-b', junk, tenants.b.signingSecret) } });
    await waitFor(() => dlq.length >= 3 && seen().length >= 1, 60_000, 'three dead letters and the result');
    assert.deepEqual(dlq.map((m) => [m.key, m.headers[Header.dlqCode]]).sort(), [['post-2', 'UNAUTHENTICATED'], ['post-3', 'UNAUTHENTICATED'], ['post-4', 'INVALID_MESSAGE']]);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(seen().length, 1, 'one analysis for the two deliveries');
    assert.equal(seen()[0].status, AnalysisStatus.COMPLETED);
  });

  test('the audit trail written by the audit process is read through AuditService, and only by its tenant', async () => {
    const r = await submit(tenants.a.client, submitReq({ source: content(await sharp(astronautPng()).resize(420).png().toBuffer()) }));
    await watch(tenants.a.client, r.analysisId);
    const auditA = serviceClient(AuditService, cluster.grpcAddress, { apiKey: tenants.a.apiKey });
    const auditB = serviceClient(AuditService, cluster.grpcAddress, { apiKey: tenants.b.apiKey });
    const trailOf = (client: grpc.Client) =>
      unary<GetTrailResponse>(client, 'getTrail', create(GetTrailRequestSchema, { key: { case: 'analysisId', value: r.analysisId } }));
    let records: GetTrailResponse['records'] = [];
    for (let i = 0; i < 150 && records.length < 5; i++) {
      records = (await trailOf(auditA)).records;
      if (records.length < 5) await new Promise((res) => setTimeout(res, 200));
    }
    assert.deepEqual(records.map((x) => Stage[x.stage]), ['INGEST', 'PROVENANCE', 'FACE_DETECTION', 'FORGERY_LOCALIZATION', 'EXPLANATION']);
    assert.ok(records.every((x) => x.tenantId === 'tenant-a'));
    // Who submitted it: the key the call was made with.
    assert.ok(records.every((x) => x.submittedBy === `key:${tenants.a.keyId}`), records.map((x) => x.submittedBy).join());
    assert.equal((await trailOf(auditB)).records.length, 0, "B sees nothing of A's analysis");
    const v = await unary<VerifyChainResponse>(auditA, 'verifyChain', create(VerifyChainRequestSchema, {}));
    assert.equal(v.ok, true, v.reason);
    auditA.close();
    auditB.close();
  });

  test('a revoked key stops working on every call, and the CLI says why', async () => {
    const extra = await cluster.cli(['key', 'add', 'tenant-a']);
    const key = /api key \(shown once\): (\S+)/.exec(extra.stdout)![1];
    const keyId = /key id: (\S+)/.exec(extra.stdout)![1];
    const client = serviceClient(IngestService, cluster.grpcAddress, { apiKey: key });
    const r = await submit(client, submitReq({ source: content(cameraPng()) }));
    const got = await cluster.cli(['get', '--server', cluster.grpcAddress, r.analysisId], { TAMPERTRACE_API_KEY: key });
    assert.equal(got.code, 0, got.stderr);
    assert.equal((JSON.parse(got.stdout) as Analysis).analysisId, r.analysisId);
    assert.equal((await cluster.cli(['key', 'revoke', keyId])).code, 0);
    // Replicas cache a key's verdict for up to 5 s.
    await new Promise((res) => setTimeout(res, 5500));
    assert.equal((await failure(unary(client, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: r.analysisId })))).code, grpc.status.UNAUTHENTICATED);
    const denied = await cluster.cli(['get', '--server', cluster.grpcAddress, r.analysisId], { TAMPERTRACE_API_KEY: key });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /UNAUTHENTICATED/);
    const foreign = await cluster.cli(['get', '--server', cluster.grpcAddress, r.analysisId], { TAMPERTRACE_API_KEY: tenants.b.apiKey });
    assert.notEqual(foreign.code, 0);
    assert.match(foreign.stderr, /NOT_FOUND/);
    client.close();
  });
}
