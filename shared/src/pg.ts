// PostgreSQL (node-postgres pool) behind the SqlClient interface, for the distributed mode.
// Connection failures surface as pg's own errors with err.code ECONNREFUSED etc., which
// classify() in @tampertrace/shared treats as retriable.
import pg from 'pg';
import type { SqlClient, SqlTx } from './sql.ts';
import { observeSql, sqlOperation } from './observe.ts';

export interface PostgresOptions {
  /** Pool size (default 5). */
  max?: number;
  /** Extra pool settings, e.g. `options: '-c search_path=it_x'` for a schema per connection. */
  pool?: Omit<pg.PoolConfig, 'connectionString'>;
}

/** Opens a small pool on `url` (postgres://user:pass@host:port/db) and checks that it answers. */
export async function openPostgres(url: string, opts: PostgresOptions = {}): Promise<SqlClient> {
  const pool = new pg.Pool({
    max: opts.max ?? 5,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    ...opts.pool,
    connectionString: url,
  });
  // An idle client that loses its connection (server restart) emits 'error' on the pool; without a
  // listener that would crash the process. The pool drops that client; the next query reconnects.
  pool.on('error', () => {});
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }

  const query = async <T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }> => {
    const res = await observeSql('postgresql', sqlOperation(sql), () => pool.query(sql, params));
    return { rows: res.rows as T[] };
  };

  const transaction = async <R>(fn: (tx: SqlTx) => Promise<R>): Promise<R> => {
    const conn = await pool.connect();
    let broken = false;
    try {
      await conn.query('BEGIN');
      const result = await fn({
        query: async <T>(sql: string, params?: unknown[]) => ({ rows: (await conn.query(sql, params)).rows as T[] }),
        exec: (sql: string) => conn.query(sql),
      });
      await conn.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await conn.query('ROLLBACK');
      } catch {
        broken = true; // connection is unusable: destroy it instead of returning it to the pool
      }
      throw err;
    } finally {
      conn.release(broken);
    }
  };

  const client: SqlClient = {
    query,
    // Without parameters node-postgres uses the simple query protocol, which runs several
    // statements (and $$-quoted function bodies) in one call, like a migration file.
    exec: (sql: string) => pool.query(sql),
    transaction: <R>(fn: (tx: SqlTx) => Promise<R>): Promise<R> => observeSql('postgresql', 'TRANSACTION', () => transaction(fn)),
    close: () => pool.end(),
  };

  return client;
}
