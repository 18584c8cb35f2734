// Fetches the image of a URL submission: only to public addresses (net-guard.ts), with
// redirects followed by hand so that each hop is checked like the first URL, within a byte
// limit and a total time limit.
import type { Readable } from 'node:stream';
import { request } from 'undici';
import { InvalidInputError, RetriableError } from '@tampertrace/shared';
import { ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { Deadline, checkUrl, guardedAgent, type NetPolicy } from './net-guard.ts';

export interface UrlFetchOptions extends NetPolicy {
  /** Largest accepted body, bytes. */
  maxBytes: number;
  /** Total time for every hop, headers and body included, ms. */
  timeoutMs: number;
  /** Redirects followed at most; 3 unless set. */
  maxRedirects?: number;
  signal?: AbortSignal;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * The body of `url`. Rejects with InvalidInputError for what can never succeed (scheme, refused
 * address, too large, a 4xx), RetriableError for what may (timeouts, unreachable server, 5xx),
 * and the caller's abort reason when `signal` fires.
 */
export async function fetchImageUrl(url: string, opts: UrlFetchOptions): Promise<Uint8Array> {
  const deadline = new Deadline(opts.timeoutMs, opts.signal);
  const maxRedirects = opts.maxRedirects ?? 3;
  const agent = guardedAgent(opts);
  try {
    let target = checkUrl(url, opts);
    for (let hop = 0; ; hop++) {
      const res = await request(target, {
        dispatcher: agent,
        signal: deadline.signal,
        // identity: a compressed body would be measured before it is inflated (a decompression bomb).
        headers: { accept: 'image/*', 'accept-encoding': 'identity' },
      });
      const location = res.headers.location;
      if (REDIRECTS.has(res.statusCode) && location) {
        await res.body.dump();
        if (hop >= maxRedirects) throw new InvalidInputError(ErrorCode.URL_FETCH_FAILED, `more than ${maxRedirects} redirects`);
        target = checkUrl(String(location), opts, target);
        continue;
      }
      if (res.statusCode < 200 || res.statusCode > 299) {
        await res.body.dump();
        throw statusError(res.statusCode);
      }
      return await readCapped(res.body, res.headers['content-length'], opts.maxBytes);
    }
  } catch (err) {
    throw deadline.failure(err);
  } finally {
    // Destroy, not close: nothing in flight is still wanted, and close would wait for it.
    await agent.destroy();
  }
}

/** 408, 429 and 5xx may pass on a later try; any other status will not. */
function statusError(status: number): Error {
  if (status === 408 || status === 429 || status >= 500) return new RetriableError(ErrorCode.DEPENDENCY_UNAVAILABLE, `the server answered HTTP ${status}`, { forCaller: true });
  return new InvalidInputError(ErrorCode.URL_FETCH_FAILED, `the server answered HTTP ${status}`);
}

async function readCapped(body: Readable, contentLength: string | string[] | undefined, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = (n: string) => new InvalidInputError(ErrorCode.TOO_LARGE, `the URL's body has ${n} bytes; the limit is ${maxBytes}`);
  // A declared length is refused before anything is read; an absent or false one is caught by the count.
  const declared = Number(contentLength);
  if (declared > maxBytes) {
    body.destroy();
    throw tooLarge(String(declared));
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    n += chunk.byteLength;
    if (n > maxBytes) {
      body.destroy();
      throw tooLarge(`more than ${maxBytes}`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, n);
}
