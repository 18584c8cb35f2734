import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from './config.ts';

test('defaults run the embedded mode', () => {
  const c = loadConfig({});
  assert.match(c.TAMPERTRACE_HOME, /\.tampertrace$/);
  assert.deepEqual(c.TAMPERTRACE_EXECUTION_PROVIDERS, ['cpu']);
  assert.equal(c.TAMPERTRACE_MAX_PIXELS, 50_000_000);
});

test('a bad value fails fast and names the variable', () => {
  assert.throws(() => loadConfig({ TAMPERTRACE_MAX_PIXELS: 'lots' }), (e: unknown) => e instanceof ConfigError && /TAMPERTRACE_MAX_PIXELS/.test(e.message));
  assert.throws(() => loadConfig({ TAMPERTRACE_EXECUTION_PROVIDERS: 'cpu,tpu' }), /unknown provider "tpu"/);
  assert.throws(() => loadConfig({ TAMPERTRACE_MIN_FACE_SCORE: '1.5' }), /TAMPERTRACE_MIN_FACE_SCORE/);
});
