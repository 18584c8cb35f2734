// Tamper evidence for a tenant's hash chain: checkpoints (themselves hash-chained), verification
// of the chain against them, and pruning of the chain's prefix up to a checkpoint.
import { CallerError, InternalError, InvalidInputError, sha256Hex, type SqlClient, type SqlTx } from '../index.ts';
import { ErrorCode } from '../gen/tampertrace/v1/common_pb.ts';
import { GENESIS, ROW_COLUMNS, canonicalJson, expectedHash, toRow } from './row.ts';

/** A checkpoint as exported: plain JSON, to be kept outside the database. */
export interface AuditCheckpoint {
  tenantId: string;
  /** 1, 2, 3 ... per tenant. */
  checkpointSequence: number;
  /** The chain head it covers: the sequence of the tenant's last record then (= records appended so far). */
  recordSequence: number;
  /** record_hash of that record. */
  headHash: string;
  /** When it was taken, ISO 8601. */
  createdTime: string;
  /** checkpointHash of the previous checkpoint (64 zeros for the first). */
  prevCheckpointHash: string;
  /** sha256(prevCheckpointHash || canonical JSON of the fields above but prevCheckpointHash). */
  checkpointHash: string;
}

export type VerifyResult = { ok: true; count: number } | { ok: false; sequence: number; reason: string };

export interface VerifyOptions {
  /** First record to check (default: the first one kept, i.e. after the latest prune). */
  fromSequence?: number;
  /** Last record to check (default: the head, or the latest checkpoint's record if that is further). */
  toSequence?: number;
  /** Checkpoints kept elsewhere (exportCheckpoints): each must match the stored one and its record. */
  checkpoints?: AuditCheckpoint[];
  /** Records per query (default 10 000). */
  batchSize?: number;
}

export const VERIFY_BATCH = 10_000;

const CHECKPOINT_COLUMNS = 'tenant_id, checkpoint_sequence, record_sequence, head_hash, created_time, prev_checkpoint_hash, checkpoint_hash';

export function checkpointHash(cp: Omit<AuditCheckpoint, 'checkpointHash'>): string {
  const { tenantId, checkpointSequence, recordSequence, headHash, createdTime } = cp;
  return sha256Hex(cp.prevCheckpointHash + canonicalJson({ tenantId, checkpointSequence, recordSequence, headHash, createdTime }));
}

function toCheckpoint(r: Record<string, unknown>): AuditCheckpoint {
  return {
    tenantId: r.tenant_id as string,
    checkpointSequence: Number(r.checkpoint_sequence),
    recordSequence: Number(r.record_sequence),
    headHash: r.head_hash as string,
    createdTime: new Date(r.created_time as string).toISOString(),
    prevCheckpointHash: r.prev_checkpoint_hash as string,
    checkpointHash: r.checkpoint_hash as string,
  };
}

/** Serialises appends, checkpoints and prunes of one tenant (until the transaction ends). */
export async function lockTenant(tx: SqlTx, tenantId: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [tenantId]);
}

/** The chain head to append after: the last record, or after a prune of everything the pruning checkpoint. */
export async function chainHead(tx: SqlTx, tenantId: string): Promise<{ sequence: number; recordHash: string }> {
  const last = await tx.query<{ sequence: string | number; record_hash: string }>(
    'SELECT sequence, record_hash FROM audit_records WHERE tenant_id = $1 ORDER BY sequence DESC LIMIT 1',
    [tenantId],
  );
  if (last.rows.length) return { sequence: Number(last.rows[0].sequence), recordHash: last.rows[0].record_hash };
  const cp = await tx.query<{ record_sequence: string | number; head_hash: string }>(
    'SELECT record_sequence, head_hash FROM audit_checkpoints WHERE tenant_id = $1 ORDER BY checkpoint_sequence DESC LIMIT 1',
    [tenantId],
  );
  return cp.rows.length ? { sequence: Number(cp.rows[0].record_sequence), recordHash: cp.rows[0].head_hash } : { sequence: 0, recordHash: GENESIS };
}

/**
 * Records a checkpoint of the chain head, inside a transaction that holds the tenant's lock.
 * When the head has not moved since the last checkpoint, that one is returned and nothing is
 * written; an empty chain has none (null).
 */
export async function checkpointIn(tx: SqlTx, tenantId: string, head?: { sequence: number; recordHash: string }): Promise<AuditCheckpoint | null> {
  const last = await tx.query<Record<string, unknown>>(
    `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE tenant_id = $1 ORDER BY checkpoint_sequence DESC LIMIT 1`,
    [tenantId],
  );
  const prev = last.rows.length ? toCheckpoint(last.rows[0]) : undefined;
  const h = head ?? (await chainHead(tx, tenantId));
  if (h.sequence === 0 || (prev && prev.recordSequence >= h.sequence)) return prev ?? null;
  const body = {
    tenantId,
    checkpointSequence: (prev?.checkpointSequence ?? 0) + 1,
    recordSequence: h.sequence,
    headHash: h.recordHash,
    createdTime: new Date().toISOString(),
    prevCheckpointHash: prev?.checkpointHash ?? GENESIS,
  };
  const cp: AuditCheckpoint = { ...body, checkpointHash: checkpointHash(body) };
  await tx.query(
    `INSERT INTO audit_checkpoints (${CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [cp.tenantId, cp.checkpointSequence, cp.recordSequence, cp.headHash, cp.createdTime, cp.prevCheckpointHash, cp.checkpointHash],
  );
  return cp;
}

/** The tenant's checkpoints after checkpoint `since` (all by default), oldest first. */
export function listCheckpoints(db: SqlTx, tenantId: string, since = 0): Promise<AuditCheckpoint[]> {
  return checkpointsWhere(db, tenantId, 'checkpoint_sequence > $2', [since]);
}

async function checkpointsWhere(db: SqlTx, tenantId: string, cond: string, params: unknown[]): Promise<AuditCheckpoint[]> {
  const res = await db.query<Record<string, unknown>>(
    `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE tenant_id = $1 AND ${cond} ORDER BY checkpoint_sequence`,
    [tenantId, ...params],
  );
  return res.rows.map(toCheckpoint);
}

/** The checkpoint of the latest prune: the chain's kept part starts after its record. */
async function pruneAnchor(db: SqlTx, tenantId: string): Promise<number | undefined> {
  const res = await db.query<{ n: string | number | null }>('SELECT max(checkpoint_sequence) AS n FROM audit_prunes WHERE tenant_id = $1', [tenantId]);
  const n = res.rows[0]?.n;
  return n === null || n === undefined ? undefined : Number(n);
}

/**
 * Deletes the tenant's records up to and including the checkpoint's record. The prefix must
 * verify first (pruning removes that evidence for good); the prune is recorded in audit_prunes,
 * which is also what lets the trigger allow the deletion, and verification then starts from the
 * checkpoint's head hash.
 */
export async function pruneBefore(db: SqlClient, tenantId: string, checkpointSequence: number): Promise<{ pruned: number }> {
  const res = await db.query<Record<string, unknown>>(
    `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE tenant_id = $1 AND checkpoint_sequence = $2`,
    [tenantId, checkpointSequence],
  );
  if (!res.rows.length) throw new CallerError(ErrorCode.NOT_FOUND, `no checkpoint ${checkpointSequence} for this tenant`);
  const cp = toCheckpoint(res.rows[0]);
  // Records up to a checkpoint never change legitimately, so this check need not hold the lock.
  const v = await verifyChain(db, tenantId, { toSequence: cp.recordSequence });
  if (!v.ok) throw new InternalError(ErrorCode.INTERNAL, `refusing to prune: record ${v.sequence} does not verify (${v.reason})`);
  return db.transaction(async (tx) => {
    await lockTenant(tx, tenantId);
    const anchor = await pruneAnchor(tx, tenantId);
    if (anchor !== undefined && anchor >= checkpointSequence) return { pruned: 0 };
    await tx.query('INSERT INTO audit_prunes (tenant_id, checkpoint_sequence, pruned_time) VALUES ($1, $2, $3)', [tenantId, checkpointSequence, new Date().toISOString()]);
    await tx.query("SELECT set_config('tampertrace.audit_prune', $1, true)", [tenantId]);
    const del = await tx.query<{ n: number }>(
      'WITH d AS (DELETE FROM audit_records WHERE tenant_id = $1 AND sequence <= $2 RETURNING 1) SELECT count(*)::int AS n FROM d',
      [tenantId, cp.recordSequence],
    );
    await tx.query("SELECT set_config('tampertrace.audit_prune', '', true)");
    return { pruned: del.rows[0].n };
  });
}

/**
 * Recomputes the chain over a range in batches of sequence ranges, in one read-only snapshot, and
 * checks every checkpoint in that range (and the checkpoints' own chain). Names the first record
 * that does not verify.
 */
export async function verifyChain(db: SqlClient, tenantId: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  for (const [name, v] of [['fromSequence', opts.fromSequence], ['toSequence', opts.toSequence]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, `${name} must be a positive integer, got ${v}`);
  }
  return db.transaction(async (tx) => {
    // One snapshot for every batch: appends and prunes meanwhile cannot make the chain look broken.
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    return verifyIn(tx, tenantId, opts);
  });
}

async function verifyIn(tx: SqlTx, tenantId: string, opts: VerifyOptions): Promise<VerifyResult> {
  const fail = (sequence: number, reason: string): VerifyResult => ({ ok: false, sequence, reason });
  const batch = opts.batchSize ?? VERIFY_BATCH;
  const kept = opts.checkpoints ?? [];

  // Where the kept chain starts: after the latest prune's checkpoint, anchored on its head hash.
  const pruned = await pruneAnchor(tx, tenantId);
  let anchorSeq = 0;
  let anchorHash = GENESIS;
  if (pruned !== undefined) {
    const [cp] = await checkpointsWhere(tx, tenantId, 'checkpoint_sequence = $2', [pruned]);
    if (!cp) return fail(1, `checkpoint ${pruned}, where the chain was pruned, is missing`);
    anchorSeq = cp.recordSequence;
    anchorHash = cp.headHash;
    if (checkpointHash(cp) !== cp.checkpointHash && (opts.fromSequence ?? 1) <= anchorSeq + 1) {
      return fail(anchorSeq, `checkpoint ${cp.checkpointSequence} does not match its hash`);
    }
  }
  const start = Math.max(opts.fromSequence ?? 1, anchorSeq + 1);

  // The range ends at the head, or at the furthest checkpoint if records after the head are gone.
  const ends = await tx.query<{ head: string | number | null; cp: string | number | null }>(
    `SELECT (SELECT max(sequence) FROM audit_records WHERE tenant_id = $1) AS head,
            (SELECT max(record_sequence) FROM audit_checkpoints WHERE tenant_id = $1) AS cp`,
    [tenantId],
  );
  const covered = Math.max(Number(ends.rows[0].head ?? 0), Number(ends.rows[0].cp ?? 0), ...kept.map((k) => k.recordSequence));
  const end = Math.min(opts.toSequence ?? Number.MAX_SAFE_INTEGER, covered);

  // The checkpoints in range (and the one before them, to check the first one's link), the
  // checkpoints' own chain, and what each says about the record it covers.
  const cps = await checkpointsWhere(tx, tenantId, 'record_sequence BETWEEN $2 AND $3', [start, end]);
  if (cps.length && cps[0].checkpointSequence > 1) cps.unshift(...(await checkpointsWhere(tx, tenantId, 'checkpoint_sequence = $2', [cps[0].checkpointSequence - 1])));
  /** The first fault of a checkpoint, at the sequence of the record it covers. */
  const faults = new Map<number, string>();
  /** Record hashes that checkpoints (stored or kept elsewhere) vouch for. */
  const vouched = new Map<number, Array<{ hash: string; by: string }>>();
  const fault = (seq: number, reason: string) => faults.has(seq) || faults.set(seq, reason);
  const vouch = (seq: number, hash: string, by: string) => vouched.set(seq, [...(vouched.get(seq) ?? []), { hash, by }]);
  cps.forEach((cp, i) => {
    const prev = cps[i - 1];
    // The first one listed links to nothing loaded unless it is checkpoint 1 (or its predecessor is gone).
    if (prev ? cp.checkpointSequence !== prev.checkpointSequence + 1 : cp.checkpointSequence > 1 && cp.recordSequence >= start) {
      fault(cp.recordSequence, `checkpoint ${prev ? prev.checkpointSequence + 1 : cp.checkpointSequence - 1} is missing`);
    } else if ((prev || cp.checkpointSequence === 1) && cp.prevCheckpointHash !== (prev?.checkpointHash ?? GENESIS)) {
      fault(cp.recordSequence, `checkpoint ${cp.checkpointSequence} does not follow checkpoint ${cp.checkpointSequence - 1}`);
    } else if (checkpointHash(cp) !== cp.checkpointHash) fault(cp.recordSequence, `checkpoint ${cp.checkpointSequence} does not match its hash`);
    else if (prev && cp.recordSequence <= prev.recordSequence) fault(cp.recordSequence, `checkpoint ${cp.checkpointSequence} goes backwards`);
    vouch(cp.recordSequence, cp.headHash, `checkpoint ${cp.checkpointSequence}`);
  });
  if (kept.length) {
    const stored = new Map(
      (await checkpointsWhere(tx, tenantId, 'checkpoint_sequence = ANY($2::bigint[])', [kept.map((k) => k.checkpointSequence)])).map((c) => [c.checkpointSequence, c]),
    );
    for (const k of kept) {
      const s = stored.get(k.checkpointSequence);
      if (!s) fault(k.recordSequence, `checkpoint ${k.checkpointSequence} of the kept copy is missing`);
      else if (s.checkpointHash !== k.checkpointHash) fault(k.recordSequence, `checkpoint ${k.checkpointSequence} differs from the kept copy`);
      vouch(k.recordSequence, k.headHash, `kept checkpoint ${k.checkpointSequence}`);
    }
  }

  let prevHash = anchorHash;
  if (start > anchorSeq + 1) {
    const before = await tx.query<{ record_hash: string }>('SELECT record_hash FROM audit_records WHERE tenant_id = $1 AND sequence = $2', [tenantId, start - 1]);
    const hash = before.rows[0]?.record_hash;
    if (hash === undefined) return fail(start - 1, `record ${start - 1} is missing`);
    prevHash = hash;
  }

  const fetch = (lo: number) => {
    const p = tx.query<Record<string, unknown>>(
      `SELECT ${ROW_COLUMNS} FROM audit_records WHERE tenant_id = $1 AND sequence >= $2 AND sequence < $3 ORDER BY sequence`,
      [tenantId, lo, Math.min(lo + batch, end + 1)],
    );
    p.catch(() => {}); // awaited below; a verdict reached before then must not leave it unhandled
    return p;
  };
  let expected = start;
  let lo = start;
  let next = lo <= end ? fetch(lo) : undefined;
  while (next) {
    const res = await next;
    lo = Math.min(lo + batch, end + 1);
    // The next batch is read while this one is hashed.
    next = lo <= end ? fetch(lo) : undefined;
    for (const raw of res.rows) {
      const row = toRow(raw);
      const seq = row.sequence;
      if (seq > expected) return fail(expected, `record ${expected} is missing`);
      if (seq < expected) return fail(seq, `record ${seq} appears twice`);
      if (row.prevHash !== prevHash) return fail(seq, 'prev_hash does not match the previous record');
      const hash = expectedHash(row);
      if (hash === undefined) return fail(seq, `unknown hash_version ${row.hashVersion}`);
      if (hash !== row.recordHash) return fail(seq, 'record content does not match its hash');
      const f = faults.get(seq);
      if (f) return fail(seq, f);
      for (const v of vouched.get(seq) ?? []) if (v.hash !== row.recordHash) return fail(seq, `record hash differs from ${v.by}`);
      prevHash = row.recordHash;
      expected++;
    }
  }
  if (expected <= end) return fail(expected, `record ${expected} is missing`);
  return { ok: true, count: expected - start };
}
