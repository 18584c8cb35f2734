// mTLS between services: a gRPC server configured with a certificate and a client CA answers
// only clients that present a certificate from that CA. Certificates are made with openssl here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { loadConfig } from './config.ts';
import { FaceDetectionService, DetectRequestSchema, DetectResponseSchema } from './gen/tampertrace/v1/stages_pb.ts';
import { createGrpcServer, grpc, serviceClient, startGrpcServer, stopGrpcServer, unary } from './grpc.ts';

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA; and a stranger's CA with its own client certificate. */
function makePki(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) openssl(dir, 'req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '1', '-subj', `/CN=${ca}`);
  const leaf = (name: string, ca: string, ext: string) => {
    openssl(dir, 'req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(path.join(dir, `${name}.ext`), ext + '\n');
    openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  };
  leaf('server', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth');
  leaf('client', 'ca', 'extendedKeyUsage=clientAuth');
  leaf('stranger', 'other-ca', 'extendedKeyUsage=clientAuth');
}

test('with a client CA configured, only clients holding a certificate from it are served', async (t) => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return t.skip('the openssl command is not installed');
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tt-mtls-'));
  makePki(dir);
  const file = (n: string) => path.join(dir, n);
  const cfg = loadConfig({ TAMPERTRACE_GRPC_PORT: '0', TAMPERTRACE_GRPC_TLS_CERT: file('server.pem'), TAMPERTRACE_GRPC_TLS_KEY: file('server.key'), TAMPERTRACE_GRPC_TLS_CLIENT_CA: file('ca.pem') });
  const api = createGrpcServer(cfg, [{ service: FaceDetectionService, impl: { detect: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, create(DetectResponseSchema, {})) } }]);
  const port = await startGrpcServer(api, cfg, pino({ level: 'silent' }));
  const address = `127.0.0.1:${port}`;
  const call = async (client: grpc.Client) => {
    try {
      await unary(client, 'detect', create(DetectRequestSchema, {}), { deadline: Date.now() + 3000 });
      return 'OK';
    } catch (err) {
      return grpc.status[(err as grpc.ServiceError).code];
    } finally {
      client.close();
    }
  };
  try {
    const ca = readFileSync(file('ca.pem'));
    assert.equal(await call(serviceClient(FaceDetectionService, address, { tls: { ca, cert: readFileSync(file('client.pem')), key: readFileSync(file('client.key')) } })), 'OK');
    assert.equal(await call(serviceClient(FaceDetectionService, address, { tls: { ca } })), 'UNAVAILABLE', 'no client certificate');
    assert.equal(await call(serviceClient(FaceDetectionService, address, { tls: { ca, cert: readFileSync(file('stranger.pem')), key: readFileSync(file('stranger.key')) } })), 'UNAVAILABLE', 'a certificate from another CA');
    assert.equal(await call(serviceClient(FaceDetectionService, address)), 'UNAVAILABLE', 'plaintext');
  } finally {
    await stopGrpcServer(api, 1000);
  }
});

test('TLS settings that cannot work stop the start with a message', () => {
  assert.throws(() => loadConfig({ TAMPERTRACE_GRPC_TLS_CERT: '/x.pem' }), /go together/);
  assert.throws(() => loadConfig({ TAMPERTRACE_GRPC_TLS_CLIENT_CA: '/ca.pem' }), /mTLS is TLS first/);
});
