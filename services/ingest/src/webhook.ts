// Delivers a final result to a tenant's webhook: a signed POST (Stripe-style signature with the
// timestamp inside the signed payload, so a captured request cannot be replayed later), retried
// with backoff while the failure may pass, to public addresses only (net-guard.ts).
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { InvalidInputError, type TamperTraceError } from '@tampertrace/shared';
import { Deadline, checkUrl, guardedAgent, type NetPolicy } from './net-guard.ts';

/** Header names a receiver reads. */
export const WebhookHeader = { signature: 'tt-signature', deliveryId: 'tt-delivery-id' } as const;

export interface WebhookOptions extends NetPolicy {
  secret: string;
  /** Time limit of each attempt, ms. */
  timeoutMs: number;
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Base delay before the first retry, ms; it doubles for each further retry, with jitter. */
  backoffMs: number;
  /** Stable across attempts (receivers deduplicate on it); pass one to keep it across redeliveries too. */
  deliveryId?: string;
  signal?: AbortSignal;
}

export interface WebhookOutcome {
  deliveryId: string;
  delivered: boolean;
  attempts: number;
  /** HTTP status of the last answer; undefined when the last attempt got none. */
  status?: number;
  /** Why the last attempt failed, when it did without an answer. */
  error?: TamperTraceError;
}

const MAX_BACKOFF_MS = 60_000;

/**
 * Resolves with the outcome once delivered, refused with a status that will not change (any
 * non-2xx but 429 and 5xx: redirects are not followed), or out of attempts. Rejects with
 * InvalidInputError when the URL can never be delivered to (scheme, refused address, unknown
 * host, bad certificate), and with the caller's reason when `signal` fires.
 */
export async function deliverWebhook(url: string, body: Uint8Array, opts: WebhookOptions): Promise<WebhookOutcome> {
  const target = checkUrl(url, opts);
  const deliveryId = opts.deliveryId ?? randomUUID();
  const agent = guardedAgent(opts);
  try {
    for (let attempts = 1; ; attempts++) {
      const { status, error } = await attempt(agent, target, body, deliveryId, opts);
      if (error instanceof InvalidInputError) throw error;
      const delivered = status !== undefined && status >= 200 && status <= 299;
      const mayPass = error !== undefined || status === 429 || (status ?? 0) >= 500;
      if (delivered || !mayPass || attempts >= opts.maxAttempts) return { deliveryId, delivered, attempts, status, error };
      const base = Math.min(opts.backoffMs * 2 ** (attempts - 1), MAX_BACKOFF_MS);
      // Jitter spreads the retries of many deliveries that failed together (one receiver outage).
      await sleep(base / 2 + (Math.random() * base) / 2, undefined, { signal: opts.signal }).catch(() => {
        throw opts.signal!.reason;
      });
    }
  } finally {
    await agent.destroy();
  }
}

async function attempt(agent: ReturnType<typeof guardedAgent>, target: URL, body: Uint8Array, deliveryId: string, opts: WebhookOptions): Promise<{ status?: number; error?: TamperTraceError }> {
  const deadline = new Deadline(opts.timeoutMs, opts.signal);
  try {
    const res = await request(target, {
      method: 'POST',
      dispatcher: agent,
      signal: deadline.signal,
      body,
      headers: {
        'content-type': 'application/json',
        // Signed per attempt, so a late retry is not refused by the receiver's time tolerance.
        [WebhookHeader.signature]: signatureHeader(body, opts.secret),
        [WebhookHeader.deliveryId]: deliveryId,
      },
    });
    // Only the status matters; dump reads at most a little of the answer before closing it.
    await res.body.dump({ limit: 64 * 1024, signal: deadline.signal });
    return { status: res.statusCode };
  } catch (err) {
    const e = deadline.failure(err);
    if (opts.signal?.aborted) throw e;
    return { error: e as TamperTraceError };
  }
}

function hmac(secret: string, t: number, body: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(`${t}.`).update(body).digest();
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export function signatureHeader(body: Uint8Array, secret: string, nowMs = Date.now()): string {
  const t = Math.floor(nowMs / 1000);
  return `t=${t},v1=${hmac(secret, t, body).toString('hex')}`;
}

/**
 * For receivers: whether `header` signs exactly `body` with `secret`, made within `toleranceS`
 * seconds of now. Several v1 values are accepted, so a sender may sign with an old and a new
 * secret while they are rotated.
 */
export function verifyWebhookSignature(header: string, body: Uint8Array, secret: string, toleranceS: number, nowMs = Date.now()): boolean {
  let t = NaN;
  const sigs: Buffer[] = [];
  for (const part of header.split(',')) {
    const [k, v = ''] = part.trim().split('=', 2);
    if (k === 't' && /^\d{1,12}$/.test(v)) t = Number(v);
    else if (k === 'v1' && /^[0-9a-f]{64}$/i.test(v)) sigs.push(Buffer.from(v, 'hex'));
  }
  if (!Number.isFinite(t) || Math.abs(nowMs / 1000 - t) > toleranceS) return false;
  const expected = hmac(secret, t, body);
  // Constant-time: comparing byte by byte would let a caller find a valid signature by timing.
  return sigs.some((s) => timingSafeEqual(s, expected));
}
