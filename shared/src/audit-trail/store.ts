// The audit store: append-only, hash-chained per tenant, idempotent on event id. One SQL schema
// (migrations/) for PGlite in embedded mode and PostgreSQL in distributed mode. Every read takes
// the tenant id as its first argument: the caller has authenticated it; nothing here crosses it.
import path from 'node:path';
import { InvalidInputError, runMigrations, type SqlClient } from '../index.ts';
import { ErrorCode } from '../gen/tampertrace/v1/common_pb.ts';
import { checkpointIn, chainHead, listCheckpoints, lockTenant, pruneBefore, verifyChain, type AuditCheckpoint, type VerifyOptions, type VerifyResult } from './chain.ts';
import { exportFormatter, type ExportFormat } from './export.ts';
import { MAX_PAGE_SIZE, encodeCursor, pageQuery, type AuditFilter, type PageRequest } from './query.ts';
import { HASH_VERSION, ROW_COLUMNS, inputOf, recordHash, toRow, type AuditRecordInput, type AuditRow } from './row.ts';

export { canonicalJson, recordHash, type AuditRecordInput, type AuditRow } from './row.ts';
export type { AuditCheckpoint, VerifyOptions, VerifyResult } from './chain.ts';
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type AuditFilter, type PageRequest } from './query.ts';
export { CSV_COLUMNS, type ExportFormat } from './export.ts';

export interface AuditPage {
  /** Newest first by (event time, sequence). */
  records: AuditRow[];
  /** Pass as `cursor` for the next page; absent on the last page. */
  nextCursor?: string;
}

export interface AppendOptions {
  /** Also record a checkpoint, in the same transaction, when the new sequence is a multiple of this (0: never). */
  checkpointEvery?: number;
}

const MIGRATIONS = path.resolve(import.meta.dirname, '..', '..', 'migrations', 'audit-trail');

export class AuditStore {
  constructor(private readonly db: SqlClient) {}

  migrate(): Promise<void> {
    return runMigrations(this.db, MIGRATIONS);
  }

  /** Appends one record; returns false when the event was recorded before (redelivery). */
  async append(record: AuditRecordInput, opts: AppendOptions = {}): Promise<boolean> {
    return (await this.appendMany([record], opts))[0];
  }

  /**
   * Appends records in order, in one transaction: all or none. Records of several tenants may
   * be mixed; each tenant's chain grows by its own. One result per record: false when its event
   * was recorded before (a redelivery, also within the batch). Begin, lock, head and commit
   * are paid once per batch instead of once per record.
   */
  async appendMany(records: AuditRecordInput[], opts: AppendOptions = {}): Promise<boolean[]> {
    if (records.length === 0) return [];
    const rs = records.map(inputOf);
    const every = opts.checkpointEvery ?? 0;
    return this.db.transaction(async (tx) => {
      // Serialises appends per tenant so the chain never forks. Locks are taken in one order, so
      // two writers with overlapping tenants cannot wait on each other.
      const heads = new Map<string, { sequence: number; recordHash: string }>();
      for (const tenant of [...new Set(rs.map((r) => r.tenantId))].sort()) {
        await lockTenant(tx, tenant);
        heads.set(tenant, await chainHead(tx, tenant));
      }
      const recordedTime = new Date();
      const out: boolean[] = [];
      for (const r of rs) {
        const head = heads.get(r.tenantId)!;
        const sequence = head.sequence + 1;
        const hash = recordHash(head.recordHash, r, sequence, { recordedTime });
        const inserted = await tx.query(
          `INSERT INTO audit_records (event_id, tenant_id, analysis_id, content_sha256, stage, status, verdict, max_forgery_score,
             models, faces, regions, explanation_text, explanation_facts, error_code, error_message, source_name, trace_id, submitted_by,
             event_time, recorded_time, sequence, prev_hash, record_hash, hash_version)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24)
           ON CONFLICT (event_id) DO NOTHING RETURNING 1`,
          [
            r.eventId, r.tenantId, r.analysisId, r.contentSha256, r.stage, r.status, r.verdict ?? null, r.maxForgeryScore ?? null,
            JSON.stringify(r.models), JSON.stringify(r.faces), r.regions, r.explanationText ?? null,
            r.explanationFacts ? JSON.stringify(r.explanationFacts) : null, r.errorCode ?? null, r.errorMessage ?? null,
            r.sourceName ?? null, r.traceId ?? null, r.submittedBy ?? null, r.eventTime.toISOString(), recordedTime.toISOString(),
            sequence, head.recordHash, hash, HASH_VERSION,
          ],
        );
        if (inserted.rows.length === 0) {
          out.push(false); // recorded before: a redelivery; the chain does not move
          continue;
        }
        heads.set(r.tenantId, { sequence, recordHash: hash });
        if (every > 0 && sequence % every === 0) await checkpointIn(tx, r.tenantId, { sequence, recordHash: hash });
        out.push(true);
      }
      return out;
    });
  }

  /** Every record of one analysis, or of every analysis of one content hash, in order. */
  async trail(tenantId: string, key: { analysisId: string } | { contentSha256: string }): Promise<AuditRow[]> {
    const [col, val] = 'analysisId' in key ? ['analysis_id', key.analysisId] : ['content_sha256', key.contentSha256];
    const res = await this.db.query<Record<string, unknown>>(
      // In the order things happened: stages publish on different topics, so the audit service
      // may record a later stage's event before an earlier one's (sequence is recording order).
      `SELECT ${ROW_COLUMNS} FROM audit_records WHERE tenant_id = $1 AND ${col} = $2 ORDER BY event_time, sequence`,
      [tenantId, val],
    );
    return res.rows.map(toRow);
  }

  /** One page of the tenant's records that match every given filter, newest first (see query.ts). */
  async query(tenantId: string, filter: AuditFilter = {}, page: PageRequest = {}): Promise<AuditPage> {
    const q = pageQuery(tenantId, filter, page);
    const res = await this.db.query<Record<string, unknown>>(q.sql, q.params);
    const rows = res.rows.slice(0, q.limit);
    const last = rows.at(-1);
    return {
      records: rows.map(toRow),
      nextCursor: res.rows.length > q.limit && last ? encodeCursor({ t: last.cursor_time as string, s: Number(last.sequence) }) : undefined,
    };
  }

  /**
   * The matching records as JSON lines (one AuditRow per line) or CSV (a header line, then one
   * line per record), in query() order, one chunk per page of 1000: the whole set never sits in memory.
   */
  async *exportRecords(tenantId: string, filter: AuditFilter = {}, format: ExportFormat = 'jsonl'): AsyncGenerator<string> {
    const fmt = exportFormatter(format);
    if (fmt.header) yield fmt.header;
    let cursor: string | undefined;
    do {
      const page = await this.query(tenantId, filter, { limit: MAX_PAGE_SIZE, cursor });
      if (page.records.length) yield page.records.map(fmt.line).join('');
      cursor = page.nextCursor;
    } while (cursor);
  }

  async count(tenantId?: string): Promise<number> {
    const res = tenantId
      ? await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_records WHERE tenant_id = $1', [tenantId])
      : await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_records');
    return res.rows[0].n;
  }

  /**
   * Records a checkpoint of the tenant's chain head (hash, sequence, time) and returns it; when
   * the head has not moved since the last one, returns that without writing. Null for an empty chain.
   */
  checkpoint(tenantId: string): Promise<AuditCheckpoint | null> {
    return this.db.transaction(async (tx) => {
      await lockTenant(tx, tenantId);
      return checkpointIn(tx, tenantId);
    });
  }

  /**
   * The tenant's checkpoints, oldest first, as JSON to keep elsewhere (and to hand back to
   * verify as `checkpoints`); only those after checkpoint `since` when given, to sync a copy.
   */
  exportCheckpoints(tenantId: string, since = 0): Promise<AuditCheckpoint[]> {
    return listCheckpoints(this.db, tenantId, since);
  }

  /**
   * Deletes the tenant's records up to and including checkpoint `checkpointSequence`'s record,
   * after checking that they verify; a no-op when a later prune covered them already. Verification
   * then starts from that checkpoint's head hash. NOT_FOUND for an unknown checkpoint.
   */
  pruneBefore(tenantId: string, checkpointSequence: number): Promise<{ pruned: number }> {
    if (!Number.isSafeInteger(checkpointSequence) || checkpointSequence < 1) {
      return Promise.reject(new InvalidInputError(ErrorCode.INVALID_MESSAGE, `checkpoint sequence must be a positive integer, got ${checkpointSequence}`));
    }
    return pruneBefore(this.db, tenantId, checkpointSequence);
  }

  /**
   * Recomputes the tenant's chain (or a range of it) and checks the checkpoints in that range;
   * names the first record that does not verify.
   */
  verify(tenantId: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
    return verifyChain(this.db, tenantId, opts);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
