// The analyses table (migrations/): what GetAnalysis answers from. Writes are idempotent so the
// results consumer can see an event twice, and the final state can arrive before the PENDING
// row (a rejection is published before Submit returns).
import path from 'node:path';
import { clone, fromBinary, toBinary } from '@bufbuild/protobuf';
import { runMigrations, type SqlClient, type SqlTx } from '@tampertrace/shared';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { timestampDate } from '@bufbuild/protobuf/wkt';

const MIGRATIONS = path.resolve(import.meta.dirname, '..', 'migrations');

export class AnalysesStore {
  constructor(private readonly db: SqlClient) {}

  async migrate(): Promise<void> {
    await runMigrations(this.db, MIGRATIONS);
    // Rows from before the list columns existed get them from their stored message, once.
    for (;;) {
      const res = await this.db.query<{ analysis: Uint8Array }>('SELECT analysis FROM analyses WHERE verdict IS NULL LIMIT 500');
      if (res.rows.length === 0) return;
      for (const r of res.rows) {
        const a = fromBinary(AnalysisSchema, r.analysis);
        await this.db.query('UPDATE analyses SET verdict = $2, max_forgery_score = $3 WHERE analysis_id = $1', [a.analysisId, a.verdict, a.maxForgeryScore]);
      }
    }
  }

  /** Records a submission (before its event is published); a row that already exists is left alone. */
  async pending(a: Analysis, webhookUrl?: string): Promise<void> {
    await this.write(this.db, a, 'DO NOTHING', webhookUrl);
  }

  /**
   * Records a submission as PENDING only if it may exist, deciding that atomically with the
   * tenant's other submissions: with `dedupe`, an analysis of the same bytes that did not fail
   * answers instead (`prior`); with `maxInFlight`, a tenant already at its cap is refused
   * (`inFlight` says how many). The check and the insert run in one transaction under a lock
   * per tenant (an advisory lock: on PostgreSQL it holds across every replica on the database;
   * PGlite runs one transaction at a time anyway), so concurrent submissions see each other's
   * rows: 20 identical submissions make one analysis, and the cap is never passed.
   */
  async admitPending(a: Analysis, opts: { dedupe: boolean; maxInFlight?: number; webhookUrl?: string }): Promise<{ prior?: Analysis; inFlight?: number }> {
    return this.db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtext('tampertrace-submit'), hashtext($1))", [a.tenantId]);
      if (opts.dedupe) {
        const prior = await this.latestOf(a.tenantId, a.contentSha256, tx);
        if (prior) return { prior };
      }
      if (opts.maxInFlight !== undefined) {
        const n = await this.inFlight(a.tenantId, tx);
        if (n >= opts.maxInFlight) return { inFlight: n };
      }
      await this.write(tx, a, 'DO NOTHING', opts.webhookUrl);
      return {};
    });
  }

  /** The tenant's analyses in flight (PENDING). */
  async inFlight(tenantId: string, db: SqlTx = this.db): Promise<number> {
    const res = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM analyses WHERE tenant_id = $1 AND status = ${AnalysisStatus.PENDING}`, [tenantId]);
    return Number(res.rows[0].n);
  }

  /** Drops the PENDING row of a submission that was never published. */
  async forget(analysisId: string): Promise<void> {
    await this.db.query(`DELETE FROM analyses WHERE analysis_id = $1 AND status = ${AnalysisStatus.PENDING}`, [analysisId]);
  }

  /**
   * Records the final state; only a PENDING row is replaced, so a redelivered final is a no-op.
   * Returns the row's webhook when this call was the one that finished it, else undefined.
   */
  async final(a: Analysis): Promise<{ webhookUrl?: string } | undefined> {
    const res = await this.write(
      this.db,
      a,
      `DO UPDATE SET status = EXCLUDED.status, analysis = EXCLUDED.analysis, verdict = EXCLUDED.verdict, max_forgery_score = EXCLUDED.max_forgery_score, updated_at = now() WHERE analyses.status = ${AnalysisStatus.PENDING}`,
    );
    return res.rows[0] ? { webhookUrl: res.rows[0].webhook_url ?? undefined } : undefined;
  }

  /** Notes the last stage finished by a PENDING analysis (WatchAnalysis reads it). */
  /** `stage`: the position of the stage that finished (stageOrder in shared/src/pipeline.ts; equal to the Stage value for detection and localization, as rows written before provenance hold). */
  async stageDone(analysisId: string, stage: number): Promise<void> {
    await this.db.query(`UPDATE analyses SET stage = $2, updated_at = now() WHERE analysis_id = $1 AND status = ${AnalysisStatus.PENDING} AND stage < $2`, [analysisId, stage]);
  }

  async getWithStage(tenantId: string, analysisId: string): Promise<{ analysis: Analysis; stage: number } | undefined> {
    if (!UUID.test(analysisId)) return undefined;
    const res = await this.db.query<{ analysis: Uint8Array; stage: number }>('SELECT analysis, stage FROM analyses WHERE analysis_id = $1 AND tenant_id = $2', [analysisId, tenantId]);
    const r = res.rows[0];
    return r ? { analysis: fromBinary(AnalysisSchema, r.analysis), stage: Number(r.stage) } : undefined;
  }

  /** The analysis, if it belongs to this tenant. */
  async get(tenantId: string, analysisId: string): Promise<Analysis | undefined> {
    if (!UUID.test(analysisId)) return undefined;
    const res = await this.db.query<{ analysis: Uint8Array }>('SELECT analysis FROM analyses WHERE analysis_id = $1 AND tenant_id = $2', [analysisId, tenantId]);
    return res.rows[0] ? fromBinary(AnalysisSchema, res.rows[0].analysis) : undefined;
  }

  /** The newest analysis of these bytes for this tenant that did not fail, for deduplication. */
  async latestOf(tenantId: string, contentSha256: string, db: SqlTx = this.db): Promise<Analysis | undefined> {
    const res = await db.query<{ analysis: Uint8Array }>(
      `SELECT analysis FROM analyses WHERE tenant_id = $1 AND content_sha256 = $2 AND status <> ${AnalysisStatus.FAILED}
       ORDER BY submitted_at DESC LIMIT 1`,
      [tenantId, contentSha256],
    );
    return res.rows[0] ? fromBinary(AnalysisSchema, res.rows[0].analysis) : undefined;
  }

  /**
   * One page of a tenant's analyses, newest first by (submitted_at, analysis_id); `after` is the
   * last row of the previous page, so a row is never on two pages.
   */
  async list(tenantId: string, f: AnalysisListFilter, limit: number, after?: ListCursor): Promise<Array<{ analysis: Analysis; cursor: ListCursor }>> {
    const where = ['tenant_id = $1'];
    const params: unknown[] = [tenantId];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (f.status) add('status = ?', f.status);
    if (f.verdict) add('verdict = ?', f.verdict);
    if (f.minForgeryScore > 0) add('max_forgery_score >= ?', f.minForgeryScore);
    if (after) {
      params.push(after.submittedAt.toISOString(), after.analysisId);
      where.push(`(submitted_at, analysis_id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    params.push(limit);
    const res = await this.db.query<{ analysis: Uint8Array; submitted_at: Date | string }>(
      `SELECT analysis, submitted_at FROM analyses WHERE ${where.join(' AND ')} ORDER BY submitted_at DESC, analysis_id DESC LIMIT $${params.length}`,
      params,
    );
    return res.rows.map((r) => {
      const analysis = fromBinary(AnalysisSchema, r.analysis);
      return { analysis, cursor: { submittedAt: new Date(r.submitted_at), analysisId: analysis.analysisId } };
    });
  }

  private write(db: SqlTx, a: Analysis, onConflict: string, webhookUrl?: string) {
    return db.query<{ webhook_url: string | null }>(
      `INSERT INTO analyses (analysis_id, tenant_id, content_sha256, status, analysis, submitted_at, webhook_url, verdict, max_forgery_score)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (analysis_id) ${onConflict} RETURNING webhook_url`,
      [
        a.analysisId,
        a.tenantId,
        a.contentSha256,
        a.status,
        toBinary(AnalysisSchema, withoutUrls(a)),
        (a.submittedAt ? timestampDate(a.submittedAt) : new Date()).toISOString(),
        webhookUrl ?? null,
        a.verdict,
        a.maxForgeryScore,
      ],
    );
  }
}

/** ListAnalyses filters (0 = any). */
export interface AnalysisListFilter {
  status: number;
  verdict: number;
  minForgeryScore: number;
}

/** Where a page of ListAnalyses ended. */
export interface ListCursor {
  submittedAt: Date;
  analysisId: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A copy with every presigned URL removed: they are bearer credentials and expire. */
export function withoutUrls(a: Analysis): Analysis {
  if (!a.artifacts) return a;
  const copy = clone(AnalysisSchema, a);
  const { original, mask, heatmap, overlay } = copy.artifacts!;
  for (const ref of [original, mask, heatmap, overlay]) {
    if (ref) {
      ref.url = '';
      ref.urlExpiresAt = undefined;
    }
  }
  return copy;
}
