// fetchImageUrl against real loopback servers (http and a self-signed https made at test time).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InvalidInputError, RetriableError } from '@tampertrace/shared';
import { ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { fetchImageUrl, type UrlFetchOptions } from './url-fetch.ts';

const IMAGE = readFileSync(path.join(import.meta.dirname, '../../../testdata/faces/astronaut.png'));
const LOOPBACK: UrlFetchOptions = { allowHttp: true, allowPrivate: ['127.0.0.1/32'], maxBytes: 10 * 1024 * 1024, timeoutMs: 5000 };

/** A loopback server that counts the connections it accepted, to prove a refusal never connected. */
async function serve(handler: RequestListener, host = '127.0.0.1', server: Server = createHttpServer()) {
  let connections = 0;
  server.on('connection', () => connections++);
  server.on('secureConnection', () => connections++);
  server.on('request', handler);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  const scheme = server instanceof HttpsServer ? 'https' : 'http';
  servers.push(server);
  return { port, url: `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`, connections: () => connections };
}
const servers: Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

const image: RequestListener = (_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(IMAGE);

function rejectsWith(p: Promise<unknown>, cls: typeof InvalidInputError | typeof RetriableError, code: ErrorCode, msg?: RegExp) {
  return assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (msg) assert.match(err.message, msg);
    return true;
  });
}

test('returns the bytes of an allow-listed loopback server', async () => {
  const s = await serve(image);
  assert.deepEqual(Buffer.from(await fetchImageUrl(`${s.url}/a.png`, LOOPBACK)), IMAGE);
});

test('refuses 127.0.0.1 without the allow-list, without connecting', async () => {
  const s = await serve(image);
  await rejectsWith(fetchImageUrl(s.url, { ...LOOPBACK, allowPrivate: [] }), InvalidInputError, ErrorCode.URL_REFUSED, /not a public address/);
  assert.equal(s.connections(), 0);
});

test('refuses private, link-local, metadata, IPv6 loopback and disguised loopback addresses before connecting', async () => {
  // A short limit: an attempted connect to an unroutable address would end as TIMEOUT instead.
  const opts = { ...LOOPBACK, allowPrivate: [], timeoutMs: 2000 };
  for (const host of ['10.0.0.1', '169.254.169.254', '100.64.0.1', '[::1]', '[::ffff:127.0.0.1]', '[fe80::1]', '[fd00::1]', '0.0.0.0', '2130706433', 'localhost']) {
    await rejectsWith(fetchImageUrl(`http://${host}/x.png`, opts), InvalidInputError, ErrorCode.URL_REFUSED, /not a public address/);
  }
});

test('the allow-list is exact: 127.0.0.1/32 does not admit 127.0.0.2', async () => {
  const other = await serve(image, '127.0.0.2');
  await rejectsWith(fetchImageUrl(other.url, LOOPBACK), InvalidInputError, ErrorCode.URL_REFUSED);
  assert.equal(other.connections(), 0);
});

test('follows up to 3 redirects on allowed addresses', async () => {
  const s = await serve((req, res) => {
    const n = Number(req.url!.slice(1));
    if (n > 0) res.writeHead(302, { location: `/${n - 1}` }).end();
    else image(req, res);
  });
  assert.deepEqual(Buffer.from(await fetchImageUrl(`${s.url}/3`, LOOPBACK)), IMAGE);
  await rejectsWith(fetchImageUrl(`${s.url}/4`, LOOPBACK), InvalidInputError, ErrorCode.URL_FETCH_FAILED, /more than 3 redirects/);
});

test('refuses a redirect to the metadata address or to a loopback host that is not allow-listed, without connecting', async () => {
  const other = await serve(image, '127.0.0.2');
  const v6 = await serve(image, '::1');
  const targets = ['http://169.254.169.254/latest/meta-data/', other.url, v6.url];
  const s = await serve((req, res) => res.writeHead(301, { location: targets[Number(req.url!.slice(1))] }).end());
  for (let i = 0; i < targets.length; i++) {
    await rejectsWith(fetchImageUrl(`${s.url}/${i}`, { ...LOOPBACK, timeoutMs: 2000 }), InvalidInputError, ErrorCode.URL_REFUSED, /not a public address/);
  }
  assert.equal(other.connections(), 0);
  assert.equal(v6.connections(), 0);
});

test('refuses a redirect to a host name that resolves to a loopback address not allow-listed, without connecting', async () => {
  const target = await serve(image);
  const s = await serve((_req, res) => res.writeHead(302, { location: `http://localhost:${target.port}/a.png` }).end(), '127.0.0.2');
  await rejectsWith(fetchImageUrl(s.url, { ...LOOPBACK, allowPrivate: ['127.0.0.2/32'] }), InvalidInputError, ErrorCode.URL_REFUSED, /"localhost" is not a public address/);
  assert.equal(target.connections(), 0);
});

test('every resolved address is checked, the connection goes to the checked one (no second resolution), an unknown host is final', async (t) => {
  // A resolver that answers a rebinding attacker's way: a good address first, a private one afterwards.
  const original = dns.lookup;
  let calls = 0;
  const answers: Record<string, string[][]> = { 'rebind.test': [['127.0.0.1'], ['10.0.0.1']], 'mixed.test': [['8.8.8.8', '10.0.0.1']] };
  (dns as { lookup: unknown }).lookup = (host: string, options: object, cb: (e: Error | null, a: dns.LookupAddress[]) => void) => {
    if (host === 'gone.test') return cb(Object.assign(new Error('getaddrinfo ENOTFOUND gone.test'), { code: 'ENOTFOUND' }), []);
    if (!(host in answers)) return original(host, options as dns.LookupAllOptions, cb);
    const list = answers[host][Math.min(calls++, answers[host].length - 1)];
    cb(null, list.map((address) => ({ address, family: 4 })));
  };
  syncBuiltinESMExports();
  t.after(() => {
    dns.lookup = original;
    syncBuiltinESMExports();
  });
  const s = await serve(image);
  assert.deepEqual(Buffer.from(await fetchImageUrl(`http://rebind.test:${s.port}/a.png`, LOOPBACK)), IMAGE);
  assert.equal(calls, 1);
  calls = 0;
  await rejectsWith(fetchImageUrl(`http://mixed.test:${s.port}/a.png`, LOOPBACK), InvalidInputError, ErrorCode.URL_REFUSED, /not a public address/);
  await rejectsWith(fetchImageUrl('http://gone.test/a.png', LOOPBACK), InvalidInputError, ErrorCode.URL_FETCH_FAILED, /does not exist/);
});

test('refuses http:// unless allowHttp, and other schemes always, without connecting', async () => {
  const s = await serve(image);
  await rejectsWith(fetchImageUrl(s.url, { ...LOOPBACK, allowHttp: false }), InvalidInputError, ErrorCode.URL_REFUSED, /scheme "http:"/);
  await rejectsWith(fetchImageUrl(s.url.replace('http://', 'http://user:pw@'), LOOPBACK), InvalidInputError, ErrorCode.URL_REFUSED, /credentials/);
  for (const u of ['file:///etc/passwd', 'ftp://127.0.0.1/x', 'gopher://127.0.0.1/']) {
    await rejectsWith(fetchImageUrl(u, LOOPBACK), InvalidInputError, ErrorCode.URL_REFUSED);
  }
  await rejectsWith(fetchImageUrl('not a url', LOOPBACK), InvalidInputError, ErrorCode.INVALID_MESSAGE);
  const redirect = await serve((_req, res) => res.writeHead(302, { location: `${s.url}/a.png` }).end());
  // Served over http here, but the hop to http:// is checked like the first URL: refused with allowHttp false.
  await rejectsWith(fetchImageUrl(redirect.url, { ...LOOPBACK, allowHttp: false }), InvalidInputError, ErrorCode.URL_REFUSED);
  assert.equal(s.connections(), 0);
  assert.equal(redirect.connections(), 0);
});

test('refuses a body over the limit at once when Content-Length declares it', async () => {
  // Declares 100 MB, sends 1 byte and stalls: only the header can end this before the time limit.
  const s = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': String(100 * 1024 * 1024) });
    res.write('x');
  });
  const t0 = Date.now();
  await rejectsWith(fetchImageUrl(s.url, { ...LOOPBACK, maxBytes: 1024, timeoutMs: 3000 }), InvalidInputError, ErrorCode.TOO_LARGE, /104857600 bytes/);
  assert.ok(Date.now() - t0 < 1500);
});

test('refuses a chunked body as soon as it passes the limit', async () => {
  // Streams forever without a length: the byte count has to stop it.
  const s = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png' });
    const t = setInterval(() => res.write(Buffer.alloc(16 * 1024)), 5);
    res.on('close', () => clearInterval(t));
  });
  await rejectsWith(fetchImageUrl(s.url, { ...LOOPBACK, maxBytes: 100_000, timeoutMs: 3000 }), InvalidInputError, ErrorCode.TOO_LARGE, /more than 100000/);
});

test('a slow server hits the time limit as a retriable TIMEOUT', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(200);
    res.write(IMAGE.subarray(0, 100)); // then nothing more
  });
  const t0 = Date.now();
  await rejectsWith(fetchImageUrl(s.url, { ...LOOPBACK, timeoutMs: 300 }), RetriableError, ErrorCode.TIMEOUT, /300 ms/);
  assert.ok(Date.now() - t0 < 2000);
});

test("the caller's abort comes back as the caller's reason, not as a failure", async () => {
  const s = await serve(() => {}); // never answers
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(new Error('client went away')), 100);
  await assert.rejects(fetchImageUrl(s.url, { ...LOOPBACK, signal: ctl.signal }), /client went away/);
});

test('maps HTTP statuses and refused connections to invalid or retriable', async () => {
  const s = await serve((req, res) => res.writeHead(Number(req.url!.slice(1))).end('no'));
  await rejectsWith(fetchImageUrl(`${s.url}/404`, LOOPBACK), InvalidInputError, ErrorCode.URL_FETCH_FAILED, /HTTP 404/);
  await rejectsWith(fetchImageUrl(`${s.url}/302`, LOOPBACK), InvalidInputError, ErrorCode.URL_FETCH_FAILED, /HTTP 302/); // no Location
  await rejectsWith(fetchImageUrl(`${s.url}/503`, LOOPBACK), RetriableError, ErrorCode.DEPENDENCY_UNAVAILABLE, /HTTP 503/);
  const closed = await serve(image);
  servers.pop()!.close();
  await new Promise((r) => setTimeout(r, 50));
  await rejectsWith(fetchImageUrl(closed.url, LOOPBACK), RetriableError, ErrorCode.DEPENDENCY_UNAVAILABLE, /ECONNREFUSED/);
});

test('https with a self-signed certificate: fetched when trusted, checked against the host name, refused when not trusted', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tt-url-fetch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return t.skip('the openssl command is not installed');
  }
  const ca = readFileSync(cert);
  const s = await serve(image, '127.0.0.1', createHttpsServer({ key: readFileSync(key), cert: ca }) as unknown as Server);
  const https = { ...LOOPBACK, allowHttp: false, ca };
  assert.deepEqual(Buffer.from(await fetchImageUrl(`${s.url}/a.png`, https)), IMAGE);
  // Reached by name: the connection goes to the checked address, the certificate is verified for "localhost".
  assert.deepEqual(Buffer.from(await fetchImageUrl(`https://localhost:${s.port}/a.png`, { ...https, allowPrivate: ['127.0.0.1/32', '::1/128'] })), IMAGE);
  await rejectsWith(fetchImageUrl(`${s.url}/a.png`, { ...https, ca: undefined }), InvalidInputError, ErrorCode.URL_FETCH_FAILED, /certificate/);
});
