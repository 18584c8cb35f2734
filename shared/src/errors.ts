// Errors are classified once here (invalid input / retriable / internal) and mapped once to
// the proto ErrorCode, HTTP status codes and dead-letter reasons.
import { ErrorCode, Stage, type ErrorInfo, ErrorInfoSchema } from './gen/tampertrace/v1/common_pb.ts';
import { create } from '@bufbuild/protobuf';

export type ErrorClass = 'invalid-input' | 'retriable' | 'internal' | 'caller';

export class TamperTraceError extends Error {
  /** The analysis the error is recorded in, when there is one (a refused submission's REJECTED analysis). */
  readonly analysisId?: string;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; analysisId?: string },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.analysisId = options?.analysisId;
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

/** Anything thrown, as a classified error. Unknown errors are internal. */
export function classify(err: unknown): TamperTraceError {
  if (err instanceof TamperTraceError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && typeof e.code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN'].includes(e.code)) {
    return new RetriableError(ErrorCode.DEPENDENCY_UNAVAILABLE, e.message, { cause: err });
  }
  // SQLSTATE class 22, "data exception" (PostgreSQL and PGlite alike): the values themselves
  // cannot be stored (a date out of range, say), so trying again can never succeed.
  if (e && typeof e.code === 'string' && /^22[0-9A-Z]{3}$/.test(e.code)) {
    return new InvalidInputError(ErrorCode.INVALID_MESSAGE, `the database refused a value: ${e.message}`, { cause: err });
  }
  return new InternalError(ErrorCode.INTERNAL, err instanceof Error ? err.message : String(err), { cause: err });
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

export function toErrorInfo(err: TamperTraceError, stage: Stage): ErrorInfo {
  return create(ErrorInfoSchema, { code: err.code, message: err.message, stage });
}
