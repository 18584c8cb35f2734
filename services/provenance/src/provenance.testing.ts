// A provenance stage on a temporary folder store and an in-memory PGlite, for the tests and the bench.
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import { Bucket, FsObjectStore, ObjectKey, sha256Hex, uuidv7, type SqlClient } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { EventMetaSchema, ImageIngestedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import type { Provenance } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { provenanceStage } from './stage.ts';
import { HashStore } from './store.ts';

export const PHOTOS_DIR = path.resolve(import.meta.dirname, '..', '..', '..', 'testdata', 'photos');
export const LIMITS = { maxInputBytes: 50 * 1024 * 1024, maxPixels: 100_000_000, minSide: 16 };

export interface Harness {
  sql: SqlClient;
  hashes: HashStore;
  /** Runs the stage on these bytes as a new analysis of `tenant`; its id and provenance. */
  check(tenant: string, bytes: Uint8Array, sourceName?: string, analysisId?: string): Promise<{ analysisId: string; provenance: Provenance }>;
  close(): Promise<void>;
}

export async function harness(sql?: SqlClient): Promise<Harness> {
  const db = sql ?? (await openPglite(undefined));
  const hashes = new HashStore(db);
  await hashes.migrate();
  const store = new FsObjectStore(await mkdtemp(path.join(os.tmpdir(), 'tt-provenance-')));
  const stage = provenanceStage({ store, hashes, limits: LIMITS });
  return {
    sql: db,
    hashes,
    async check(tenant, bytes, sourceName = '', analysisId = uuidv7()) {
      const sha = sha256Hex(bytes);
      const original = await store.put(Bucket.originals, ObjectKey.original(tenant, sha), bytes, 'application/octet-stream');
      const meta = create(EventMetaSchema, { analysisId, tenantId: tenant, contentSha256: sha, eventId: `${analysisId}:ingest`, submittedAt: timestampNow(), sourceName });
      const out = await stage.handle(create(ImageIngestedSchema, { meta, original }));
      return { analysisId, provenance: out.provenance! };
    },
    close: () => db.close(),
  };
}
