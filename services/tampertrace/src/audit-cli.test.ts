// `tampertrace audit ...` through the real command, on an embedded database the test filled:
// query and export output and filters, checkpoints, verify (also against kept checkpoints, and
// after a record was changed in the database) and their exit codes.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { REPO_ROOT, loadConfig } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { cameraPng } from '@tampertrace/shared/testing';
import { CSV_COLUMNS } from '@tampertrace/shared/audit-trail/store';
import { startEmbedded } from './embedded.ts';

const run = promisify(execFile);
const BIN = path.join(REPO_ROOT, 'services', 'tampertrace', 'bin', 'tampertrace.mjs');
let home: string;
let completedId: string;

async function tampertrace(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // Embedded mode even when `make test` has put the local servers' addresses in the environment.
  const env: NodeJS.ProcessEnv = { ...process.env, TAMPERTRACE_DATABASE_URL: '', TAMPERTRACE_KAFKA_BROKERS: '', TAMPERTRACE_S3_ENDPOINT: '', TAMPERTRACE_HOME: home, TAMPERTRACE_LOG_LEVEL: 'warn' };
  delete env.TAMPERTRACE_DATABASE_URL; // embedded: the PGlite database under TAMPERTRACE_HOME
  delete env.TAMPERTRACE_TENANT;
  try {
    const r = await run(process.execPath, [BIN, 'audit', ...args], { env, maxBuffer: 1 << 24 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const jsonLines = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'tt-audit-cli-'));
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home, TAMPERTRACE_TENANT: 'default', TAMPERTRACE_AUDIT_CHECKPOINT_EVERY: '4' });
  const embedded = await startEmbedded(cfg, pino({ level: 'silent' }));
  try {
    completedId = (await embedded.analyze(cameraPng(), 'camera.png')).analysisId;
    await embedded.analyze(Buffer.from('not an image'), 'text.jpg');
  } finally {
    await embedded.close();
  }
});

test('audit query prints the matching records as JSON lines, newest first, up to --limit', async () => {
  const all = await tampertrace(['query']);
  assert.equal(all.code, 0, all.stderr);
  const rows = jsonLines(all.stdout);
  assert.equal(rows.length, 6, 'five records of the analysis (ingest and its four stages), one of the rejected input');
  assert.deepEqual(rows.map((r) => r.sequence), [...rows.map((r) => r.sequence as number)].sort((a, b) => b - a));

  const rejected = await tampertrace(['query', '--status', 'REJECTED', '--error-code', 'unsupported_format']);
  assert.equal(rejected.code, 0, rejected.stderr);
  assert.deepEqual(jsonLines(rejected.stdout).map((r) => [r.status, r.errorCode]), [['REJECTED', 'UNSUPPORTED_FORMAT']]);
  const stage = jsonLines((await tampertrace(['query', '--stage', 'FACE_DETECTION'])).stdout);
  assert.deepEqual(stage.map((r) => r.analysisId), [completedId]);
  const future = await tampertrace(['query', '--from', '2999-01-01T00:00:00Z']);
  assert.deepEqual([future.code, future.stdout], [0, '']);

  const limited = await tampertrace(['query', '--limit', '4']);
  assert.equal(jsonLines(limited.stdout).length, 4);
  const token = /--page-token (\S+)/.exec(limited.stderr)?.[1];
  assert.ok(token, limited.stderr);
  const rest = jsonLines((await tampertrace(['query', '--page-token', token])).stdout);
  assert.deepEqual([...jsonLines(limited.stdout), ...rest].map((r) => r.sequence), rows.map((r) => r.sequence));

  // Another tenant's view of the same database is empty.
  assert.deepEqual([(await tampertrace(['query', '--tenant', 'someone-else'])).stdout], ['']);

  for (const bad of [['--status', 'SORT_OF'], ['--from', 'yesterday'], ['--min-score', '2'], ['--limit', '0']]) {
    const r = await tampertrace(['query', ...bad]);
    assert.equal(r.code, 1, bad.join(' '));
    assert.match(r.stderr, /^tampertrace: INVALID_MESSAGE: --/, bad.join(' '));
  }
});

test('audit export writes JSON lines or CSV with a header to stdout', async () => {
  const jsonl = await tampertrace(['export', '--stage', 'EXPLANATION']);
  assert.equal(jsonl.code, 0, jsonl.stderr);
  assert.deepEqual(jsonLines(jsonl.stdout).map((r) => r.status), ['COMPLETED']);
  const csv = await tampertrace(['export', '--format', 'csv']);
  assert.equal(csv.code, 0, csv.stderr);
  const lines = csv.stdout.split('\r\n').filter(Boolean);
  assert.equal(lines[0], CSV_COLUMNS.join(','));
  assert.equal(lines.length, 7);
  assert.equal((await tampertrace(['export', '--format', 'xml'])).code, 1);
});

test('audit verify: OK with exit 0, also against kept checkpoints and after a prune; a changed record fails with exit 1 and is named', async () => {
  const ok = await tampertrace(['verify']);
  assert.deepEqual([ok.code, ok.stdout], [0, 'OK: 6 records verify for tenant default\n']);
  assert.equal((await tampertrace(['verify', '--from', '2', '--to', '3'])).stdout, 'OK: 2 records verify for tenant default\n');

  // Checkpoints: one every 4 records by configuration, one more by the operator command.
  const made = await tampertrace(['checkpoint']);
  assert.equal(made.code, 0, made.stderr);
  assert.equal(jsonLines(made.stdout)[0].recordSequence, 6);
  const cps = await tampertrace(['checkpoints']);
  assert.deepEqual(jsonLines(cps.stdout).map((c) => c.recordSequence), [4, 6]);
  const keptFile = path.join(home, 'kept-checkpoints.jsonl');
  await writeFile(keptFile, cps.stdout);
  assert.equal((await tampertrace(['verify', '--checkpoints', keptFile])).code, 0);
  const forgedFile = path.join(home, 'forged-checkpoints.jsonl');
  await writeFile(forgedFile, JSON.stringify({ ...jsonLines(cps.stdout)[0], checkpointHash: 'f'.repeat(64) }) + '\n');
  const forged = await tampertrace(['verify', '--checkpoints', forgedFile]);
  assert.deepEqual([forged.code, forged.stdout], [1, 'FAILED at record 4: checkpoint 1 differs from the kept copy\n']);

  // Retention: records up to checkpoint 1 go; the rest still verifies from that checkpoint's hash.
  const prune = await tampertrace(['prune', '--before', '1']);
  assert.deepEqual([prune.code, prune.stdout], [0, 'pruned 4 records of tenant default up to checkpoint 1\n']);
  assert.equal((await tampertrace(['verify'])).stdout, 'OK: 2 records verify for tenant default\n');
  assert.equal((await tampertrace(['prune'])).code, 1, 'prune needs --before');

  // Someone with the database changes a record (the table's triggers switched off).
  const sql = await openPglite(path.join(home, 'db'));
  try {
    await sql.query('ALTER TABLE audit_records DISABLE TRIGGER ALL');
    await sql.query("UPDATE audit_records SET error_message = 'all fine' WHERE tenant_id = 'default' AND sequence = 6");
    await sql.query('ALTER TABLE audit_records ENABLE TRIGGER ALL');
  } finally {
    await sql.close();
  }
  const broken = await tampertrace(['verify']);
  assert.deepEqual([broken.code, broken.stdout], [1, 'FAILED at record 6: record content does not match its hash\n']);
  // Pruning verifies what it deletes first, and refuses.
  const refused = await tampertrace(['prune', '--before', '2']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refusing to prune: record 6 does not verify/);
});
