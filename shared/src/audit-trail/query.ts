// Filtered, paginated reads of one tenant's audit records (pure: builds the SQL, encodes cursors).
//
// Order: newest first by (event_time, sequence), both descending. Sequence is unique per tenant,
// so the order is total and a page boundary never splits or repeats records; records appended
// while a caller pages appear on a later call only if their event time is older than the cursor
// (events arrive roughly in time order, so a fresh listing starts from the first page again).
// The cursor is opaque to callers: base64url of the last record's exact event time (microseconds,
// as the table keeps it) and sequence. It carries no tenant: every query is bound to the tenant
// the caller authenticated, so another tenant's cursor only moves a position in one's own records.
import { InvalidInputError } from '../index.ts';
import { ErrorCode } from '../gen/tampertrace/v1/common_pb.ts';
import { rowColumnsOf } from './row.ts';

export interface AuditFilter {
  /** Event time at or after this instant. */
  from?: Date;
  /** Event time before this instant. */
  to?: Date;
  /** AnalysisStatus enum name, e.g. REJECTED. */
  status?: string;
  /** Verdict enum name, e.g. LIKELY_FORGED. */
  verdict?: string;
  /** Records whose max_forgery_score is at least this (compared at the table's float4 precision). */
  minForgeryScore?: number;
  /** Records with at least one model of this version. */
  modelVersion?: string;
  /** Records whose named regions include this one, e.g. "nose". */
  region?: string;
  /** Stage enum name, e.g. EXPLANATION. */
  stage?: string;
  /** ErrorCode enum name, e.g. TRUNCATED_IMAGE. */
  errorCode?: string;
}

export interface PageRequest {
  /** Records per page: default 100, at most 1000 (more is treated as 1000). */
  limit?: number;
  /** nextCursor of the previous page; absent for the first page. */
  cursor?: string;
}

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

interface Position {
  /** Event time, ISO 8601 with microseconds, UTC. */
  t: string;
  /** Sequence. */
  s: number;
}

export function encodeCursor(p: Position): string {
  return Buffer.from(JSON.stringify(p)).toString('base64url');
}

export function decodeCursor(cursor: string): Position {
  const bad = () => new InvalidInputError(ErrorCode.INVALID_MESSAGE, 'page cursor is not one this service issued');
  let p: unknown;
  try {
    p = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  const o = p as Partial<Position> | null;
  if (!o || typeof o.t !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(o.t) || !Number.isSafeInteger(o.s)) throw bad();
  return { t: o.t, s: o.s as number };
}

export function pageSize(limit: number | undefined): number {
  if (limit === undefined || limit === 0) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 0) throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, `page size must be a positive integer, got ${limit}`);
  return Math.min(limit, MAX_PAGE_SIZE);
}

/** The event time of a row as the cursor keeps it (exact to the microsecond, independent of the session time zone). */
const cursorTime = (alias: string) => `to_char(${alias}.event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_time`;

/**
 * One page's SQL: `limit + 1` rows (the extra one says whether there is a next page), newest first.
 * Each filter maps to an indexed predicate (see migrations/002_audit_trail.sql). A region or
 * model version filter joins that value's rows of audit_record_tags, whose primary key yields the
 * page order, so a page costs about its size however many records match.
 */
export function pageQuery(tenantId: string, filter: AuditFilter, page: PageRequest): { sql: string; params: unknown[]; limit: number } {
  const limit = pageSize(page.limit);
  const params: unknown[] = [tenantId];
  const p = (v: unknown) => `$${params.push(v)}`;
  const text = (v: string | undefined, name: string): string | undefined => {
    if (v === undefined || v === '') return undefined;
    if (typeof v !== 'string') throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, `${name} must be a string`);
    return v;
  };
  const date = (d: Date, name: string) => {
    if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, `${name} is not a valid time`);
    return d.toISOString();
  };

  const tags: string[] = [];
  const region = text(filter.region, 'region');
  const modelVersion = text(filter.modelVersion, 'model version');
  if (region !== undefined) tags.push(`region:${region}`);
  if (modelVersion !== undefined) tags.push(`model_version:${modelVersion}`);
  // The first tag's rows drive the page: order, time range and cursor are on them (they carry the
  // record's event time). The record is joined on its sequence alone, which keeps the planner's
  // row estimate right; a second tag is looked up by its full key.
  const joins = tags.map((tag, i) =>
    i === 0
      ? `JOIN audit_record_tags g0 ON g0.tenant_id = r.tenant_id AND g0.sequence = r.sequence AND g0.tag = ${p(tag)}`
      : `JOIN audit_record_tags g${i} ON g${i}.tenant_id = r.tenant_id AND g${i}.event_time = g0.event_time AND g${i}.sequence = g0.sequence AND g${i}.tag = ${p(tag)}`,
  );
  /** Whose event time and sequence order the page. */
  const o = tags.length ? 'g0' : 'r';

  const where = ['r.tenant_id = $1'];
  if (filter.from !== undefined) where.push(`${o}.event_time >= ${p(date(filter.from, 'from'))}::timestamptz`);
  if (filter.to !== undefined) where.push(`${o}.event_time < ${p(date(filter.to, 'to'))}::timestamptz`);
  for (const [col, v, name] of [
    ['status', filter.status, 'status'],
    ['verdict', filter.verdict, 'verdict'],
    ['stage', filter.stage, 'stage'],
    ['error_code', filter.errorCode, 'error code'],
  ] as const) {
    const t = text(v, name);
    if (t !== undefined) where.push(`r.${col} = ${p(t)}`);
  }
  if (filter.minForgeryScore !== undefined) {
    if (typeof filter.minForgeryScore !== 'number' || !Number.isFinite(filter.minForgeryScore)) {
      throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, 'minimum forgery score must be a number');
    }
    where.push(`r.max_forgery_score >= ${p(filter.minForgeryScore)}::real`);
  }
  if (page.cursor) {
    const c = decodeCursor(page.cursor);
    where.push(`(${o}.event_time, ${o}.sequence) < (${p(c.t)}::timestamptz, ${p(c.s)}::bigint)`);
  }
  const sql = `SELECT ${rowColumnsOf('r')}, ${cursorTime('r')} FROM audit_records r ${joins.join(' ')}
    WHERE ${where.join(' AND ')} ORDER BY ${o}.event_time DESC, ${o}.sequence DESC LIMIT ${limit + 1}`;
  return { sql, params, limit };
}
