-- ListAnalyses: a tenant's analyses newest first, filtered by verdict and score. Both columns
-- copy fields of the stored Analysis so the filters need no decoding; NULL marks a row written
-- before this migration, which AnalysesStore.migrate fills in from the stored message.
ALTER TABLE analyses ADD COLUMN IF NOT EXISTS verdict smallint;
ALTER TABLE analyses ADD COLUMN IF NOT EXISTS max_forgery_score real;
CREATE INDEX IF NOT EXISTS analyses_tenant_newest ON analyses (tenant_id, submitted_at DESC, analysis_id DESC);
