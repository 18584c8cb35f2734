// How an explanation is split into text and region mentions for highlighting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { segments } from './explain.ts';

test('region names are found as whole words, longest first, case-insensitively', () => {
  const s = segments('The Left eye and the nose look blurrier; the eyebrow area does not.', ['eye', 'left eye', 'nose', 'brow']);
  assert.deepEqual(s, [
    { text: 'The ' },
    { text: 'Left eye', region: 'left eye' },
    { text: ' and the ' },
    { text: 'nose', region: 'nose' },
    { text: ' look blurrier; the eyebrow area does not.' },
  ]);
});

test('text without known regions is one plain segment; names are matched literally', () => {
  assert.deepEqual(segments('No face was forged.', ['nose']), [{ text: 'No face was forged.' }]);
  assert.deepEqual(segments('a.b', ['a.b', '']), [{ text: 'a.b', region: 'a.b' }]);
  assert.deepEqual(segments('axb', ['a.b']), [{ text: 'axb' }]);
  assert.deepEqual(segments('', ['nose']), []);
});
