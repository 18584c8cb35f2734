// deliverWebhook against real loopback receivers, and verifyWebhookSignature.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidInputError, RetriableError } from '@tampertrace/shared';
import { ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { WebhookHeader, deliverWebhook, signatureHeader, verifyWebhookSignature, type WebhookOptions } from './webhook.ts';

const SECRET = 'whsec_test_0123456789';
const BODY = new TextEncoder().encode(JSON.stringify({ analysisId: 'a-1', status: 'COMPLETED', verdict: 'UNCERTAIN' }));
const OPTS: WebhookOptions = { secret: SECRET, timeoutMs: 2000, maxAttempts: 5, backoffMs: 10, allowHttp: true, allowPrivate: ['127.0.0.1/32'] };

interface Received {
  method: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A receiver answering each request with the next status of `statuses` (the last one repeats). */
async function receiver(statuses: number[]) {
  const got: Received[] = [];
  let connections = 0;
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    got.push({ method: req.method!, headers: req.headers, body: Buffer.concat(chunks) });
    res.writeHead(statuses[Math.min(got.length - 1, statuses.length - 1)], { location: '/elsewhere' }).end('{}');
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got, connections: () => connections };
}
const servers: Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

test('a delivery arrives as a signed JSON POST that the receiver verifies', async () => {
  const r = await receiver([200]);
  const out = await deliverWebhook(r.url, BODY, OPTS);
  assert.deepEqual({ delivered: out.delivered, attempts: out.attempts, status: out.status }, { delivered: true, attempts: 1, status: 200 });
  const [req] = r.got;
  assert.equal(req.method, 'POST');
  assert.equal(req.headers['content-type'], 'application/json');
  assert.equal(req.headers[WebhookHeader.deliveryId], out.deliveryId);
  assert.deepEqual(req.body, Buffer.from(BODY));
  const sig = String(req.headers[WebhookHeader.signature]);
  assert.match(sig, /^t=\d+,v1=[0-9a-f]{64}$/);
  assert.equal(verifyWebhookSignature(sig, req.body, SECRET, 300), true);
  assert.equal(verifyWebhookSignature(sig, req.body, 'another secret', 300), false);
});

test('two 503s then 200 take 3 attempts with one delivery id, each freshly signed', async () => {
  const r = await receiver([503, 503, 200]);
  const out = await deliverWebhook(r.url, BODY, OPTS);
  assert.deepEqual({ delivered: out.delivered, attempts: out.attempts, status: out.status }, { delivered: true, attempts: 3, status: 200 });
  assert.equal(r.got.length, 3);
  assert.deepEqual(new Set(r.got.map((g) => g.headers[WebhookHeader.deliveryId])), new Set([out.deliveryId]));
  for (const g of r.got) assert.equal(verifyWebhookSignature(String(g.headers[WebhookHeader.signature]), g.body, SECRET, 300), true);
});

test('429 is retried, and retries stop at maxAttempts', async () => {
  const r = await receiver([429]);
  const out = await deliverWebhook(r.url, BODY, { ...OPTS, maxAttempts: 3 });
  assert.deepEqual({ delivered: out.delivered, attempts: out.attempts, status: out.status }, { delivered: false, attempts: 3, status: 429 });
  assert.equal(r.got.length, 3);
});

test('400 is not retried, and a redirect is not followed', async () => {
  for (const status of [400, 302]) {
    const r = await receiver([status, 200]);
    const out = await deliverWebhook(r.url, BODY, OPTS);
    assert.deepEqual({ delivered: out.delivered, attempts: out.attempts, status: out.status }, { delivered: false, attempts: 1, status });
    assert.equal(r.got.length, 1);
  }
});

test('an unreachable receiver is retried, then reported with the retriable error', async () => {
  const r = await receiver([200]);
  servers.pop()!.close();
  const out = await deliverWebhook(r.url, BODY, { ...OPTS, maxAttempts: 2 });
  assert.equal(out.delivered, false);
  assert.equal(out.attempts, 2);
  assert.equal(out.status, undefined);
  assert.ok(out.error instanceof RetriableError);
  assert.equal(out.error.code, ErrorCode.DEPENDENCY_UNAVAILABLE);
});

test('a private address is refused without the allow-list, without connecting, and not retried', async () => {
  const r = await receiver([200]);
  for (const url of [r.url, 'http://10.0.0.1/hook', 'http://169.254.169.254/hook', 'http://localhost/hook']) {
    await assert.rejects(deliverWebhook(url, BODY, { ...OPTS, allowPrivate: [] }), (err: unknown) => {
      assert.ok(err instanceof InvalidInputError, String(err));
      assert.equal(err.code, ErrorCode.URL_REFUSED);
      return true;
    });
  }
  await assert.rejects(deliverWebhook(r.url, BODY, { ...OPTS, allowHttp: false }), InvalidInputError);
  assert.equal(r.connections(), 0);
});

test("the caller's abort during backoff ends the delivery with the caller's reason", async () => {
  const r = await receiver([503]);
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(new Error('shutting down')), 100);
  await assert.rejects(deliverWebhook(r.url, BODY, { ...OPTS, backoffMs: 60_000, signal: ctl.signal }), /shutting down/);
  assert.equal(r.got.length, 1);
});

test('verification fails for a tampered body, a stale or future timestamp, and malformed headers', () => {
  const now = Date.UTC(2026, 0, 1);
  const sig = signatureHeader(BODY, SECRET, now);
  assert.equal(verifyWebhookSignature(sig, BODY, SECRET, 300, now + 299_000), true);
  const tampered = Buffer.from(BODY);
  tampered[tampered.length - 3] ^= 1;
  assert.equal(verifyWebhookSignature(sig, tampered, SECRET, 300, now), false);
  assert.equal(verifyWebhookSignature(sig, BODY, SECRET, 300, now + 301_000), false);
  assert.equal(verifyWebhookSignature(sig, BODY, SECRET, 300, now - 301_000), false);
  // The timestamp is signed: moving it forward to pass the tolerance breaks the signature.
  const t = Math.floor(now / 1000);
  assert.equal(verifyWebhookSignature(sig.replace(`t=${t}`, `t=${t + 1000}`), BODY, SECRET, 300, now + 1000_000), false);
  for (const bad of ['', 'v1=abc', `t=${t}`, `t=${t},v1=zz`, `t=x,${sig.split(',')[1]}`]) assert.equal(verifyWebhookSignature(bad, BODY, SECRET, 300, now), false);
  // Secret rotation: a header signed with the old and the new secret verifies with either.
  const both = `${sig},v1=${signatureHeader(BODY, 'new secret', now).split('v1=')[1]}`;
  assert.equal(verifyWebhookSignature(both, BODY, 'new secret', 300, now), true);
  assert.equal(verifyWebhookSignature(both, BODY, SECRET, 300, now), true);
});
