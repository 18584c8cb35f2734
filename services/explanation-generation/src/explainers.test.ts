import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '@tampertrace/shared';
import { TemplateExplainer } from './explainer.ts';
import { createExplainer } from './explainers.ts';
import { VlmExplainer } from './vlm.ts';

const entry = { name: 'm', version: '1', task: 'forgery-localization' as const, path: 'x', sha256: 'x', inputSize: 256, licence: 'x', cueThresholds: { colourAbove: 20, regions: { lip: { colourAbove: 60 } } }, typeThreshold: 0.7 };

test('the template by default, with the localizer entry\'s levels; a vision-language model in front of it when configured', () => {
  const t = createExplainer(loadConfig({}), entry);
  assert.ok(t instanceof TemplateExplainer);
  assert.equal(t.options.colourAbove, 20);
  assert.equal(t.levelsFor('lip').colourAbove, 60);
  assert.equal(t.options.typeThreshold, 0.7);
  const v = createExplainer(loadConfig({ TAMPERTRACE_EXPLAINER: 'openai', TAMPERTRACE_EXPLAINER_URL: 'http://127.0.0.1:8000/v1', TAMPERTRACE_EXPLAINER_MODEL: 'qwen', TAMPERTRACE_EXPLAINER_API_KEY: 'sk-secret-value' }), entry);
  assert.ok(v instanceof VlmExplainer);
  assert.equal(v.name, 'openai-compatible:qwen');
  assert.ok(!JSON.stringify(v).includes('sk-secret-value'));
});

test('an openai explainer without its endpoint or model, or an unknown kind, stops the start', () => {
  assert.throws(() => loadConfig({ TAMPERTRACE_EXPLAINER: 'openai', TAMPERTRACE_EXPLAINER_MODEL: 'qwen' }), ConfigError);
  assert.throws(() => loadConfig({ TAMPERTRACE_EXPLAINER: 'openai', TAMPERTRACE_EXPLAINER_URL: 'http://h/v1' }), ConfigError);
  assert.throws(() => loadConfig({ TAMPERTRACE_EXPLAINER: 'gpt' }), /TAMPERTRACE_EXPLAINER must be one of template, openai/);
  assert.throws(() => loadConfig({ TAMPERTRACE_EXPLAINER_RESPONSE_FORMAT: 'xml' }), ConfigError);
});
