// Embedded PostgreSQL (PGlite) behind the SqlClient interface, stored under $TAMPERTRACE_HOME/db.
import { PGlite } from '@electric-sql/pglite';
import type { SqlClient, SqlTx } from './sql.ts';
import { observeSql, sqlOperation } from './observe.ts';

export async function openPglite(dataDir: string | undefined): Promise<SqlClient> {
  const db = await PGlite.create(dataDir);
  const client: SqlClient = {
    query: <T>(sql: string, params?: unknown[]) => observeSql('pglite', sqlOperation(sql), () => db.query<T>(sql, params)),
    exec: (sql: string) => db.exec(sql),
    transaction: <R>(fn: (tx: SqlTx) => Promise<R>) =>
      observeSql('pglite', 'TRANSACTION', () => db.transaction((tx) => fn({ query: async <T>(sql: string, params?: unknown[]) => tx.query<T>(sql, params), exec: (sql: string) => tx.exec(sql) }))),
    close: () => db.close(),
  };
  return client;
}
