// The README's quick-start examples are real: the commands it shows run on the repository's own
// files and print exactly the blocks it shows (the results folder's path aside), with the exit
// codes it says. When the model, the table or testdata/faces change, this fails until the README
// is updated. The test count is checked by `make test` itself (scripts/readme-test-count.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '@tampertrace/shared';

const BIN = path.join(REPO_ROOT, 'services', 'tampertrace', 'bin', 'tampertrace.mjs');

/** The shell command and the output block after a README marker comment. */
async function example(marker: string): Promise<{ args: string[]; block: string }> {
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf(`<!-- ${marker}`);
  assert.ok(at > 0, `README.md has the ${marker} marker`);
  const commands = [...readme.slice(0, at).matchAll(/```sh\n(npx tampertrace analyze [^\n]*)\n```/g)];
  const command = commands.at(-1)![1];
  const block = /```\n([\s\S]*?)```/.exec(readme.slice(at))![1];
  return { args: command.replace(/^npx tampertrace /, '').split(/\s+/), block };
}

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'tt-readme-'));
  // The README's --out folder goes to a temporary one; the inputs are the repository's files.
  const out = args.indexOf('--out');
  const argv = out >= 0 ? [...args.slice(0, out + 1), path.join(tmp, 'results'), ...args.slice(out + 2)] : args;
  const env: NodeJS.ProcessEnv = { ...process.env, TAMPERTRACE_HOME: path.join(tmp, 'home'), TAMPERTRACE_LOG_LEVEL: 'warn' };
  for (const k of ['TAMPERTRACE_DATABASE_URL', 'TAMPERTRACE_KAFKA_BROKERS', 'TAMPERTRACE_S3_ENDPOINT']) delete env[k];
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...argv], { cwd: REPO_ROOT, env, maxBuffer: 1 << 24 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: stdout.replace(/^Results written to .*$/m, 'Results written to /path/to/results'), stderr }));
  });
}

test('the quick-start analyze of testdata/faces prints exactly the README block and exits 0, skipping LICENSE.md with a note', async () => {
  const { args, block } = await example('readme-quick-start');
  assert.deepEqual(args, ['analyze', '--out', 'results', 'testdata/faces']);
  const r = await run(args);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, block);
  assert.match(r.stderr, /skipped 1 file in folders not named like an image .*testdata\/faces\/LICENSE\.md/);
});

test('the README\'s rejected example (a file named on the command line that is no image) prints its block and exits 2', async () => {
  const { args, block } = await example('readme-rejected');
  assert.deepEqual(args, ['analyze', '--out', 'results', 'testdata/faces/LICENSE.md']);
  const r = await run(args);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, block);
});
