-- The results view of the ingest service: one row per analysis, PENDING from the moment Submit
-- returns, replaced once by the final Analysis from the results topic. It is what GetAnalysis
-- reads, across gateway restarts and replicas. (The audit trail, not this table, is the record
-- of decisions; this one may be pruned.)
CREATE TABLE IF NOT EXISTS analyses (
  analysis_id    uuid PRIMARY KEY,
  tenant_id      text NOT NULL,
  content_sha256 text NOT NULL,
  -- tampertrace.v1.AnalysisStatus: 1 PENDING, 2 COMPLETED, 3 NO_FACE, 4 REJECTED, 5 FAILED
  status         smallint NOT NULL,
  -- tampertrace.v1.Analysis, protobuf binary, without presigned URLs (they expire)
  analysis       bytea NOT NULL,
  submitted_at   timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Deduplication of a tenant's resubmitted bytes: newest analysis of a content hash first.
CREATE INDEX IF NOT EXISTS analyses_tenant_content ON analyses (tenant_id, content_sha256, submitted_at DESC);
