// Which files `analyze` and `submit` take from their arguments: in folders only files named like
// images (a README or LICENSE beside the photos is no input), a file named on purpose always.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expandInputs } from './cli.ts';

test('folders give their image-named files (any case), recursively and in order; other files are skipped unless named', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tt-inputs-'));
  await mkdir(path.join(dir, 'sub'));
  for (const f of ['a.JPG', 'b.png', 'notes.md', '.hidden.png', 'c.jpeg', 'sub/d.webp', 'sub/README', 'sub/e.gif', 'f.jfif']) await writeFile(path.join(dir, f), 'x');
  const skipped: string[] = [];
  const files = await expandInputs([dir, path.join(dir, 'notes.md')], skipped);
  const rel = (ps: string[]) => ps.map((p) => path.relative(dir, p));
  assert.deepEqual(rel(files), ['a.JPG', 'b.png', 'c.jpeg', 'f.jfif', 'sub/d.webp', 'sub/e.gif', 'notes.md']);
  assert.deepEqual(rel(skipped), ['notes.md', 'sub/README']);
  await assert.rejects(expandInputs([path.join(dir, 'missing.png')]), /no such file or folder/);
});
