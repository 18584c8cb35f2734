// Errors are classified once here (invalid input / retriable / internal) and mapped once to
// the proto ErrorCode, HTTP status codes and dead-letter reasons.
import { ErrorCode, Stage, type ErrorInfo, ErrorInfoSchema } from './gen/tampertrace/v1/common_pb.ts';
import { create } from '@bufbuild/protobuf';

export type ErrorClass = 'invalid-input' | 'retriable' | 'internal' | 'caller';

export class TamperTraceError extends Error {
  /** The analysis the error is recorded in, when there is one (a refused submission's REJECTED analysis). */
  readonly analysisId?: string;
  /**
   * Whether `message` was written for callers and may reach them (see safeMessage). By default
   * only invalid-input and caller errors' are; a retriable or internal error's message is a
   * dependency's or a bug's text (addresses, URLs, hosts) and goes to the logs only, unless it is
   * about the caller's own request (`forCaller: true`, e.g. the caller's URL did not answer).
   */
  readonly forCaller: boolean;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; analysisId?: string; forCaller?: boolean },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.analysisId = options?.analysisId;
    this.forCaller = options?.forCaller ?? (classOf(code) === 'invalid-input' || classOf(code) === 'caller');
  }
  get errorClass(): ErrorClass {
    return classOf(this.code);
  }
}

/** The input can never succeed: reject it, do not retry. */
export class InvalidInputError extends TamperTraceError {}
/** A dependency failed or timed out: try again later. */
export class RetriableError extends TamperTraceError {}
/** A bug or an impossible state. */
export class InternalError extends TamperTraceError {}
/**
 * The caller may not do this now: no valid key, not its analysis, over its quota. Raised by the
 * API layers only, never inside the pipeline. `retryAfterMs` is the hint for quota errors.
 */
export class CallerError extends TamperTraceError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(code, message);
  }
}

const INVALID: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.EMPTY_INPUT,
  ErrorCode.UNSUPPORTED_FORMAT,
  ErrorCode.TRUNCATED_IMAGE,
  ErrorCode.TOO_MANY_PIXELS,
  ErrorCode.TOO_LARGE,
  ErrorCode.TOO_SMALL,
  ErrorCode.CORRUPT_IMAGE,
  ErrorCode.INVALID_MESSAGE,
  ErrorCode.URL_REFUSED,
  ErrorCode.URL_FETCH_FAILED,
]);
const CALLER: ReadonlySet<ErrorCode> = new Set([ErrorCode.QUOTA_EXCEEDED, ErrorCode.UNAUTHENTICATED, ErrorCode.NOT_FOUND, ErrorCode.PERMISSION_DENIED]);
const RETRIABLE: ReadonlySet<ErrorCode> = new Set([ErrorCode.DEPENDENCY_UNAVAILABLE, ErrorCode.TIMEOUT]);

export function classOf(code: ErrorCode): ErrorClass {
  if (INVALID.has(code)) return 'invalid-input';
  if (RETRIABLE.has(code)) return 'retriable';
  if (CALLER.has(code)) return 'caller';
  return 'internal';
}

/**
 * node-postgres' own connection failures carry no code: a connection that ended under a query,
 * or no connection within the pool's connectionTimeoutMillis.
 */
const PG_CONNECTION_LOST = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

/** Anything thrown, as a classified error. Unknown errors are internal. */
export function classify(err: unknown): TamperTraceError {
  if (err instanceof TamperTraceError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  const code = e && typeof e.code === 'string' ? e.code : '';
  // Network errors, and SQLSTATE class 08 (connection exception) and 57P01-57P03 (the server is
  // shutting down or starting): the database or another dependency is away, not the input bad.
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code) || /^08[0-9A-Z]{3}$|^57P0[1-3]$/.test(code) || (err instanceof Error && PG_CONNECTION_LOST.test(err.message))) {
    return new RetriableError(ErrorCode.DEPENDENCY_UNAVAILABLE, err instanceof Error ? err.message : String(err), { cause: err });
  }
  // SQLSTATE class 22, "data exception" (PostgreSQL and PGlite alike): the values themselves
  // cannot be stored (a date out of range, say), so trying again can never succeed. The
  // database's own words stay in `cause`, for the logs.
  if (/^22[0-9A-Z]{3}$/.test(code)) {
    return new InvalidInputError(ErrorCode.INVALID_MESSAGE, 'a value in the request is out of the range that can be stored', { cause: err });
  }
  return new InternalError(ErrorCode.INTERNAL, err instanceof Error ? err.message : String(err), { cause: err });
}

/** What callers are told instead of a message not written for them (TamperTraceError.forCaller). */
const SAFE_MESSAGES: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.DEPENDENCY_UNAVAILABLE]: 'a service this request needs is unavailable; try again later',
  [ErrorCode.TIMEOUT]: 'a service this request needs did not answer in time; try again later',
};

/**
 * The message a caller may see for an error of this code: `message` when it was written for
 * callers, else a fixed one per code. The one rule for gRPC details, HTTP bodies,
 * Analysis.error (and so webhooks and audit records): internals go to logs, never to callers.
 */
export function callerMessage(code: ErrorCode, message: string, forCaller: boolean): string {
  if (forCaller) return message;
  return SAFE_MESSAGES[code] ?? (classOf(code) === 'invalid-input' || classOf(code) === 'caller' ? `${codeName(code).toLowerCase().replace(/_/g, ' ')}` : 'internal error');
}

/** callerMessage of a classified error. */
export function safeMessage(e: TamperTraceError): string {
  return callerMessage(e.code, e.message, e.forCaller);
}

/** Short, stable name of a code for people and headers, e.g. "TRUNCATED_IMAGE". */
export function codeName(code: ErrorCode): string {
  return ErrorCode[code] ?? 'UNSPECIFIED';
}

export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.QUOTA_EXCEEDED:
      return 429;
    case ErrorCode.UNAUTHENTICATED:
      return 401;
    case ErrorCode.NOT_FOUND:
      return 404;
    case ErrorCode.PERMISSION_DENIED:
      return 403;
    case ErrorCode.TIMEOUT:
      return 504;
    default:
      break;
  }
  switch (classOf(code)) {
    case 'invalid-input':
      return code === ErrorCode.TOO_LARGE || code === ErrorCode.TOO_MANY_PIXELS ? 413 : 422;
    case 'retriable':
      return 503;
    default:
      return 500;
  }
}

/** The ErrorInfo recorded in an analysis (and so in webhooks and the audit trail): with the caller's message only. */
export function toErrorInfo(err: TamperTraceError, stage: Stage): ErrorInfo {
  return create(ErrorInfoSchema, { code: err.code, message: safeMessage(err), stage });
}
