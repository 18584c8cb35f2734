#!/usr/bin/env node
// `make test`'s last step: the README's test count must be the number of tests this run had.
//   node scripts/readme-test-count.mjs RUN.tap
// RUN.tap is the TAP report of the whole run (its "# tests N" summary line). Exit 1, saying what
// to write, when README.md says another number (or still holds the <<TEST-COUNT>> placeholder).
import { readFileSync } from 'node:fs';
import path from 'node:path';

const [tapFile] = process.argv.slice(2);
if (!tapFile) {
  process.stderr.write('usage: readme-test-count.mjs RUN.tap\n');
  process.exit(2);
}
const ran = /^# tests (\d+)$/m.exec(readFileSync(tapFile, 'utf8'))?.[1];
if (!ran) {
  process.stderr.write(`readme-test-count: no "# tests N" line in ${tapFile}\n`);
  process.exit(1);
}
const readmeFile = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'README.md');
// The Quick start's sentence: "... and stops them again: N tests (`make test` fails when ...".
const said = /stops them again: (\S+) tests\s/.exec(readFileSync(readmeFile, 'utf8'))?.[1];
if (said !== ran) {
  process.stderr.write(`README.md says ${said ?? '(no count)'} tests in its Quick start; this run had ${ran}: write ${ran} there\n`);
  process.exit(1);
}
process.stdout.write(`README.md's test count (${ran}) is this run's\n`);
