// Reads of a tenant's analyses as they stand: one by id (GetAnalysis), pages of them, newest first
// (ListAnalyses, with opaque page tokens), and the earlier analyses of the same picture
// (GetRelatedAnalyses). Another tenant's analysis reads as absent.
import { create } from '@bufbuild/protobuf';
import { CallerError } from '@tampertrace/shared';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { GetRelatedAnalysesResponseSchema, ListAnalysesResponseSchema, type GetRelatedAnalysesResponse, type ListAnalysesRequest, type ListAnalysesResponse } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import type { AnalysesStore, ListCursor } from './analyses.ts';
import type { Artifacts } from './artifacts.ts';

const LIST_PAGE_DEFAULT = 50;
const LIST_PAGE_MAX = 200;

export class Listing {
  constructor(
    private readonly analyses: AnalysesStore,
    private readonly artifacts: Artifacts,
  ) {}

  /** The analysis as it stands (PENDING while in flight), or undefined when this tenant has none with that id. */
  async get(tenantId: string, analysisId: string): Promise<Analysis | undefined> {
    const a = await this.analyses.get(tenantId, analysisId);
    return a && this.artifacts.withUrls(a);
  }

  /** One page of the tenant's analyses, newest first (ListAnalyses). */
  async list(tenantId: string, req: ListAnalysesRequest): Promise<ListAnalysesResponse> {
    if (!(req.minForgeryScore >= 0 && req.minForgeryScore <= 1)) throw new CallerError(ErrorCode.INVALID_MESSAGE, `min_forgery_score must be in [0, 1], got ${req.minForgeryScore}`);
    const size = Math.min(req.pageSize || LIST_PAGE_DEFAULT, LIST_PAGE_MAX);
    const after = req.pageToken ? cursorOf(req.pageToken) : undefined;
    // One row more than the page says whether another page follows.
    const rows = await this.analyses.list(tenantId, req, size + 1, after);
    const page = rows.slice(0, size);
    const nextPageToken = rows.length > size ? tokenOf(page.at(-1)!.cursor) : '';
    return create(ListAnalysesResponseSchema, { analyses: await Promise.all(page.map((r) => this.artifacts.withUrls(r.analysis))), nextPageToken });
  }

  /**
   * The tenant's earlier analyses of the same picture as one of theirs (GetRelatedAnalyses), each
   * as it stands now; undefined for an unknown id or another tenant's. The links come from the
   * analysis itself (the provenance stage looks only within its tenant), and every related
   * analysis is read within the caller's tenant too.
   */
  async related(tenantId: string, analysisId: string): Promise<GetRelatedAnalysesResponse | undefined> {
    const a = await this.analyses.get(tenantId, analysisId);
    if (!a) return undefined;
    const links = a.provenance?.related ?? [];
    const now = await Promise.all(links.map((r) => this.get(tenantId, r.analysisId)));
    return create(GetRelatedAnalysesResponseSchema, { related: links, analyses: now.filter((x): x is Analysis => x !== undefined) });
  }
}

/** A ListAnalyses page token: where the previous page ended (opaque to callers). */
export function tokenOf(c: ListCursor): string {
  return Buffer.from(`${c.submittedAt.getTime()}.${c.analysisId}`).toString('base64url');
}

/** The cursor of a page token; anything that is not one this service made is the caller's INVALID_MESSAGE. */
export function cursorOf(token: string): ListCursor {
  const m = /^(\d{1,16})\.([0-9a-f-]{36})$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
  const submittedAt = m ? new Date(Number(m[1])) : undefined;
  // Well-formed digits can still be past the last Date (8.64e15 ms), which toISOString refuses.
  if (!m || !submittedAt || Number.isNaN(submittedAt.getTime())) throw new CallerError(ErrorCode.INVALID_MESSAGE, 'not a ListAnalyses page token');
  return { submittedAt, analysisId: m[2] };
}
