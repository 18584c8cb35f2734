// How enum names, scores and stages read on the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { score, stageLabel, statusLabel, verdictLabel } from './format.ts';

test('enum names read as words; an unspecified verdict reads as nothing', () => {
  assert.equal(statusLabel('ANALYSIS_STATUS_NO_FACE'), 'no face');
  assert.equal(verdictLabel('VERDICT_LIKELY_FORGED'), 'likely forged');
  assert.equal(verdictLabel('VERDICT_UNSPECIFIED'), '');
  assert.equal(stageLabel('STAGE_FORGERY_LOCALIZATION'), 'forgery localization');
  assert.equal(score(0.6149), '0.61');
  assert.equal(score(undefined), '0.00');
});
