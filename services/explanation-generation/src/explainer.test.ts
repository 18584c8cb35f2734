import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkGrounding, CUE_WORDS, cuePasses, DEFAULT_TEMPLATE_OPTIONS, explainerOptions, TemplateExplainer } from './explainer.ts';
import type { EditKindFact, Explanation, ExplanationInput, Fact, FaceEvidence, RegionEvidence, TemplateExplainerOptions } from './explainer.ts';
import { findRegionMentions, mentionBacked, regionsNamedBy } from '@tampertrace/shared/region-words';

function region(name: string, score: number, coverage: number, cues: RegionEvidence['cues'] = {}): RegionEvidence {
  return { name, score, coverage, cues };
}
function face(faceIndex: number, forgeryScore: number, regions: RegionEvidence[], extra: Partial<FaceEvidence> = {}): FaceEvidence {
  return { faceIndex, forgeryScore, regions, ...extra };
}

/** Splits the text into one paragraph per face (paragraphs start "On face N, " when several). */
function paragraphs(input: ExplanationInput, text: string): string[] {
  if (input.faces.length <= 1) return [text];
  const parts = text.split(/ (?=On face \d+, )/);
  assert.equal(parts.length, input.faces.length, `one paragraph per face: ${text}`);
  return parts;
}

/** The invariants of the issue, checked on one input / output pair. */
function checkInvariants(input: ExplanationInput, exp: Explanation, ex: TemplateExplainer): void {
  const ctx = `\ntext: ${exp.text}`;
  assert.ok(exp.text.trim().length > 0);
  assert.deepEqual(checkGrounding(exp.text, exp.facts, exp.editKinds), [], ctx);
  for (const f of exp.facts) {
    const fe = input.faces.find((x) => x.faceIndex === f.faceIndex)!;
    const r = fe.regions.find((x) => x.name === f.region);
    assert.ok(r && r.coverage >= ex.options.minCoverage, `fact for an unknown / low-coverage region ${f.region}${ctx}`);
    if (f.cue !== 'coverage') assert.ok(cuePasses(f.cue, r, ex.levelsFor(r.name)), `fact below its region's level: ${JSON.stringify(f)}${ctx}`);
    // No region without a cue of its own: a coverage fact always comes with a cue fact.
    assert.ok(exp.facts.some((g) => g.cue !== 'coverage' && g.region === f.region && g.faceIndex === f.faceIndex), ctx);
  }
  for (const k of exp.editKinds) assert.ok(k.probability >= k.threshold && k.threshold === ex.typeLevel(input.faces.find((f) => f.faceIndex === k.faceIndex)!), ctx);
  if (input.verdict === 'LIKELY_AUTHENTIC') assert.equal(exp.facts.length + exp.editKinds.length, 0, ctx);
  const paras = paragraphs(input, exp.text);
  input.faces.forEach((fe, k) => {
    const para = paras[k];
    assert.ok(para.length > 0 && para.length <= ex.options.maxCharsPerFace + 20, `paragraph length ${para.length}: ${para}`);
    const faceFacts = exp.facts.filter((f) => f.faceIndex === fe.faceIndex);
    assert.deepEqual(checkGrounding(para, faceFacts, exp.editKinds.filter((e) => e.faceIndex === fe.faceIndex)), [], `face ${k}: ${para}`);
    if (faceFacts.length === 0 && exp.editKinds.every((e) => e.faceIndex !== fe.faceIndex)) {
      assert.match(para, input.verdict === 'LIKELY_AUTHENTIC' ? /no measurable inconsistency/i : /no single facial region shows a cue past its natural level|too small|too degraded/i, para);
      if (input.verdict === 'LIKELY_AUTHENTIC') assert.match(para, /no measurable inconsistency/i);
      // Never a clearance.
      assert.doesNotMatch(para, /authentic|genuine|not (been )?manipulated|no sign/i, para);
    }
    for (const f of faceFacts) {
      assert.ok(findRegionMentions(para).some((m) => regionsNamedBy(m, [f.region]).length > 0), `${f.region} has a fact but is not mentioned: ${para}`);
    }
  });
}

const TABLE: [string, ExplanationInput][] = [
  ['forged mouth with three cues, blurry nose, low-coverage eye', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, 0.93, [
      region('mouth', 0.91, 0.82, { noiseLogRatio: -0.7, colourDelta: 21, boundaryStrength: 1.6 }),
      region('lips', 0.88, 0.9, { noiseLogRatio: -0.6, colourDelta: 2 }),
      region('nose', 0.7, 0.4, { noiseLogRatio: -0.5, colourDelta: 1, boundaryStrength: 0.1 }),
      region('left cheek', 0.6, 0.3, {}),
      region('right eye', 0.95, 0.1, { noiseLogRatio: -2, colourDelta: 50, boundaryStrength: 2 }),
      region('skin', 0.2, 0.05, { noiseLogRatio: -1 }),
    ])],
  }],
  ['authentic verdict never names a region', {
    verdict: 'LIKELY_AUTHENTIC',
    faces: [face(0, 0.07, [region('mouth', 0.9, 0.9, { noiseLogRatio: -1, colourDelta: 40, boundaryStrength: 3 })], { manipulations: [{ type: 'INPAINT', probability: 0.9 }] })],
  }],
  ['forged verdict but nothing above the coverage threshold', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, 0.58, [region('nose', 0.55, 0.149, { noiseLogRatio: -1 }), region('forehead', 0.5, 0, {})])],
  }],
  ['regions without a passing cue are not named', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, 0.77, [region('chin', 0.7, 0.5, {}), region('jaw', 0.6, 0.3, { noiseLogRatio: 0.1, colourDelta: 13 })])],
  }],
  ['two faces, one forged, one clean', {
    verdict: 'LIKELY_FORGED',
    faces: [
      face(0, 0.1, [region('mouth', 0.1, 0.01, {})]),
      face(1, 0.95, [
        region('nose', 0.9, 0.8, { noiseLogRatio: -0.8 }),
        region('left cheek', 0.85, 0.6, { noiseLogRatio: -0.5, colourDelta: 20 }),
        region('mouth', 0.5, 0.05, { noiseLogRatio: -0.9 }),
      ], { manipulations: [{ type: 'SMOOTH', probability: 0.71 }, { type: 'RECOLOUR', probability: 0.64 }, { type: 'SPLICE', probability: 0.2 }] }),
    ],
  }],
  ['uncertain verdict hedges', {
    verdict: 'UNCERTAIN',
    faces: [face(0, 0.48, [region('forehead', 0.45, 0.2, { colourDelta: 19 })])],
  }],
  ['every cue on many regions stays short', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, 0.99, ['right eye', 'left eye', 'right eyebrow', 'left eyebrow', 'nose', 'mouth', 'lips',
      'right cheek', 'left cheek', 'forehead', 'chin', 'jaw', 'right ear', 'left ear', 'skin', 'hair', 'teeth', 'beard', 'left pupil']
      .map((n, i) => region(n, 0.99 - i * 0.01, 0.9, { noiseLogRatio: i % 2 ? -0.9 : 0.9, colourDelta: 60, boundaryStrength: 2.9 })),
    { manipulations: [{ type: 'BLEND', probability: 0.9 }, { type: 'INPAINT', probability: 0.8 }, { type: 'SHARPEN', probability: 0.7 }] })],
  }],
  ['missing / NaN evidence', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, NaN, [region('nose', NaN, 0.6, { noiseLogRatio: NaN, colourDelta: undefined }), region('mouth', 0.5, NaN, {})])],
  }],
  ['too small and too degraded faces say so, whatever their evidence', {
    verdict: 'LIKELY_FORGED',
    faces: [
      face(0, 0.9, [region('nose', 0.9, 0.9, { noiseLogRatio: -2 })], { quality: 'TOO_SMALL', manipulations: [{ type: 'INPAINT', probability: 0.9 }] }),
      face(1, 0.9, [region('nose', 0.9, 0.9, { noiseLogRatio: -2 })], { quality: 'TOO_DEGRADED' }),
      face(2, 0.9, [region('nose', 0.9, 0.9, { noiseLogRatio: -2 })], { quality: 'JUDGEABLE' }),
    ],
  }],
  ['a kind of edit without any region claim', {
    verdict: 'LIKELY_FORGED',
    faces: [face(0, 0.8, [region('mouth', 0.8, 0.7, {})], { manipulations: [{ type: 'INPAINT', probability: 0.83 }] })],
  }],
];

const explainer = new TemplateExplainer();

for (const [name, input] of TABLE) {
  test(`invariants: ${name}`, async () => {
    const exp = await explainer.explain(input);
    checkInvariants(input, exp, explainer);
    assert.deepEqual(exp.generator, { name: 'template', version: '2.0.0' });
    assert.deepEqual(await explainer.explain(structuredClone(input)), exp);
  });
}

test('invariants hold under non-default and per-region levels', async () => {
  const o: TemplateExplainerOptions = { minCoverage: 0.5, blurBelow: -0.6, colourAbove: 25, boundaryAbove: 1.5, maxRegionsPerFace: 5, regionThresholds: { lip: { colourAbove: 40 }, 'left cheek': { blurBelow: -0.2 } } };
  const ex = new TemplateExplainer(o);
  for (const [, input] of TABLE) checkInvariants(input, await ex.explain(input), ex);
});

test('forged mouth: exact text and facts, units in percent points', async () => {
  const exp = await explainer.explain(TABLE[0][1]);
  // Evidence order: lips (0.88 x 0.9) before the mouth (0.91 x 0.82) before the nose; the
  // cheek has no cue, the eye too little coverage: neither is named. The mouth's cues go
  // strongest first (colour 21/13, blur -0.7/-0.13 = 5.4, boundary 1.6/0.91).
  assert.equal(exp.text,
    'The lips are smoother than the rest of the face. ' +
    'The mouth is smoother than the rest of the face, a blending edge runs around it and its colour does not match the rest of the face. ' +
    'The nose is smoother than the surrounding skin.');
  assert.deepEqual(exp.facts.map((f) => `${f.region}:${f.cue}:${f.value}`), [
    'lips:coverage:0.9', 'lips:blur:-0.6',
    'mouth:coverage:0.82', 'mouth:blur:-0.7', 'mouth:boundary:1.6', 'mouth:colour:21',
    'nose:coverage:0.4', 'nose:blur:-0.5',
  ]);
  const colour = exp.facts.find((f) => f.cue === 'colour')!;
  assert.equal(colour.unit, 'percent points of chromaticity');
  assert.equal(colour.statement, "The mouth is 21.0 percent points of chromaticity away from the face's own colour (above this region's level of 13.0).");
  assert.match(exp.facts[0].statement, /^90% of the lips lie inside the forgery mask/);
  assert.doesNotMatch(exp.text, /eye|cheek|skin\b(?<!surrounding skin)/);
});

test('kinds of edit are named with their confidence, only from typeThreshold, most probable first', async () => {
  const exp = await explainer.explain(TABLE[4][1]);
  assert.match(exp.text, /^On face 1, no single facial region shows a cue past its natural level, so none is named \(face score 0\.10\)\. On face 2, /);
  assert.match(exp.text, /The edit looks smoothed or retouched \(type confidence 0\.71\) and recoloured \(0\.64\)\.$/);
  assert.deepEqual(exp.editKinds.map((k) => [k.faceIndex, k.type, k.probability, k.threshold]), [[1, 'SMOOTH', 0.71, 0.5], [1, 'RECOLOUR', 0.64, 0.5]]);
  assert.doesNotMatch(exp.text, /splic/);
  const only = await explainer.explain(TABLE[9][1]);
  assert.equal(only.text, 'No single facial region shows a cue past its natural level, so none is named (face score 0.80). The edit looks inpainted (filled in from its surroundings) (type confidence 0.83).');
  const higher = await new TemplateExplainer({ typeThreshold: 0.9 }).explain(TABLE[9][1]);
  assert.deepEqual(higher.editKinds, []);
  // The face's own threshold (from the localizer, carried in the analysis) wins over the option.
  const own = structuredClone(TABLE[9][1]);
  own.faces[0].typeThreshold = 0.8;
  assert.deepEqual((await new TemplateExplainer({ typeThreshold: 0.9 }).explain(own)).editKinds.map((k) => [k.type, k.threshold]), [['INPAINT', 0.8]]);
  assert.match(higher.text, /^No single facial region shows a cue past its natural level/);
});

test('low scores say "no measurable inconsistency", never a clearance; unjudgeable faces say why', async () => {
  const clean = await explainer.explain(TABLE[1][1]);
  assert.equal(clean.text, 'No measurable inconsistency was found on this face (face score 0.07); that is not proof that it is unedited.');
  const q = await explainer.explain(TABLE[8][1]);
  assert.match(q.text, /^On face 1, the face is too small in the image to judge, so its scores say nothing either way\. On face 2, the face is too degraded \(blurred, hidden or turned away\) to judge/);
  assert.match(q.text, /On face 3, the nose is smoother than the surrounding skin\.$/);
  assert.deepEqual(q.facts.map((f) => f.faceIndex), [2, 2]);
  assert.deepEqual(q.editKinds, []);
  const unsure = await explainer.explain(TABLE[5][1]);
  assert.equal(unsure.text, 'The colour of the forehead does not match the rest of the face. The evidence is weak overall (face score 0.48).');
});

test('per-region levels: a natural lip colour does not pass, a real lip recolouring does', async () => {
  const ex = new TemplateExplainer({ regionThresholds: { lip: { colourAbove: 30 }, eye: { sharpenAbove: 1.2 } } });
  const lips = (colourDelta: number) => ex.explainSync({ verdict: 'LIKELY_FORGED', faces: [face(0, 0.9, [region('lips', 0.8, 0.6, { colourDelta })])] });
  assert.deepEqual(lips(25).facts, []);
  assert.deepEqual(lips(35).facts.map((f) => f.cue), ['coverage', 'colour']);
  // Family levels apply to sided names; other regions keep the global level.
  assert.equal(ex.levelsFor('left eye').sharpenAbove, 1.2);
  assert.equal(ex.levelsFor('nose').sharpenAbove, DEFAULT_TEMPLATE_OPTIONS.sharpenAbove);
  assert.equal(ex.levelsFor('lip').colourAbove, 30);
  // Zones nobody measured take the strictest level known.
  assert.deepEqual(ex.levelsFor('teeth'), { blurBelow: -0.13, sharpenAbove: 1.2, colourAbove: 30, boundaryAbove: 0.91 });
  const teeth = ex.explainSync({ verdict: 'LIKELY_FORGED', faces: [face(0, 0.9, [region('teeth', 0.8, 0.6, { colourDelta: 20 })])] });
  assert.deepEqual(teeth.facts, []);
});

test('explainerOptions reads the manifest entry: global, per-region levels and typeThreshold', () => {
  const o = explainerOptions({ cueThresholds: { blurBelow: -0.2, colourAbove: 13, regions: { lip: { colourAbove: 31 } } }, typeThreshold: 0.6 });
  const ex = new TemplateExplainer(o);
  assert.equal(ex.options.blurBelow, -0.2);
  assert.equal(ex.options.typeThreshold, 0.6);
  assert.equal(ex.levelsFor('lips').colourAbove, 31);
  assert.equal(new TemplateExplainer(explainerOptions(undefined)).options.colourAbove, 13);
});

test('long inputs are cut to the per-face budget, strongest claims kept', async () => {
  const big = TABLE[6][1];
  const ex = new TemplateExplainer({ maxRegionsPerFace: 19, maxCharsPerFace: 300 });
  const exp = await ex.explain(big);
  assert.ok(exp.text.length <= 300, `${exp.text.length}`);
  assert.equal(exp.facts[0].region, 'right eye');
  checkInvariants(big, exp, ex);
});

const fact = (region: string, cue: Fact['cue']): Fact => ({ faceIndex: 0, region, cue, value: 1, unit: '', statement: '' });
const kind = (type: EditKindFact['type']): EditKindFact => ({ faceIndex: 0, type, probability: 0.9, threshold: 0.5, statement: '' });

test('checkGrounding: region words need a cue fact of their own, coverage is not enough', () => {
  const facts = [fact('mouth', 'coverage'), fact('mouth', 'blur'), fact('left eye', 'colour'), fact('lips', 'blur'), fact('nose', 'coverage')];
  assert.deepEqual(checkGrounding('The mouth is smoother than the surrounding skin. The LIPS look blurry; the left eye is off-colour.', facts), []);
  assert.deepEqual(
    checkGrounding('The Mouth and the nose are odd, the right eye and the cheeks too; the teeth look fake.', facts),
    ['nose', 'right eye', 'cheeks', 'teeth'],
  );
  // Synonyms and older region names: "lip" is backed by a "lips" fact and the other way round.
  assert.deepEqual(checkGrounding('The lip is blurry.', facts), []);
  assert.deepEqual(checkGrounding('The lips are blurry.', [fact('lip', 'blur')]), []);
  // "eye" is backed by "left eye"; "both eyes" needs both sides.
  assert.deepEqual(checkGrounding('The eye has an odd colour.', facts), []);
  assert.deepEqual(checkGrounding('Both eyes have an odd colour.', facts), ['both eyes']);
  assert.deepEqual(checkGrounding('Both eyes have an odd colour.', [...facts, fact('right eye', 'colour')]), []);
  // Whole words only, duplicates once, and "the surrounding skin" is a reference, not a claim.
  assert.deepEqual(checkGrounding('The chinese earring; eyebrowless? nose, nose.', facts), ['nose']);
  assert.deepEqual(checkGrounding('The mouth is smoother than the surrounding skin.', facts), []);
  assert.deepEqual(checkGrounding('The skin is smoother.', facts), ['skin']);
  assert.deepEqual(checkGrounding('', facts), []);
});

test('checkGrounding: cue words in a sentence need that cue for every region it names', () => {
  const facts = [fact('mouth', 'blur'), fact('left eye', 'colour')];
  assert.deepEqual(checkGrounding('The mouth is blurry.', facts), []);
  assert.deepEqual(checkGrounding('The mouth has a colour shift.', facts), ['colour: mouth']);
  assert.deepEqual(checkGrounding('The left eye and the mouth are smoother than the rest.', facts), ['blur: left eye']);
  assert.deepEqual(checkGrounding('A blending edge runs around the mouth. Its colour is off.', facts), ['boundary: mouth']);
  // Every cue lexicon catches its own words.
  for (const [cue, re] of Object.entries(CUE_WORDS)) assert.ok(re.test({ blur: 'blurrier', sharpening: 'grainier', colour: 'colour', boundary: 'seam' }[cue]!), cue);
});

test('checkGrounding: kinds of edit need a claim of that kind', () => {
  assert.deepEqual(checkGrounding('The mouth looks inpainted and spliced in.', [fact('mouth', 'blur')]), ['inpainted', 'spliced']);
  assert.deepEqual(checkGrounding('The edit looks inpainted.', [], [kind('INPAINT')]), []);
  assert.deepEqual(checkGrounding('It was recoloured, or a face swap.', [], [kind('RECOLOUR')]), ['face swap']);
});

test('region words: plurals, synonyms and sides resolve to the stored regions', () => {
  const names = ['right eye', 'left eye', 'lips', 'mouth', 'teeth', 'left cheek', 'right cheek', 'mustache', 'left pupil'];
  const resolve = (text: string) => findRegionMentions(text).map((m) => regionsNamedBy(m, names));
  assert.deepEqual(resolve('the eyes, the lip, the tooth, both cheeks, the moustache, the left iris'), [
    ['right eye', 'left eye'], ['lips'], ['teeth'], ['left cheek', 'right cheek'], ['mustache'], ['left pupil'],
  ]);
  assert.deepEqual(resolve('the right cheek and the Left Eye'), [['right cheek'], ['left eye']]);
  assert.ok(mentionBacked(findRegionMentions('both cheeks')[0], ['left cheek', 'right cheek']));
  assert.ok(!mentionBacked(findRegionMentions('both cheeks')[0], ['left cheek']));
});
