// Services depend only on the protos and shared/ (plus their own files and npm packages): what two
// services need lives in shared/ under a name that says what it holds. The one exception is
// services/tampertrace, the composition root (CLI, embedded mode, the test cluster), which starts
// the services and so may import their entry points and wiring. shared/ imports no service.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const repo = path.resolve(import.meta.dirname, '..');
const COMPOSITION_ROOT = 'tampertrace';

/**
 * Known exceptions, each with its reason: the console draws region highlights, and the
 * explainer's tests build faces, with the localizer's own region geometry; the shared region
 * module of the landmark work replaces these imports.
 */
const ALLOWED: Record<string, string[]> = {
  console: ['@tampertrace/forgery-localization/regions'],
  'explanation-generation': ['../../forgery-localization/src/regions.ts'],
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mts|mjs)$/.test(e.name) && !e.parentPath.includes('node_modules') && !e.parentPath.includes(`${path.sep}dist`))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Module specifiers of static imports, dynamic imports and re-exports. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1] ?? m[2]);
  return out;
}

const services = readdirSync(path.join(repo, 'services'), { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name);

/** Where an import leads: another service's name, 'shared', or undefined (npm, node, own folder). */
function target(file: string, spec: string): string | undefined {
  const pkg = /^@tampertrace\/([^/]+)/.exec(spec)?.[1];
  if (pkg) return pkg;
  if (!spec.startsWith('.')) return undefined;
  const rel = path.relative(repo, path.resolve(path.dirname(file), spec)).split(path.sep);
  if (rel[0] === 'shared') return 'shared';
  if (rel[0] === 'services') return rel[1];
  return undefined; // repository tooling (scripts/, models/), not a service
}

test('services import only shared/ and their own files (the composition root excepted)', () => {
  const offences: string[] = [];
  for (const svc of services.filter((s) => s !== COMPOSITION_ROOT)) {
    for (const file of sources(path.join(repo, 'services', svc))) {
      for (const spec of specifiers(file)) {
        const t = target(file, spec);
        if (t === undefined || t === 'shared' || t === svc) continue;
        if (ALLOWED[svc]?.includes(spec)) continue;
        offences.push(`${path.relative(repo, file)} imports ${spec}`);
      }
    }
  }
  assert.deepEqual(offences, [], 'a service reaches into another service: move what both need into shared/');
});

test('shared/ imports no service', () => {
  const offences = sources(path.join(repo, 'shared', 'src')).flatMap((file) =>
    specifiers(file)
      .filter((spec) => {
        const t = target(file, spec);
        return t !== undefined && t !== 'shared';
      })
      .map((spec) => `${path.relative(repo, file)} imports ${spec}`),
  );
  assert.deepEqual(offences, []);
});

test("services' package.json files depend on no other service (the composition root excepted)", () => {
  for (const svc of services.filter((s) => s !== COMPOSITION_ROOT)) {
    const pkg = JSON.parse(readFileSync(path.join(repo, 'services', svc, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const others = Object.keys(pkg.dependencies ?? {}).filter((d) => d.startsWith('@tampertrace/') && d !== '@tampertrace/shared' && !ALLOWED[svc]?.some((a) => a.startsWith(`${d}/`)));
    assert.deepEqual(others, [], `services/${svc}/package.json`);
  }
});

test('the boundary check sees a forbidden import (it can fail)', () => {
  assert.equal(target(path.join(repo, 'services/ingest/src/x.ts'), '@tampertrace/audit/store'), 'audit');
  assert.equal(target(path.join(repo, 'services/ingest/src/x.ts'), '../../forgery-localization/src/overlay.ts'), 'forgery-localization');
  assert.equal(target(path.join(repo, 'services/ingest/src/x.ts'), './gateway.ts'), 'ingest');
  assert.equal(target(path.join(repo, 'services/ingest/src/x.ts'), '@tampertrace/shared/overlay'), 'shared');
});

/** Import cycles among shared/'s own modules (type-only imports included: they still tie the two files together). */
function cyclesIn(dir: string): string[][] {
  const files = sources(dir).filter((f) => !/\.test\.ts$/.test(f));
  const edges = new Map(files.map((f) => [f, specifiers(f).filter((s) => s.startsWith('.')).map((s) => path.resolve(path.dirname(f), s))]));
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const g of edges.get(f) ?? []) {
      if (!edges.has(g)) continue;
      if (state.get(g) === 'open') cycles.push(stack.slice(stack.indexOf(g)).map((x) => path.relative(repo, x)));
      else if (!state.has(g)) visit(g);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f);
  return cycles;
}

test('shared/ has no import cycles (the bus and tracing included)', () => {
  assert.deepEqual(cyclesIn(path.join(repo, 'shared', 'src')), []);
});
