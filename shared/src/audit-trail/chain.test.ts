// Checkpoints, verification and pruning on PGlite (the same checks run on PostgreSQL in
// store.pg.integration.test.ts).
import { test } from 'node:test';
import { openPglite } from '../pglite.ts';
import type { SqlClient } from '../index.ts';
import { AuditStore } from './store.ts';
import { defineChainTests } from './chain.testing.ts';

const open: SqlClient[] = [];

defineChainTests(
  (name, fn) => test(name, async () => {
    try {
      await fn();
    } finally {
      await Promise.all(open.splice(0).map((db) => db.close()));
    }
  }),
  async () => {
    const db = await openPglite(undefined);
    open.push(db);
    const store = new AuditStore(db);
    await store.migrate();
    return { db, store };
  },
);
