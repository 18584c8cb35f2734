// The outbound-request guard shared by URL fetches and webhook deliveries (server-side request
// forgery): which schemes and addresses a user-supplied URL may reach, an undici Agent that
// connects only to addresses it has checked, and one mapping of network failures to our errors.
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { Agent, buildConnector } from 'undici';
import { InvalidInputError, RetriableError, TamperTraceError } from '@tampertrace/shared';
import { ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';

export interface NetPolicy {
  /** Accept http:// besides https:// (tests and development only). */
  allowHttp?: boolean;
  /**
   * CIDRs that may be reached although not public, e.g. ['127.0.0.1/32'] in tests. IPv4 ranges
   * are written as IPv4: an IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
   */
  allowPrivate?: readonly string[];
  /** Extra trusted CA certificates (PEM), for a test server's self-signed certificate. */
  ca?: string | Buffer;
}

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

// Neither names nor reasons say which address a host resolved to: that would turn the refusal
// into an oracle for the internal DNS.
const refused = (host: string) => new InvalidInputError(ErrorCode.URL_REFUSED, `the URL's host "${host}" is not a public address; refused`);

export function parseAllowList(cidrs: readonly string[]): Cidr[] {
  return cidrs.map((c) => {
    if (!ipaddr.isValidCIDR(c)) throw new TypeError(`allowPrivate: "${c}" is not a CIDR (e.g. 127.0.0.1/32)`);
    return ipaddr.parseCIDR(c);
  });
}

/**
 * Only globally routable unicast passes on its own. Everything ipaddr.js names a special range
 * (private, loopback, link-local with the cloud metadata address, CGNAT, unique-local,
 * multicast, NAT64, 6to4, Teredo, ...) needs the allow-list, since several of those can carry a
 * private IPv4 address inside.
 */
export function isAllowedAddress(address: string, allow: readonly Cidr[]): boolean {
  if (!ipaddr.isValid(address)) return false;
  const ip = ipaddr.process(address);
  if (ip.range() === 'unicast') return true;
  return allow.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits));
}

/** Parses a user-supplied URL and refuses schemes other than https (and http when allowed). */
export function checkUrl(raw: string | URL, policy: NetPolicy, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, 'not a valid absolute URL');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) {
    throw new InvalidInputError(ErrorCode.URL_REFUSED, `URL scheme "${url.protocol}" is not accepted (${policy.allowHttp ? 'http, https' : 'https'})`);
  }
  // Credentials in a URL would end up in logs and be replayed to whatever the URL redirects to.
  if (url.username || url.password) throw new InvalidInputError(ErrorCode.URL_REFUSED, 'URLs with credentials are not accepted');
  return url;
}

/**
 * An Agent that checks every address before connecting. Names are resolved by our `lookup`,
 * which refuses the whole answer when any address in it is refused and hands Node exactly the
 * checked addresses, so nothing resolves the name a second time (no DNS rebinding between check
 * and connect). Node skips `lookup` for IP literals, so the connector checks those itself. TLS
 * still verifies the certificate against the URL's host name, not the address.
 */
export function guardedAgent(policy: NetPolicy): Agent {
  const allow = parseAllowList(policy.allowPrivate ?? []);
  const lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...(options as LookupOptions), all: true }, (err, addrs: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      // Node hands this error to the socket unchanged, so undici rejects the request with it.
      if (addrs.length === 0 || addrs.some((a) => !isAllowedAddress(a.address, allow))) return callback(refused(hostname) as unknown as NodeJS.ErrnoException, '', 0);
      if ((options as LookupOptions).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addrs);
      callback(null, addrs[0].address, addrs[0].family);
    });
  };
  const connect = buildConnector({ lookup, ...(policy.ca ? { ca: policy.ca } : {}) });
  return new Agent({
    connect: (opts, callback) => {
      const host = opts.hostname.replace(/^\[(.*)\]$/, '$1');
      if (isIP(host) && !isAllowedAddress(host, allow)) return callback(refused(host), null);
      connect(opts, callback);
    },
  });
}

// Node and undici codes for a certificate that will not verify on a retry either.
const TLS_PERMANENT = /^(ERR_TLS_CERT_ALTNAME_INVALID|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE).*|CERT_.*)$/;
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** A failed exchange's error, classified: our own refusals as they are, the rest by its code. */
export function networkError(err: unknown): TamperTraceError {
  if (err instanceof TamperTraceError) return err;
  // Node wraps the error of a multi-address (happy eyeballs) connect; the first one says why.
  const e = (err instanceof AggregateError ? err.errors[0] : err) as NodeJS.ErrnoException;
  if (e instanceof TamperTraceError) return e;
  const code = typeof e?.code === 'string' ? e.code : '';
  const msg = e instanceof Error ? e.message : String(e);
  if (code === 'ENOTFOUND') return new InvalidInputError(ErrorCode.URL_FETCH_FAILED, `the URL's host does not exist (${msg})`, { cause: err });
  if (TLS_PERMANENT.test(code)) return new InvalidInputError(ErrorCode.URL_FETCH_FAILED, `the server's certificate is not valid (${code})`, { cause: err });
  // About the caller's own URL, so the caller may read them (forCaller); the error code only,
  // not the socket's message with the addresses it tried.
  if (TIMEOUT_CODES.has(code)) return new RetriableError(ErrorCode.TIMEOUT, `the server did not answer in time (${code})`, { cause: err, forCaller: true });
  return new RetriableError(ErrorCode.DEPENDENCY_UNAVAILABLE, `the server cannot be reached (${code || 'network error'})`, { cause: err, forCaller: true });
}

/** A total time limit joined with the caller's signal, remembering which one fired. */
export class Deadline {
  private readonly timer: AbortSignal;
  readonly signal: AbortSignal;
  constructor(
    readonly ms: number,
    private readonly caller?: AbortSignal,
  ) {
    this.timer = AbortSignal.timeout(ms);
    this.signal = caller ? AbortSignal.any([caller, this.timer]) : this.timer;
  }

  /**
   * What to throw for a failed exchange: the caller's abort reason unchanged (the caller gave
   * up, nothing failed), our own limit as a retriable TIMEOUT, anything else classified.
   */
  failure(err: unknown): unknown {
    if (this.caller?.aborted) return this.caller.reason;
    if (this.timer.aborted) return new RetriableError(ErrorCode.TIMEOUT, `no complete answer within ${this.ms} ms`, { cause: err, forCaller: true });
    return networkError(err);
  }
}
