// How an explanation is split into text and region mentions for highlighting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { editKinds, segments } from './explain.ts';

test('region words are found as whole words, longest first, case-insensitively', () => {
  const s = segments('The Left eye and the nose look smoother; the eyebrow area does not.', ['left eye', 'right eye', 'nose']);
  assert.deepEqual(s, [
    { text: 'The ' },
    { text: 'Left eye', regions: ['left eye'], face: 0 },
    { text: ' and the ' },
    { text: 'nose', regions: ['nose'], face: 0 },
    { text: ' look smoother; the eyebrow area does not.' },
  ]);
});

test('plurals and synonyms highlight their regions: lips/lip, eyes, teeth/tooth, cheeks, moustache, iris', () => {
  const names = ['right eye', 'left eye', 'lips', 'mouth', 'teeth', 'right cheek', 'left cheek', 'mustache', 'left pupil', 'nose'];
  const said = (text: string) => segments(text, names).filter((s) => s.regions).map((s) => [s.text, s.regions]);
  assert.deepEqual(said('The lips and the lip line; the eyes; a tooth, the teeth; both cheeks; the moustache; the left iris.'), [
    ['lips', ['lips']], ['lip', ['lips']], ['eyes', ['right eye', 'left eye']], ['tooth', ['teeth']], ['teeth', ['teeth']],
    ['both cheeks', ['right cheek', 'left cheek']], ['moustache', ['mustache']], ['left iris', ['left pupil']],
  ]);
  // An older analysis's "lip" region is what "lips" names there.
  assert.deepEqual(segments('The lips are smoother.', ['lip', 'mouth'])[1], { text: 'lips', regions: ['lip'], face: 0 });
  // "the surrounding skin" is a comparison, not a region claim.
  assert.deepEqual(segments('The nose is smoother than the surrounding skin.', ['nose', 'skin']).filter((s) => s.regions).map((s) => s.text), ['nose']);
});

test('words name regions of the face their paragraph is about; words naming no region stay text', () => {
  const faces: Record<number, string[]> = { 0: ['nose'], 1: ['lips', 'left cheek'] };
  const s = segments('On face 1, the nose is smoother. On face 2, the lips and the nose are recoloured; the left cheek too.', (f) => faces[f] ?? []);
  assert.deepEqual(s.filter((x) => x.regions).map((x) => [x.text, x.face]), [['nose', 0], ['lips', 1], ['left cheek', 1]]);
  assert.deepEqual(segments('No face was forged.', ['nose']), [{ text: 'No face was forged.' }]);
  assert.deepEqual(segments('', ['nose']), []);
});

test('kinds of edit read in words, most probable first, the named ones marked', () => {
  assert.deepEqual(editKinds([{ type: 'MANIPULATION_TYPE_SPLICE', probability: 0.2 }, { type: 'MANIPULATION_TYPE_INPAINT', probability: 0.83 }], [{ type: 'MANIPULATION_TYPE_INPAINT' }]), [
    { label: 'inpainting', probability: 0.83, named: true },
    { label: 'splicing', probability: 0.2, named: false },
  ]);
  assert.deepEqual(editKinds(undefined), []);
});
