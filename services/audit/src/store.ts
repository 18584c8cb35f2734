// The audit store: append-only, hash-chained per tenant, idempotent on event id. One SQL schema
// (migrations/) for PGlite in embedded mode and PostgreSQL in distributed mode.
import path from 'node:path';
import { runMigrations, sha256Hex, type SqlClient } from '@tampertrace/shared';

export interface AuditRecordInput {
  eventId: string;
  tenantId: string;
  analysisId: string;
  contentSha256: string;
  stage: string;
  status: string;
  verdict?: string;
  maxForgeryScore?: number;
  models: unknown[];
  faces: unknown[];
  regions: string[];
  explanationText?: string;
  explanationFacts?: unknown[];
  errorCode?: string;
  errorMessage?: string;
  sourceName?: string;
  eventTime: Date;
}

export interface AuditRow extends AuditRecordInput {
  sequence: number;
  prevHash: string;
  recordHash: string;
  recordedTime: Date;
}

const GENESIS = '0'.repeat(64);
const MIGRATIONS = path.resolve(import.meta.dirname, '..', 'migrations');

/** Canonical JSON: keys sorted, undefined dropped, so the hash does not depend on field order. */
export function canonicalJson(v: unknown): string {
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  if (v === null || v === undefined || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined && o[k] !== null)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

export function recordHash(prevHash: string, r: AuditRecordInput, sequence: number): string {
  // real columns round-trip through float4, so hash scores at the precision the table keeps.
  const maxForgeryScore = r.maxForgeryScore === undefined ? undefined : Math.fround(r.maxForgeryScore);
  return sha256Hex(prevHash + canonicalJson({ ...r, maxForgeryScore, sequence }));
}

export class AuditStore {
  constructor(private readonly db: SqlClient) {}

  migrate(): Promise<void> {
    return runMigrations(this.db, MIGRATIONS);
  }

  /** Appends one record; returns false when the event was recorded before (redelivery). */
  async append(r: AuditRecordInput): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      // Serialises appends per tenant so the chain never forks.
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [r.tenantId]);
      const seen = await tx.query('SELECT 1 FROM audit_records WHERE event_id = $1', [r.eventId]);
      if (seen.rows.length > 0) return false;
      const prev = await tx.query<{ sequence: string | number; record_hash: string }>(
        'SELECT sequence, record_hash FROM audit_records WHERE tenant_id = $1 ORDER BY sequence DESC LIMIT 1',
        [r.tenantId],
      );
      const sequence = prev.rows.length ? Number(prev.rows[0].sequence) + 1 : 1;
      const prevHash = prev.rows.length ? prev.rows[0].record_hash : GENESIS;
      await tx.query(
        `INSERT INTO audit_records (event_id, tenant_id, analysis_id, content_sha256, stage, status, verdict, max_forgery_score,
           models, faces, regions, explanation_text, explanation_facts, error_code, error_message, source_name, event_time,
           sequence, prev_hash, record_hash)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)`,
        [
          r.eventId, r.tenantId, r.analysisId, r.contentSha256, r.stage, r.status, r.verdict ?? null, r.maxForgeryScore ?? null,
          JSON.stringify(r.models), JSON.stringify(r.faces), r.regions, r.explanationText ?? null,
          r.explanationFacts ? JSON.stringify(r.explanationFacts) : null, r.errorCode ?? null, r.errorMessage ?? null,
          r.sourceName ?? null, r.eventTime.toISOString(), sequence, prevHash, recordHash(prevHash, r, sequence),
        ],
      );
      return true;
    });
  }

  /** Every record of one analysis, or of every analysis of one content hash, in order. */
  async trail(tenantId: string, key: { analysisId: string } | { contentSha256: string }): Promise<AuditRow[]> {
    const [col, val] = 'analysisId' in key ? ['analysis_id', key.analysisId] : ['content_sha256', key.contentSha256];
    const res = await this.db.query<Record<string, unknown>>(
      // In the order things happened: stages publish on different topics, so the audit service
      // may record a later stage's event before an earlier one's (sequence is recording order).
      `SELECT * FROM audit_records WHERE tenant_id = $1 AND ${col} = $2 ORDER BY event_time, sequence`,
      [tenantId, val],
    );
    return res.rows.map(toRow);
  }

  async count(tenantId?: string): Promise<number> {
    const res = tenantId
      ? await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_records WHERE tenant_id = $1', [tenantId])
      : await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_records');
    return res.rows[0].n;
  }

  /** Recomputes a tenant's chain; names the first record that does not verify. */
  async verify(tenantId: string): Promise<{ ok: true; count: number } | { ok: false; sequence: number; reason: string }> {
    const res = await this.db.query<Record<string, unknown>>('SELECT * FROM audit_records WHERE tenant_id = $1 ORDER BY sequence', [tenantId]);
    let prev = GENESIS;
    let expected = 1;
    for (const raw of res.rows) {
      const row = toRow(raw);
      if (row.sequence !== expected) return { ok: false, sequence: expected, reason: `record ${expected} is missing` };
      if (row.prevHash !== prev) return { ok: false, sequence: row.sequence, reason: 'prev_hash does not match the previous record' };
      const { sequence, prevHash, recordHash: stored, recordedTime: _recorded, ...input } = row;
      if (recordHash(prevHash, input, sequence) !== stored) return { ok: false, sequence, reason: 'record content does not match its hash' };
      prev = stored;
      expected++;
    }
    return { ok: true, count: res.rows.length };
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

function toRow(r: Record<string, unknown>): AuditRow {
  const opt = <T>(v: unknown): T | undefined => (v === null || v === undefined ? undefined : (v as T));
  return {
    eventId: r.event_id as string,
    tenantId: r.tenant_id as string,
    analysisId: r.analysis_id as string,
    contentSha256: r.content_sha256 as string,
    stage: r.stage as string,
    status: r.status as string,
    verdict: opt(r.verdict),
    maxForgeryScore: opt<number>(r.max_forgery_score),
    models: r.models as unknown[],
    faces: r.faces as unknown[],
    regions: r.regions as string[],
    explanationText: opt(r.explanation_text),
    explanationFacts: opt(r.explanation_facts),
    errorCode: opt(r.error_code),
    errorMessage: opt(r.error_message),
    sourceName: opt(r.source_name),
    eventTime: new Date(r.event_time as string),
    sequence: Number(r.sequence),
    prevHash: r.prev_hash as string,
    recordHash: r.record_hash as string,
    recordedTime: new Date(r.recorded_time as string),
  };
}
