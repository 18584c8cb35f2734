// The database seam: PGlite in embedded mode and PostgreSQL (pg) in distributed mode answer the
// same SqlClient, and each service that owns tables keeps its schema in its own migrations/.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** The little that both PGlite and node-postgres offer alike. */
export interface SqlClient {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(sql: string): Promise<unknown>;
  /** Runs fn in one transaction on one connection. */
  transaction<R>(fn: (tx: SqlTx) => Promise<R>): Promise<R>;
  close(): Promise<void>;
}

/** What a transaction's body may do. */
export type SqlTx = Pick<SqlClient, 'query' | 'exec'>;

/**
 * Runs every `*.sql` file of a folder in name order. The files are written to be re-runnable
 * (IF NOT EXISTS, CREATE OR REPLACE), so every start applies them; an advisory lock keeps two
 * replicas that start together from racing on the same DDL.
 */
export async function runMigrations(db: SqlClient, dir: string): Promise<void> {
  const files = (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort();
  const sqls = await Promise.all(files.map((f) => readFile(path.join(dir, f), 'utf8')));
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext('tampertrace-migrations'))");
    for (const sql of sqls) await tx.exec(sql);
  });
}
