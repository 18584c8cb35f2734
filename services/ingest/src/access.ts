// Who may call, and how much: API key -> tenant, then per-tenant admission (a token bucket for
// the submission rate, a cap on analyses in flight). Refusals are CallerErrors, mapped once to
// UNAUTHENTICATED / RESOURCE_EXHAUSTED by the gRPC and HTTP adapters.
import { CallerError, type SqlClient } from '@tampertrace/shared';
import { ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { Tenant, TenantStore } from './tenants.ts';

interface Bucket {
  tokens: number;
  at: number;
}

export class Access {
  // Per replica: with N ingest replicas a tenant gets up to N x its rate. The in-flight cap is
  // read from the shared table, so it holds across replicas; this look is only the early, cheap
  // refusal: the cap is enforced atomically when the analysis is recorded (admitPending).
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly tenants: TenantStore,
    private readonly db: SqlClient,
  ) {}

  async tenantOf(apiKey: string | undefined): Promise<Tenant> {
    const t = await this.tenants.authenticate(apiKey);
    if (!t) throw new CallerError(ErrorCode.UNAUTHENTICATED, apiKey ? 'the API key is not valid' : 'an API key is required (authorization: Bearer <key>)');
    return t;
  }

  /** Takes `n` submissions from the tenant's allowance, or refuses with a retry hint. */
  async admit(t: Tenant, n = 1): Promise<void> {
    const now = Date.now();
    const b = this.buckets.get(t.tenantId) ?? { tokens: t.burst, at: now };
    b.tokens = Math.min(t.burst, b.tokens + ((now - b.at) / 1000) * t.ratePerS);
    b.at = now;
    this.buckets.set(t.tenantId, b);
    if (b.tokens < n) {
      throw new CallerError(ErrorCode.QUOTA_EXCEEDED, `rate limit of ${t.ratePerS}/s reached`, ((n - b.tokens) / t.ratePerS) * 1000);
    }
    const res = await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM analyses WHERE tenant_id = $1 AND status = ${AnalysisStatus.PENDING}`, [t.tenantId]);
    if (res.rows[0].n + n > t.maxInFlight) {
      throw new CallerError(ErrorCode.QUOTA_EXCEEDED, `${res.rows[0].n} analyses in flight; the maximum is ${t.maxInFlight}`, 1000);
    }
    b.tokens -= n;
  }
}
