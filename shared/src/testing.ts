// Test inputs made on the fly (no binary fixtures beyond the two licensed photos).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { errorCodeOf, grpc } from './grpc.ts';
import { REPO_ROOT } from './config.ts';
import type { Box, Point } from './image.ts';

export const FACES_DIR = path.join(REPO_ROOT, 'testdata', 'faces');
export const astronautPng = (): Buffer => readFileSync(path.join(FACES_DIR, 'astronaut.png'));
export const cameraPng = (): Buffer => readFileSync(path.join(FACES_DIR, 'camera.png'));

/** BlazeFace's face in astronaut.png (what Detect returns for it), for tests that need a face but no detector. */
export const ASTRONAUT_FACE: { box: Box; score: number; keypoints: Point[] } = {
  box: { x: 176.29, y: 77.92, width: 97.48, height: 97.48 },
  score: 0.915,
  keypoints: [
    { x: 204.33, y: 100.53 },
    { x: 248.79, y: 105.8 },
    { x: 224.31, y: 125.1 },
    { x: 221.93, y: 146.09 },
    { x: 177.62, y: 109.32 },
    { x: 271.64, y: 119.98 },
  ],
};

/** A JPEG cut in half: the header is intact, the scan data ends early. */
export async function truncatedJpeg(): Promise<Buffer> {
  const jpg = await sharp(astronautPng()).jpeg({ quality: 90 }).toBuffer();
  return jpg.subarray(0, Math.floor(jpg.length / 2));
}

/** A valid PNG header (correct CRC) declaring width x height, with a tiny body: a decompression bomb's shape. */
export function pngDeclaring(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(1024))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The error of a gRPC call that must fail (the test fails if it succeeds). */
export async function grpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('expected the call to fail');
}

/** Status and machine-readable reason (the tt-error-code trailer) of a gRPC call that must fail. */
export async function grpcFailure(p: Promise<unknown>): Promise<{ code: grpc.status; reason?: string }> {
  const e = await grpcError(p);
  return { code: e.code, reason: errorCodeOf(e) };
}
