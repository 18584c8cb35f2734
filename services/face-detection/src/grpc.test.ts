// FaceDetectionService over real gRPC (grpc-js client and server on loopback) with the real
// BlazeFace models; also the shared server plumbing every service gets: health and reflection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { pino } from 'pino';
import { createGrpcServer, decodeRgb, grpc, limitsOf, loadConfig, serviceClient, startGrpcServer, stopGrpcServer, unary, type GrpcApi } from '@tampertrace/shared';
import { checkHealth } from '@tampertrace/shared/health';
import { astronautPng, cameraPng, pngDeclaring, truncatedJpeg, grpcFailure } from '@tampertrace/shared/testing';
import { DetectRequestSchema, FaceDetectionService, type DetectResponse } from '@tampertrace/shared/gen/tampertrace/v1/stages_pb';
import type { DetectorWithGeometry } from './landmarks.ts';
import { faceDetectionGrpc } from './grpc.ts';
import { loadDetector } from './load.ts';

// Reference face boxes (testdata/faces/LICENSE.md), as in blazeface.test.ts.
const ASTRONAUT_FACE = { x: 178, y: 81, width: 94, height: 94 };
const CAMERA_FACE = { x: 171, y: 116, width: 90, height: 90 };

const cfg = loadConfig({ ...process.env, TAMPERTRACE_GRPC_PORT: '0', TAMPERTRACE_MAX_INPUT_BYTES: '2000000' });
let detector: DetectorWithGeometry;
let api: GrpcApi;
let address: string;
let client: grpc.Client;

before(async () => {
  const log = pino({ level: 'silent' });
  detector = await loadDetector(cfg);
  api = createGrpcServer(cfg, [faceDetectionGrpc({ detector, limits: limitsOf(cfg) }, cfg, log)]);
  address = `127.0.0.1:${await startGrpcServer(api, cfg, log)}`;
  client = serviceClient(FaceDetectionService, address);
});

after(async () => {
  client?.close();
  if (api) await stopGrpcServer(api);
  await detector?.close();
});

const detect = (content: Uint8Array) => unary<DetectResponse>(client, 'detect', create(DetectRequestSchema, { content }));

const failure = grpcFailure;

test('Detect finds the face of each test photo at its reference box, as the stage does', async () => {
  for (const [png, ref] of [
    [astronautPng(), ASTRONAUT_FACE],
    [cameraPng(), CAMERA_FACE],
  ] as const) {
    const r = await detect(png);
    assert.deepEqual([r.image?.format, r.image?.width, r.image?.height, r.image?.sizeBytes], ['png', 512, 512, BigInt(png.length)]);
    assert.equal(r.faces.length, 1);
    const f = r.faces[0];
    const b = f.box!;
    for (const k of ['x', 'y', 'width', 'height'] as const) assert.ok(Math.abs(b[k] - ref[k]) <= 12, `${k}: ${b[k]} vs ${ref[k]}`);
    assert.ok(f.score >= cfg.TAMPERTRACE_MIN_FACE_SCORE && f.score <= 1, `score ${f.score}`);
    assert.equal(f.keypoints.length, 6);
    // The eyes (keypoints 0, 1) lie inside the box, in its upper half.
    for (const k of f.keypoints.slice(0, 2)) assert.ok(k.x > b.x && k.x < b.x + b.width && k.y > b.y && k.y < b.y + b.height / 2, JSON.stringify(k));
    assert.deepEqual(r.models.map((m) => m.name).sort(), ['blazeface-back-256-batch-n', 'blazeface-front-128-batch-n', 'mediapipe-face-landmark-468', 'mediapipe-iris-landmark']);
    // The face geometry: 468 mesh points and 10 iris points, the eyes' irises near the eye keypoints, a head pose.
    assert.equal(f.landmarks.length, 478);
    assert.ok(f.landmarkPresence > 0.9, `presence ${f.landmarkPresence}`);
    const eyeDist = Math.hypot(f.keypoints[1].x - f.keypoints[0].x, f.keypoints[1].y - f.keypoints[0].y);
    assert.ok(Math.hypot(f.landmarks[468].x - f.keypoints[0].x, f.landmarks[468].y - f.keypoints[0].y) < 0.5 * eyeDist);
    assert.ok(f.headPose && Number.isFinite(f.headPose.yawDeg) && Math.abs(f.headPose.rollDeg) < 20, JSON.stringify(f.headPose));
    assert.ok(r.models.every((m) => /^[0-9a-f]{64}$/.test(m.sha256)));
    // Exactly the detector the stream uses, on the same pixels (float32 on the wire).
    const direct = await detector.detect(await decodeRgb(png, limitsOf(cfg)));
    assert.equal(direct.length, 1);
    assert.ok(Math.abs(direct[0].box.x - b.x) < 1e-3 && Math.abs(direct[0].score - f.score) < 1e-6);
  }
});

test('bad images fail with INVALID_ARGUMENT (RESOURCE_EXHAUSTED when too big) and the error code in the trailer', async () => {
  assert.deepEqual(await failure(detect(Buffer.from('not an image at all'))), { code: grpc.status.INVALID_ARGUMENT, reason: 'UNSUPPORTED_FORMAT' });
  assert.deepEqual(await failure(detect(await truncatedJpeg())), { code: grpc.status.INVALID_ARGUMENT, reason: 'TRUNCATED_IMAGE' });
  assert.deepEqual(await failure(detect(new Uint8Array(0))), { code: grpc.status.INVALID_ARGUMENT, reason: 'EMPTY_INPUT' });
  assert.deepEqual(await failure(detect(pngDeclaring(60000, 60000))), { code: grpc.status.RESOURCE_EXHAUSTED, reason: 'TOO_MANY_PIXELS' });
  // Over the input limit but within the message allowance: our check, with its reason.
  assert.deepEqual(await failure(detect(new Uint8Array(2_000_001))), { code: grpc.status.RESOURCE_EXHAUSTED, reason: 'TOO_LARGE' });
  // Over the input limit plus the envelope allowance: refused by grpc-js before our code runs.
  assert.equal((await failure(detect(new Uint8Array(2_000_000 + 2 * 1024 * 1024)))).code, grpc.status.RESOURCE_EXHAUSTED);
});

test('a call past its deadline ends DEADLINE_EXCEEDED and the server goes on serving', async () => {
  const late = unary(client, 'detect', create(DetectRequestSchema, { content: astronautPng() }), { deadline: Date.now() + 1 });
  assert.equal((await failure(late)).code, grpc.status.DEADLINE_EXCEEDED);
  assert.equal((await detect(cameraPng())).faces.length, 1);
});

test('Health reports NOT_SERVING until the process is ready, then SERVING for the service and the server', async () => {
  assert.equal(await checkHealth(address, 'tampertrace.v1.FaceDetectionService'), 'NOT_SERVING');
  api.health.serving();
  assert.equal(await checkHealth(address, 'tampertrace.v1.FaceDetectionService'), 'SERVING');
  assert.equal(await checkHealth(address, ''), 'SERVING');
  await assert.rejects(checkHealth(address, 'tampertrace.v1.NoSuchService'), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND);
  api.health.notServing();
  assert.equal(await checkHealth(address, 'tampertrace.v1.FaceDetectionService'), 'NOT_SERVING');
  api.health.serving();
});

test('reflection lists the services and serves stages.proto with the messages it needs', async () => {
  const services = (await reflect(address, 7, '*')).services;
  assert.ok(services.includes('tampertrace.v1.FaceDetectionService'), services.join());
  assert.ok(services.includes('grpc.health.v1.Health'), services.join());
  const files = (await reflect(address, 4, 'tampertrace.v1.FaceDetectionService')).files.map((b) => fromBinary(FileDescriptorProtoSchema, b));
  const stages = files.find((f) => f.name === 'tampertrace/v1/stages.proto');
  assert.ok(stages, files.map((f) => f.name).join());
  assert.deepEqual(stages.service.find((s) => s.name === 'FaceDetectionService')?.method.map((m) => [m.name, m.inputType, m.outputType]), [
    ['Detect', '.tampertrace.v1.DetectRequest', '.tampertrace.v1.DetectResponse'],
  ]);
  // A client resolves the imports too: the dependency closure comes along.
  for (const dep of ['tampertrace/v1/events.proto', 'tampertrace/v1/common.proto']) assert.ok(files.some((f) => f.name === dep), dep);
});

/**
 * One grpc.reflection.v1 request, written by hand from reflection.proto so the check does not
 * lean on the library under test: field 7 = list_services, 4 = file_containing_symbol.
 */
async function reflect(address: string, field: 4 | 7, value: string): Promise<{ services: string[]; files: Uint8Array[] }> {
  const c = new grpc.Client(address, grpc.credentials.createInsecure());
  const id = (b: Buffer) => b;
  const call = c.makeBidiStreamRequest('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', id, id);
  const got = new Promise<Buffer>((resolve, reject) => {
    call.once('data', resolve);
    call.once('error', reject);
  });
  call.write(Buffer.from(new BinaryWriter().tag(field, WireType.LengthDelimited).string(value).finish()));
  const res = await got;
  call.end();
  c.close();
  const out = { services: [] as string[], files: [] as Uint8Array[] };
  const each = (bytes: Uint8Array, fn: (no: number, r: BinaryReader) => void) => {
    const r = new BinaryReader(bytes);
    while (r.pos < r.len) {
      const [no, wt] = r.tag();
      if (wt === WireType.LengthDelimited) fn(no, r);
      else r.skip(wt);
    }
  };
  each(res, (no, r) => {
    if (no === 6) each(r.bytes(), (n, s) => (n === 1 ? each(s.bytes(), (m, t) => (m === 1 ? out.services.push(t.string()) : t.bytes())) : s.bytes()));
    else if (no === 4) each(r.bytes(), (n, s) => (n === 1 ? out.files.push(s.bytes()) : s.bytes()));
    else if (no === 7) assert.fail(`reflection error: ${Buffer.from(r.bytes()).toString('latin1')}`);
    else r.bytes();
  });
  return out;
}
