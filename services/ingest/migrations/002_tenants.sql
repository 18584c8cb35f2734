-- Tenants and their API keys. A key is shown once, when it is made; only its HMAC (keyed with
-- the deployment's pepper, TAMPERTRACE_API_KEY_PEPPER) is stored, so a copy of this table does
-- not let anyone call the API.
CREATE TABLE IF NOT EXISTS tenants (
  tenant_id      text PRIMARY KEY CHECK (tenant_id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  created_at     timestamptz NOT NULL DEFAULT now(),
  -- Submissions per second (token bucket refill rate) and burst; analyses PENDING at once.
  rate_per_s     real NOT NULL DEFAULT 50,
  burst          integer NOT NULL DEFAULT 100,
  max_in_flight  integer NOT NULL DEFAULT 1000,
  -- Default webhook for final results, and the secret that signs webhooks and stream tokens,
  -- AES-256-GCM encrypted with a key derived from the pepper (it must be recoverable to sign).
  webhook_url    text,
  signing_secret bytea NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
  key_id      text PRIMARY KEY,
  tenant_id   text NOT NULL REFERENCES tenants (tenant_id),
  key_hash    bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);

-- Admission control counts a tenant's analyses in flight.
CREATE INDEX IF NOT EXISTS analyses_pending ON analyses (tenant_id) WHERE status = 1;
-- Per-request webhook, kept with the analysis so whichever replica sees the result can send it.
ALTER TABLE analyses ADD COLUMN IF NOT EXISTS webhook_url text;
-- Last stage finished while PENDING (tampertrace.v1.Stage), for WatchAnalysis.
ALTER TABLE analyses ADD COLUMN IF NOT EXISTS stage smallint NOT NULL DEFAULT 0;
