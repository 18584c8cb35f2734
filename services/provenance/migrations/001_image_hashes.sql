-- The provenance service's memory of pictures: per tenant, the perceptual hashes of every analysed
-- image, looked up by multi-index hashing: each 64-bit hash is split into four interleaved 16-bit
-- chunks with one index each; the candidates of a lookup are the rows with a chunk equal to the
-- query's (every hash within 3 bits has one, most within 7 do), and the exact Hamming distance is
-- checked on those. Works the same on PostgreSQL and PGlite.
CREATE TABLE IF NOT EXISTS image_hashes (
  tenant_id   text NOT NULL,
  analysis_id text NOT NULL,
  -- 0: the whole image inside its uniform borders; 1: its centre (5% cut from each side), so that
  -- a copy cropped by up to about 10% around the centre still matches.
  kind        smallint NOT NULL,
  -- The 64-bit hash as a signed integer (bit 63 is the sign bit).
  hash        bigint NOT NULL,
  c0          integer NOT NULL,
  c1          integer NOT NULL,
  c2          integer NOT NULL,
  c3          integer NOT NULL,
  PRIMARY KEY (tenant_id, analysis_id, kind)
);
-- Covering indexes: a lookup reads only the indexes.
CREATE INDEX IF NOT EXISTS image_hashes_c0 ON image_hashes (tenant_id, c0) INCLUDE (analysis_id, hash);
CREATE INDEX IF NOT EXISTS image_hashes_c1 ON image_hashes (tenant_id, c1) INCLUDE (analysis_id, hash);
CREATE INDEX IF NOT EXISTS image_hashes_c2 ON image_hashes (tenant_id, c2) INCLUDE (analysis_id, hash);
CREATE INDEX IF NOT EXISTS image_hashes_c3 ON image_hashes (tenant_id, c3) INCLUDE (analysis_id, hash);

-- What a re-post links to: each hashed analysis, its submission facts and, once the analysis
-- finished, its final status, verdict and score (from the results topic).
CREATE TABLE IF NOT EXISTS hashed_analyses (
  tenant_id         text NOT NULL,
  analysis_id       text NOT NULL,
  submitted_at      timestamptz,
  source_name       text NOT NULL DEFAULT '',
  -- tampertrace.v1.AnalysisStatus and Verdict numbers; 1 (PENDING) and 0 until it finished.
  status            smallint NOT NULL DEFAULT 1,
  verdict           smallint NOT NULL DEFAULT 0,
  max_forgery_score real NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, analysis_id)
);
