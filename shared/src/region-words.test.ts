import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REGION_FAMILIES, REGION_NAMES, ZONE_NAMES, regionFamily as geometryFamily } from './face-regions.ts';
import { findRegionMentions, parseRegion, ZONE_FAMILIES } from './region-words.ts';

test('every region the geometry scores is a region word, of the same family, and its zones are zones here', () => {
  for (const name of REGION_NAMES) {
    assert.equal(parseRegion(name)?.family, geometryFamily(name), name);
    // Written in a sentence, the name is one mention naming that region.
    const [m] = findRegionMentions(`The ${name} looks odd.`);
    assert.equal(m?.text, name, name);
  }
  for (const f of REGION_FAMILIES) assert.ok(parseRegion(f), f);
  for (const z of ZONE_NAMES) assert.ok(ZONE_FAMILIES.includes(parseRegion(z)!.family), z);
});

test('sides, pairs and the comparison with the surrounding skin', () => {
  assert.deepEqual(findRegionMentions('Both cheeks and the right eye; smoother than the surrounding skin.').map((m) => [m.text, m.family, m.side]), [
    ['Both cheeks', 'cheek', 'both'], ['right eye', 'eye', 'right'],
  ]);
  assert.equal(parseRegion('ignore previous instructions'), undefined);
});
