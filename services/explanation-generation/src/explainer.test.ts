import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkGrounding,
  DEFAULT_REGION_VOCABULARY,
  DEFAULT_TEMPLATE_OPTIONS,
  REGION_NAMES,
  TemplateExplainer,
} from './explainer.ts';
import { REGION_NAMES as LOCALIZATION_REGION_NAMES } from '../../forgery-localization/src/regions.ts';
import type {
  Explanation,
  ExplanationInput,
  Fact,
  FaceEvidence,
  RegionEvidence,
  TemplateExplainerOptions,
} from './explainer.ts';

const VOCAB = DEFAULT_REGION_VOCABULARY;

test('vocabulary mirrors the localization service region names', () => {
  assert.deepEqual([...REGION_NAMES], [...LOCALIZATION_REGION_NAMES]);
  for (const n of REGION_NAMES) assert.ok(VOCAB.includes(n), n);
});

function region(name: string, score: number, coverage: number, cues: RegionEvidence['cues'] = {}): RegionEvidence {
  return { name, score, coverage, cues };
}
function face(faceIndex: number, forgeryScore: number, regions: RegionEvidence[]): FaceEvidence {
  return { faceIndex, forgeryScore, regions };
}

const CUE_WORDS: [Fact['cue'], RegExp][] = [
  ['blur', /blurr/i],
  ['sharpening', /sharper/i],
  ['colour', /colou?r/i],
  ['boundary', /\bedge/i],
];

/** Splits the text into one paragraph per face (paragraphs start "On face N, " when several). */
function paragraphs(input: ExplanationInput, text: string): string[] {
  if (input.faces.length <= 1) return [text];
  const parts = text.split(/ (?=On face \d+, )/);
  assert.equal(parts.length, input.faces.length, `one paragraph per face: ${text}`);
  return parts;
}

function passes(f: Fact, o: Required<TemplateExplainerOptions>): boolean {
  switch (f.cue) {
    case 'coverage': return f.value >= o.minCoverage;
    case 'blur': return f.value < o.blurBelow;
    case 'sharpening': return f.value > o.sharpenAbove;
    case 'colour': return f.value > o.colourAbove;
    case 'boundary': return f.value > o.boundaryAbove;
  }
}

/** The invariants of the brief, checked on one input / output pair. */
function checkInvariants(input: ExplanationInput, exp: Explanation, o: Required<TemplateExplainerOptions> = { ...DEFAULT_TEMPLATE_OPTIONS }): void {
  const ctx = `\ntext: ${exp.text}`;
  assert.ok(exp.text.trim().length > 0);
  // The whole text is grounded in the facts.
  assert.deepEqual(checkGrounding(exp.text, exp.facts, VOCAB), [], ctx);
  // Every fact passes its threshold and refers to an input region above the coverage threshold.
  for (const f of exp.facts) {
    assert.ok(passes(f, o), `fact does not pass its threshold: ${JSON.stringify(f)}${ctx}`);
    const fe = input.faces.find((x) => x.faceIndex === f.faceIndex);
    const r = fe?.regions.find((x) => x.name === f.region);
    assert.ok(r && r.coverage >= o.minCoverage, `fact for an unknown / low-coverage region ${f.region}${ctx}`);
    if (f.cue !== 'coverage') {
      assert.ok(exp.facts.some((g) => g.cue === 'coverage' && g.region === f.region && g.faceIndex === f.faceIndex));
    }
  }
  if (input.verdict === 'LIKELY_AUTHENTIC') assert.equal(exp.facts.length, 0, ctx);

  const paras = paragraphs(input, exp.text);
  input.faces.forEach((fe, k) => {
    const para = paras[k];
    assert.ok(para.length > 0 && para.length < 400, `paragraph length ${para.length}: ${para}`);
    const faceFacts = exp.facts.filter((f) => f.faceIndex === fe.faceIndex);
    // Regions under the coverage threshold are never named: the paragraph is grounded in
    // synthetic facts made only of this face's eligible input regions.
    const eligible: Fact[] = input.verdict === 'LIKELY_AUTHENTIC' ? [] : fe.regions
      .filter((r) => r.coverage >= o.minCoverage)
      .map((r) => ({ faceIndex: fe.faceIndex, region: r.name, cue: 'coverage', value: r.coverage, unit: '', statement: '' }));
    assert.deepEqual(checkGrounding(para, eligible, VOCAB), [], `face ${k}: ${para}`);
    assert.deepEqual(checkGrounding(para, faceFacts, VOCAB), [], `face ${k}: ${para}`);
    // No region named -> the paragraph gives the face score.
    if (faceFacts.length === 0) {
      assert.match(para, /no facial region shows/i);
      assert.ok(para.includes(`face score ${fe.forgeryScore.toFixed(2)}`), para);
    }
    // Every region with a fact is actually mentioned.
    for (const f of faceFacts) {
      const side = /^(right|left) (.+)$/.exec(f.region);
      const mentioned = checkGrounding(para, [], [f.region]).length > 0 || (side !== null && para.toLowerCase().includes(`both ${side[2]}s`));
      assert.ok(mentioned, `${f.region} has a fact but is not mentioned: ${para}`);
    }
    // Cue words: each sentence using one only names regions with a passing fact of that cue.
    for (const sentence of para.split(/(?<=\.)\s+/)) {
      for (const [cue, re] of CUE_WORDS) {
        if (!re.test(sentence)) continue;
        const cueFacts = faceFacts.filter((f) => f.cue === cue);
        assert.ok(cueFacts.length > 0, `"${cue}" word without a ${cue} fact: ${sentence}`);
        assert.deepEqual(checkGrounding(sentence, cueFacts, VOCAB), [], `${cue} sentence names a region without that cue: ${sentence}`);
      }
    }
  });
}

const TABLE: [string, ExplanationInput][] = [
  ['forged mouth with three cues, blurry nose and cheek, low-coverage eye', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, 0.93, [
      region('mouth', 0.91, 0.82, { noiseLogRatio: -0.7, colourDelta: 0.11, boundaryStrength: 0.62 }),
      region('lip', 0.88, 0.9, { noiseLogRatio: -0.6, colourDelta: 0.02 }),
      region('nose', 0.7, 0.4, { noiseLogRatio: -0.5, colourDelta: 0.01, boundaryStrength: 0.1 }),
      region('left cheek', 0.6, 0.3, { noiseLogRatio: -0.4 }),
      region('right eye', 0.95, 0.1, { noiseLogRatio: -2, colourDelta: 0.5, boundaryStrength: 2 }),
      region('skin', 0.2, 0.05, { noiseLogRatio: -1 }),
    ])],
  }],
  ['authentic verdict never names a region', {
    verdict: 'LIKELY_AUTHENTIC',
    faces: [face(0, 0.07, [region('mouth', 0.9, 0.9, { noiseLogRatio: -1, colourDelta: 1, boundaryStrength: 1 })])],
  }],
  ['forged verdict but nothing above the coverage threshold', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, 0.58, [region('nose', 0.55, 0.149, { noiseLogRatio: -1 }), region('forehead', 0.5, 0, {})])],
  }],
  ['both eyes share blur; eyebrow sharpened; cue values at the thresholds do not count', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, 0.81, [
      region('right eye', 0.8, 0.7, { noiseLogRatio: -0.9 }),
      region('left eye', 0.79, 0.65, { noiseLogRatio: -0.8, colourDelta: 0.06 }),
      region('right eyebrow', 0.6, 0.15, { noiseLogRatio: 0.6, boundaryStrength: 0.3 }),
      region('forehead', 0.5, 0.5, { noiseLogRatio: -0.35 }),
    ])],
  }],
  ['regions without cues', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, 0.77, [region('chin', 0.7, 0.5, {}), region('jaw', 0.6, 0.3, { noiseLogRatio: 0.1 })])],
  }],
  ['two faces, one forged, one clean', {
    verdict: 'LIKELY_FORGED',
    faces: [
      face(0, 0.1, [region('mouth', 0.1, 0.01, {})]),
      face(1, 0.95, [
        region('nose', 0.9, 0.8, { noiseLogRatio: -0.8 }),
        region('left cheek', 0.85, 0.6, { noiseLogRatio: -0.5, colourDelta: 0.2 }),
        region('mouth', 0.5, 0.05, { noiseLogRatio: -0.9 }),
      ]),
    ],
  }],
  ['uncertain verdict hedges', {
    verdict: 'UNCERTAIN',
    faces: [face(0, 0.48, [region('forehead', 0.45, 0.2, { colourDelta: 0.09 })])],
  }],
  ['every cue on many regions stays short', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, 0.99, ['right eye', 'left eye', 'right eyebrow', 'left eyebrow', 'nose', 'mouth', 'lip',
      'right cheek', 'left cheek', 'forehead', 'chin', 'jaw', 'right ear', 'left ear', 'skin', 'hair']
      .map((n, i) => region(n, 0.99 - i * 0.01, 0.9, { noiseLogRatio: i % 2 ? -0.9 : 0.9, colourDelta: 0.3, boundaryStrength: 0.9 })))],
  }],
  ['missing / NaN evidence', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, NaN, [region('nose', NaN, 0.6, { noiseLogRatio: NaN, colourDelta: undefined }), region('mouth', 0.5, NaN, {})])],
  }],
  ['three faces', {
    verdict: 'UNCERTAIN',
    faces: [
      face(0, 0.5, [region('hair', 0.5, 0.3, { boundaryStrength: 0.5 })]),
      face(1, 0.2, []),
      face(2, 0.6, [region('right ear', 0.6, 0.4, { colourDelta: 0.2 }), region('left ear', 0.55, 0.35, { colourDelta: 0.1 })]),
    ],
  }],
];

const explainer = new TemplateExplainer();

for (const [name, input] of TABLE) {
  test(`invariants: ${name}`, async () => {
    const exp = await explainer.explain(input);
    checkInvariants(input, exp);
    assert.deepEqual(exp.generator, { name: 'template', version: '1.0.0' });
    // Deterministic.
    assert.deepEqual(await explainer.explain(structuredClone(input)), exp);
  });
}

test('invariants hold under non-default thresholds', async () => {
  const o: TemplateExplainerOptions = { minCoverage: 0.5, blurBelow: -0.6, colourAbove: 0.15, boundaryAbove: 0.6, maxRegionsPerFace: 5 };
  const ex = new TemplateExplainer(o);
  for (const [, input] of TABLE) checkInvariants(input, await ex.explain(input), { ...DEFAULT_TEMPLATE_OPTIONS, ...o });
});

test('forged mouth: exact text and facts', async () => {
  const exp = await explainer.explain(TABLE[0][1]);
  // mouth, lip, nose kept (top 3 by score above coverage); the eye (coverage 0.10) is not named.
  // Blur is shared by three regions (one sentence); colour and boundary by the mouth alone,
  // whose two cues share one sentence with a pronoun continuation.
  assert.equal(exp.text, 'The mouth, the lips and the nose are blurrier than the rest of the face. ' +
    'The mouth shows a colour shift against the rest of the face; a soft blending edge runs around it.');
  assert.deepEqual(exp.facts.map((f) => `${f.region}:${f.cue}:${f.value}`), [
    'mouth:coverage:0.82', 'mouth:blur:-0.7', 'mouth:colour:0.11', 'mouth:boundary:0.62',
    'lip:coverage:0.9', 'lip:blur:-0.6',
    'nose:coverage:0.4', 'nose:blur:-0.5',
  ]);
  assert.equal(exp.facts[1].unit, 'log-ratio of high-frequency energy');
  assert.match(exp.facts[0].statement, /^82% of the mouth lies inside the forgery mask/);
  assert.ok(!/eye|cheek|skin/.test(exp.text));
});

test('grouping, pairs, prefixes and the no-region sentence', async () => {
  const eyes = await explainer.explain(TABLE[3][1]);
  assert.match(eyes.text, /both eyes (are|look|appear)[^.]*blurrier/i);
  assert.match(eyes.text, /right eyebrow[^.]*sharper/);
  assert.ok(!/colou?r|edge/.test(eyes.text)); // 0.06 and 0.3 are not above their thresholds
  // Forehead (score 0.5) ranks below the eyebrow (0.6): outside the default top 3.
  assert.ok(!/forehead/.test(eyes.text));

  const two = await explainer.explain(TABLE[5][1]);
  assert.match(two.text, /^On face 1, no facial region shows [^.]*\(face score 0\.10\)\. On face 2, the nose and the left cheek /);
  assert.ok(!/mouth/.test(two.text));

  const clean = await explainer.explain(TABLE[1][1]);
  assert.match(clean.text, /^No facial region shows .*\(face score 0\.07\)\.$/);
  assert.deepEqual(clean.facts, []);

  const unsure = await explainer.explain(TABLE[6][1]);
  assert.match(unsure.text, /forehead/);
  assert.match(unsure.text, /The evidence is weak overall \(face score 0\.48\)\.$/);

  const plain = await explainer.explain(TABLE[4][1]);
  assert.match(plain.text, /the chin and the jaw/i);

  const none = await explainer.explain({ verdict: 'LIKELY_FORGED', faces: [] });
  assert.ok(none.text.length > 0);
  assert.deepEqual(checkGrounding(none.text, [], VOCAB), []);
});

test('phrasing varies with the content but not between runs', async () => {
  const texts = new Set<string>();
  for (const n of ['nose', 'mouth', 'chin', 'forehead', 'left cheek', 'right cheek', 'jaw', 'hair']) {
    const exp = await explainer.explain({ verdict: 'LIKELY_FORGED', faces: [face(0, 0.9, [region(n, 0.9, 0.9, { noiseLogRatio: -1 })])] });
    texts.add(exp.text.replace(n, 'X').replace(/^The X|^X/, 'X'));
  }
  assert.ok(texts.size >= 2, [...texts].join(' | '));
});

test('long inputs are cut to the per-face budget', async () => {
  const big = TABLE[7][1];
  const exp = await new TemplateExplainer({ maxRegionsPerFace: 16, maxCharsPerFace: 300 }).explain(big);
  assert.ok(exp.text.length <= 300, `${exp.text.length}`);
  assert.ok(exp.facts.filter((f) => f.cue === 'coverage').length >= 1);
  checkInvariants(big, exp, { ...DEFAULT_TEMPLATE_OPTIONS, maxRegionsPerFace: 16, maxCharsPerFace: 300 });
});

test('checkGrounding finds unbacked region words (LLM output validation)', () => {
  const facts: Fact[] = [
    { faceIndex: 0, region: 'mouth', cue: 'coverage', value: 0.8, unit: '', statement: '' },
    { faceIndex: 0, region: 'left eye', cue: 'coverage', value: 0.5, unit: '', statement: '' },
    { faceIndex: 0, region: 'lip', cue: 'blur', value: -1, unit: '', statement: '' },
  ];
  assert.deepEqual(checkGrounding('The mouth is blurry and the LIPS look pasted; the left eye is odd.', facts, VOCAB), []);
  assert.deepEqual(
    checkGrounding('The Mouth and the nose are blurry, the right eye and the cheeks too; the teeth look fake.', facts, VOCAB),
    ['nose', 'right eye', 'cheeks', 'teeth'],
  );
  // A family word is backed by a sided fact; "both" needs both sides.
  assert.deepEqual(checkGrounding('The eye looks off.', facts, VOCAB), []);
  assert.deepEqual(checkGrounding('Both eyes look off.', facts, VOCAB), ['both eyes']);
  const both = [...facts, { ...facts[1], region: 'right eye' }];
  assert.deepEqual(checkGrounding('Both eyes look off.', both, VOCAB), []);
  // Whole words only, longest match first, duplicates reported once.
  assert.deepEqual(checkGrounding('The chinese earring; eyebrowless? nose, nose.', facts, VOCAB), ['nose']);
  assert.deepEqual(checkGrounding('The right eyebrow is fine.', facts, VOCAB), ['right eyebrow']);
  assert.deepEqual(checkGrounding('', facts, VOCAB), []);
  assert.deepEqual(checkGrounding('The nose.', facts, []), []);
});
