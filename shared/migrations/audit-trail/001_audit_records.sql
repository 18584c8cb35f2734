-- Audit records: one row per stage event, append-only, hash-chained per tenant.
-- The same file runs on PGlite (embedded) and PostgreSQL (distributed).
CREATE TABLE IF NOT EXISTS audit_records (
  id                bigserial PRIMARY KEY,
  event_id          text        NOT NULL UNIQUE,   -- redelivery of an event inserts nothing
  tenant_id         text        NOT NULL,
  analysis_id       text        NOT NULL,
  content_sha256    text        NOT NULL,
  stage             text        NOT NULL,          -- Stage enum name, e.g. FACE_DETECTION
  status            text        NOT NULL,          -- AnalysisStatus enum name
  verdict           text,                          -- Verdict enum name, final records only
  max_forgery_score real,
  models            jsonb       NOT NULL DEFAULT '[]',
  faces             jsonb       NOT NULL DEFAULT '[]',  -- boxes, scores, regions (proto3 JSON)
  regions           text[]      NOT NULL DEFAULT '{}',  -- names of regions inside the mask, for filtering
  explanation_text  text,
  explanation_facts jsonb,
  error_code        text,
  error_message     text,
  source_name       text,
  event_time        timestamptz NOT NULL,
  recorded_time     timestamptz NOT NULL DEFAULT now(),
  sequence          bigint      NOT NULL,          -- 1, 2, 3 ... per tenant
  prev_hash         text        NOT NULL,          -- record_hash of sequence - 1 (64 zeros for the first)
  record_hash       text        NOT NULL,          -- sha256(prev_hash || canonical JSON of this record)
  UNIQUE (tenant_id, sequence)
);

CREATE INDEX IF NOT EXISTS audit_records_tenant_analysis ON audit_records (tenant_id, analysis_id, sequence);
CREATE INDEX IF NOT EXISTS audit_records_tenant_content ON audit_records (tenant_id, content_sha256, sequence);
CREATE INDEX IF NOT EXISTS audit_records_tenant_time ON audit_records (tenant_id, event_time);

-- The application never changes a record; the database refuses it too.
CREATE OR REPLACE FUNCTION audit_records_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_records is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_records_no_update ON audit_records;
CREATE TRIGGER audit_records_no_update BEFORE UPDATE OR DELETE ON audit_records
  FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
