-- The audit trail's second schema step: trace id and submitter on records, a versioned record
-- hash, model versions for filtering, query indexes, checkpoints and pruning up to a checkpoint.
-- Re-runnable like 001 (every start applies it), on PGlite and PostgreSQL 15 alike.

ALTER TABLE audit_records ADD COLUMN IF NOT EXISTS trace_id text;      -- W3C trace id (32 hex) of the event's message
ALTER TABLE audit_records ADD COLUMN IF NOT EXISTS submitted_by text;  -- who submitted the analysis (API key id), when known
-- How record_hash was computed (store.ts, recordHash): 1 for rows written before this file
-- (and by older binaries during a rolling upgrade, which do not set it), 2 adds recorded_time.
ALTER TABLE audit_records ADD COLUMN IF NOT EXISTS hash_version smallint NOT NULL DEFAULT 1;

-- Distinct model versions of a record's models, for filtering. A generated column:
-- existing rows get it from the table rewrite (an UPDATE would be refused), and no writer can
-- store one that disagrees with `models` (which is what the hash covers).
CREATE OR REPLACE FUNCTION audit_model_versions(models jsonb) RETURNS text[] AS $$
  SELECT coalesce(array_agg(DISTINCT v ORDER BY v), '{}')
  FROM (SELECT m ->> 'version' AS v
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(models) = 'array' THEN models ELSE '[]' END) AS m) s
  WHERE v IS NOT NULL AND v <> ''
$$ LANGUAGE sql IMMUTABLE PARALLEL SAFE;

ALTER TABLE audit_records ADD COLUMN IF NOT EXISTS model_versions text[]
  GENERATED ALWAYS AS (audit_model_versions(models)) STORED;

-- query() orders newest first by (event_time, sequence) within a tenant. Each equality filter has
-- a btree that yields that order directly (tenant, value, event_time, sequence: read backwards);
-- the time range and the unfiltered listing use 001's (tenant_id, event_time) index, a minimum
-- score its own btree. The planner picks between them (and combines them) per query.
CREATE INDEX IF NOT EXISTS audit_records_tenant_status ON audit_records (tenant_id, status, event_time, sequence);
CREATE INDEX IF NOT EXISTS audit_records_tenant_stage ON audit_records (tenant_id, stage, event_time, sequence);
CREATE INDEX IF NOT EXISTS audit_records_tenant_verdict ON audit_records (tenant_id, verdict, event_time, sequence)
  WHERE verdict IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_records_tenant_error ON audit_records (tenant_id, error_code, event_time, sequence)
  WHERE error_code IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_records_tenant_score ON audit_records (tenant_id, max_forgery_score)
  WHERE max_forgery_score IS NOT NULL;

-- Array filters (a region among the named ones, a version among the models') get the same
-- ordered access through one row per (record, element): a GIN index on the arrays would find the
-- matches but not in time order, so each page would fetch and sort every match of the tenant.
-- Derived from audit_records by the triggers below (any writer, the bulk loader included); not
-- evidence itself (verify reads audit_records only). Created and back-filled once.
DO $$
BEGIN
  IF to_regclass('audit_record_tags') IS NULL THEN
    CREATE TABLE audit_record_tags (
      tenant_id  text        NOT NULL,
      tag        text        NOT NULL,   -- 'region:<name>' or 'model_version:<version>'
      event_time timestamptz NOT NULL,   -- the record's, so that this index yields query() order
      sequence   bigint      NOT NULL,
      PRIMARY KEY (tenant_id, tag, event_time, sequence)
    );
    INSERT INTO audit_record_tags (tenant_id, tag, event_time, sequence)
    SELECT r.tenant_id, x.tag, r.event_time, r.sequence
    FROM audit_records r
    CROSS JOIN LATERAL (SELECT 'region:' || e FROM unnest(r.regions) e
                        UNION SELECT 'model_version:' || e FROM unnest(r.model_versions) e) AS x(tag);
  END IF;
END;
$$;

CREATE OR REPLACE FUNCTION audit_records_tag() RETURNS trigger AS $$
BEGIN
  INSERT INTO audit_record_tags (tenant_id, tag, event_time, sequence)
  SELECT r.tenant_id, x.tag, r.event_time, r.sequence
  FROM audit_new_rows r
  CROSS JOIN LATERAL (SELECT 'region:' || e FROM unnest(r.regions) e
                      UNION SELECT 'model_version:' || e FROM unnest(r.model_versions) e) AS x(tag);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Only a prune deletes records (see audit_records_append_only); their tags go with them.
CREATE OR REPLACE FUNCTION audit_records_untag() RETURNS trigger AS $$
BEGIN
  DELETE FROM audit_record_tags g
  USING audit_old_rows r
  CROSS JOIN LATERAL (SELECT 'region:' || e FROM unnest(r.regions) e
                      UNION SELECT 'model_version:' || e FROM unnest(r.model_versions) e) AS x(tag)
  WHERE g.tenant_id = r.tenant_id AND g.tag = x.tag AND g.event_time = r.event_time AND g.sequence = r.sequence;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_records_tag ON audit_records;
CREATE TRIGGER audit_records_tag AFTER INSERT ON audit_records
  REFERENCING NEW TABLE AS audit_new_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_records_tag();
DROP TRIGGER IF EXISTS audit_records_untag ON audit_records;
CREATE TRIGGER audit_records_untag AFTER DELETE ON audit_records
  REFERENCING OLD TABLE AS audit_old_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_records_untag();

-- Checkpoints: the head of a tenant's chain at a moment, themselves hash-chained per tenant so
-- that an exported copy of the latest one vouches for all before it.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  tenant_id             text        NOT NULL,
  checkpoint_sequence   bigint      NOT NULL,   -- 1, 2, 3 ... per tenant
  record_sequence       bigint      NOT NULL,   -- the chain head it covers (= records ever appended)
  head_hash             text        NOT NULL,   -- record_hash of that record
  created_time          timestamptz NOT NULL,
  prev_checkpoint_hash  text        NOT NULL,   -- checkpoint_hash of checkpoint_sequence - 1 (64 zeros for the first)
  checkpoint_hash       text        NOT NULL,   -- sha256(prev_checkpoint_hash || canonical JSON of this checkpoint)
  PRIMARY KEY (tenant_id, checkpoint_sequence),
  UNIQUE (tenant_id, record_sequence)
);

-- Prunes: each deleted the prefix of a tenant's chain up to (and including) a checkpoint's record.
-- The latest one is where verification of the remaining chain starts.
CREATE TABLE IF NOT EXISTS audit_prunes (
  tenant_id            text        NOT NULL,
  checkpoint_sequence  bigint      NOT NULL,
  pruned_time          timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, checkpoint_sequence),
  FOREIGN KEY (tenant_id, checkpoint_sequence) REFERENCES audit_checkpoints (tenant_id, checkpoint_sequence)
);

-- audit_records refuses UPDATE and DELETE (001's trigger, same name and message), except the
-- deletion of rows covered by a recorded prune, inside the transaction that prunes (the store
-- sets tampertrace.audit_prune to the tenant id for that transaction only).
CREATE OR REPLACE FUNCTION audit_records_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE'
     AND current_setting('tampertrace.audit_prune', true) = OLD.tenant_id
     AND EXISTS (SELECT 1 FROM audit_prunes p
                 JOIN audit_checkpoints c USING (tenant_id, checkpoint_sequence)
                 WHERE p.tenant_id = OLD.tenant_id AND c.record_sequence >= OLD.sequence) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_records is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
-- Its tables resolve in this schema, never in pg_temp: a session's temporary audit_prunes must not
-- be able to vouch for a deletion. (CREATE OR REPLACE above reset this; it is set again each run.)
DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION audit_records_append_only() SET search_path = %I, pg_temp', current_schema());
END;
$$;

-- Checkpoints and prunes are never changed or removed, and no table of the trail is truncated.
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_records_no_truncate ON audit_records;
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

DROP TRIGGER IF EXISTS audit_checkpoints_no_update ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
DROP TRIGGER IF EXISTS audit_checkpoints_no_truncate ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

DROP TRIGGER IF EXISTS audit_prunes_no_update ON audit_prunes;
CREATE TRIGGER audit_prunes_no_update BEFORE UPDATE OR DELETE ON audit_prunes
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
DROP TRIGGER IF EXISTS audit_prunes_no_truncate ON audit_prunes;
CREATE TRIGGER audit_prunes_no_truncate BEFORE TRUNCATE ON audit_prunes
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
