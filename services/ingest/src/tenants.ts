// Tenants and API keys (migrations/002_tenants.sql). A key looks like `tt_<key id>_<secret>`:
// the id finds the row, the HMAC of the whole key with the pepper proves it.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SqlClient } from '@tampertrace/shared';

export interface Tenant {
  tenantId: string;
  ratePerS: number;
  burst: number;
  maxInFlight: number;
  webhookUrl?: string;
  /** Signs webhooks and verifies stream submissions; never logged. */
  signingSecret: Buffer;
  /** The API key the caller authenticated with (set by authenticate()). */
  keyId?: string;
}

export class TenantError extends Error {}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const KEY = /^tt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** Revocations reach every replica within this long. */
const CACHE_MS = 5_000;

export class TenantStore {
  private readonly encKey: Buffer;
  private readonly cache = new Map<string, { tenant: Tenant | undefined; until: number }>();

  constructor(
    private readonly db: SqlClient,
    private readonly pepper: string,
  ) {
    if (pepper.length < 16) throw new Error('the API key pepper must be at least 16 characters');
    this.encKey = Buffer.from(hkdfSync('sha256', pepper, 'tampertrace', 'signing-secret-encryption', 32));
  }

  /** Creates a tenant and its first API key; the key is returned once and never stored. */
  async create(tenantId: string, opts: { ratePerS?: number; burst?: number; maxInFlight?: number; webhookUrl?: string } = {}): Promise<{ tenant: Tenant; apiKey: string; keyId: string }> {
    if (!NAME.test(tenantId)) throw new TenantError(`tenant name "${tenantId}" must be 1-63 of a-z, 0-9 and '-', starting with a letter or digit`);
    const signingSecret = randomBytes(32);
    const inserted = await this.db.query(
      `INSERT INTO tenants (tenant_id, rate_per_s, burst, max_in_flight, webhook_url, signing_secret)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO NOTHING RETURNING tenant_id`,
      [tenantId, opts.ratePerS ?? 50, opts.burst ?? 100, opts.maxInFlight ?? 1000, opts.webhookUrl ?? null, this.seal(signingSecret)],
    );
    if (inserted.rows.length === 0) throw new TenantError(`tenant "${tenantId}" exists already`);
    const { apiKey, keyId } = await this.addKey(tenantId);
    const tenant = (await this.get(tenantId))!;
    return { tenant, apiKey, keyId };
  }

  /** A new API key for an existing tenant (keys are rotated by adding one, then revoking the old). */
  async addKey(tenantId: string): Promise<{ apiKey: string; keyId: string }> {
    const keyId = randomBytes(8).toString('hex');
    const apiKey = `tt_${keyId}_${randomBytes(32).toString('base64url')}`;
    await this.db.query('INSERT INTO api_keys (key_id, tenant_id, key_hash) VALUES ($1, $2, $3)', [keyId, tenantId, this.hash(apiKey)]);
    return { apiKey, keyId };
  }

  async revoke(keyId: string): Promise<boolean> {
    const res = await this.db.query('UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING key_id', [keyId]);
    this.cache.clear();
    return res.rows.length > 0;
  }

  async list(): Promise<Array<{ tenantId: string; keys: Array<{ keyId: string; createdAt: Date; revoked: boolean }> }>> {
    const res = await this.db.query<{ tenant_id: string; key_id: string | null; created_at: string | null; revoked_at: string | null }>(
      `SELECT t.tenant_id, k.key_id, k.created_at, k.revoked_at FROM tenants t LEFT JOIN api_keys k USING (tenant_id) ORDER BY t.tenant_id, k.created_at`,
    );
    const out = new Map<string, Array<{ keyId: string; createdAt: Date; revoked: boolean }>>();
    for (const r of res.rows) {
      const keys = out.get(r.tenant_id) ?? [];
      if (r.key_id) keys.push({ keyId: r.key_id, createdAt: new Date(r.created_at!), revoked: r.revoked_at !== null });
      out.set(r.tenant_id, keys);
    }
    return [...out].map(([tenantId, keys]) => ({ tenantId, keys }));
  }

  async get(tenantId: string): Promise<Tenant | undefined> {
    const res = await this.db.query<Record<string, unknown>>('SELECT * FROM tenants WHERE tenant_id = $1', [tenantId]);
    return res.rows[0] && this.toTenant(res.rows[0]);
  }

  /** The tenant of a valid, unrevoked key; undefined for anything else (which one is not told). */
  async authenticate(apiKey: string | undefined): Promise<Tenant | undefined> {
    const m = apiKey ? KEY.exec(apiKey) : null;
    if (!m || !apiKey) return undefined;
    const hit = this.cache.get(apiKey);
    if (hit && hit.until > Date.now()) return hit.tenant;
    const res = await this.db.query<Record<string, unknown> & { key_hash: Uint8Array }>(
      `SELECT k.key_hash, t.* FROM api_keys k JOIN tenants t USING (tenant_id) WHERE k.key_id = $1 AND k.revoked_at IS NULL`,
      [m[1]],
    );
    const row = res.rows[0];
    const ok = row !== undefined && timingSafeEqual(Buffer.from(row.key_hash), this.hash(apiKey));
    const tenant = ok ? { ...this.toTenant(row), keyId: m[1] } : undefined;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(apiKey, { tenant, until: Date.now() + CACHE_MS });
    return tenant;
  }

  private hash(apiKey: string): Buffer {
    return createHmac('sha256', this.pepper).update(apiKey).digest();
  }

  private seal(secret: Buffer): Buffer {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.encKey, iv);
    const body = Buffer.concat([c.update(secret), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), body]);
  }

  private open(sealed: Buffer): Buffer {
    const d = createDecipheriv('aes-256-gcm', this.encKey, sealed.subarray(0, 12));
    d.setAuthTag(sealed.subarray(12, 28));
    return Buffer.concat([d.update(sealed.subarray(28)), d.final()]);
  }

  private toTenant(r: Record<string, unknown>): Tenant {
    return {
      tenantId: r.tenant_id as string,
      ratePerS: Number(r.rate_per_s),
      burst: Number(r.burst),
      maxInFlight: Number(r.max_in_flight),
      webhookUrl: (r.webhook_url as string | null) ?? undefined,
      signingSecret: this.open(Buffer.from(r.signing_secret as Uint8Array)),
    };
  }
}
