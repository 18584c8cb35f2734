// Identifiers: content hashes, time-ordered analysis ids and deterministic event ids.
import { createHash, randomBytes } from 'node:crypto';

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** UUID v7 (RFC 9562): 48-bit Unix milliseconds, then randomness; sorts by creation time. */
export function uuidv7(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The same (analysis, stage) always yields the same event id, so redelivery is detectable. */
export function eventId(analysisId: string, stage: string): string {
  return `${analysisId}:${stage}`;
}

/** Deterministic PRNG (mulberry32) in [0, 1): same seed, same sequence (test data, forgeries). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
