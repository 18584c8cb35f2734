// The error boundary every gRPC server gets from createGrpcServer: a handler that throws
// synchronously fails its call with the mapped status (the server stays up), and bytes that do
// not decode are the caller's INVALID_ARGUMENT before any handler runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { loadConfig } from './config.ts';
import { InvalidInputError } from './errors.ts';
import { ErrorCode } from './gen/tampertrace/v1/common_pb.ts';
import { FaceDetectionService, DetectRequestSchema, DetectResponseSchema } from './gen/tampertrace/v1/stages_pb.ts';
import { ERROR_CODE_TRAILER, createGrpcServer, grpc, serviceClient, startGrpcServer, stopGrpcServer, unary } from './grpc.ts';

test('a handler that throws synchronously fails its call with the mapped status, and the server goes on', async () => {
  const cfg = loadConfig({ TAMPERTRACE_GRPC_PORT: '0' });
  const log = pino({ level: 'silent' });
  let calls = 0;
  const detect = (call: grpc.ServerUnaryCall<{ content: Uint8Array }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    calls++;
    if (call.request.content.length === 1) throw new TypeError('a bug at /srv/app.ts:12');
    if (call.request.content.length === 2) throw new InvalidInputError(ErrorCode.CORRUPT_IMAGE, 'the image is corrupt');
    cb(null, create(DetectResponseSchema, {}));
  };
  const api = createGrpcServer(cfg, [{ service: FaceDetectionService, impl: { detect } }], log);
  const port = await startGrpcServer(api, cfg, log);
  const client = serviceClient(FaceDetectionService, `127.0.0.1:${port}`);
  const outcome = (content: Uint8Array) =>
    unary(client, 'detect', create(DetectRequestSchema, { content }), { deadline: Date.now() + 5000 }).then(
      () => ['OK'],
      (err: grpc.ServiceError) => [grpc.status[err.code], err.details, err.metadata.get(ERROR_CODE_TRAILER)[0]],
    );
  try {
    assert.deepEqual(await outcome(new Uint8Array(1)), ['INTERNAL', 'internal error', 'INTERNAL']);
    assert.deepEqual(await outcome(new Uint8Array(2)), ['INVALID_ARGUMENT', 'the image is corrupt', 'CORRUPT_IMAGE']);
    assert.deepEqual(await outcome(new Uint8Array(3)), ['OK']);
    // Bytes that are no DetectRequest: refused before the handler.
    const raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const undecodable = await new Promise<grpc.ServiceError | null>((resolve) =>
      raw.makeUnaryRequest('/tampertrace.v1.FaceDetectionService/Detect', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0x7f, 0x01]), new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err) => resolve(err)),
    );
    raw.close();
    assert.equal(undecodable?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(undecodable?.metadata.get(ERROR_CODE_TRAILER)[0], 'INVALID_MESSAGE');
    assert.equal(calls, 3);
  } finally {
    client.close();
    await stopGrpcServer(api);
  }
});
