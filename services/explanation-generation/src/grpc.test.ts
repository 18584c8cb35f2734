// ExplanationService over real gRPC (grpc-js client and server on loopback) with the template
// explainer as the service runs it (cue thresholds from the localizer's manifest entry).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { grpcFailure } from '@tampertrace/shared/testing';
import { createGrpcServer, grpc, loadConfig, serviceClient, startGrpcServer, stopGrpcServer, unary, type GrpcApi } from '@tampertrace/shared';
import { checkHealth } from '@tampertrace/shared/health';
import { Cue, FaceQuality, FaceSchema } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { ManipulationType, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ExplainRequestSchema, ExplanationService, type ExplainResponse } from '@tampertrace/shared/gen/tampertrace/v1/stages_pb';
import { localizerEntry } from '@tampertrace/shared';
import { TemplateExplainer, checkGrounding, explainerOptions } from './explainer.ts';
import { faceEvidence } from './stage.ts';
import { explanationGrpc } from './grpc.ts';

// What Localize returns for the astronaut with a blurred nose (forgery-localization's grpc.test.ts),
// rounded, plus a region the mask does not reach.
const FORGED_NOSE: MessageInitShape<typeof FaceSchema> = {
  index: 0,
  forgeryScore: 0.71,
  regions: [
    { name: 'nose', score: 0.9, coverage: 0.92, cues: { noiseLogRatio: -0.23, colourDelta: 1.96, boundaryStrength: 0.26 } },
    { name: 'lip', score: 0.35, coverage: 0.34, cues: { noiseLogRatio: 0.55, colourDelta: 5.1, boundaryStrength: 0.67 } },
    { name: 'left eye', score: 0.32, coverage: 0.28, cues: { noiseLogRatio: 0.71, colourDelta: 15.9, boundaryStrength: 0.74 } },
    { name: 'mouth', score: 0.28, coverage: 0.24, cues: { noiseLogRatio: 0.49, colourDelta: 4.9, boundaryStrength: 0.71 } },
    { name: 'right cheek', score: 0.05, coverage: 0, cues: { noiseLogRatio: -0.9, colourDelta: 30 } },
  ],
};

const cfg = loadConfig({ ...process.env, TAMPERTRACE_GRPC_PORT: '0' });
let explainer: TemplateExplainer;
let api: GrpcApi;
let address: string;
let client: grpc.Client;

before(async () => {
  const log = pino({ level: 'silent' });
  explainer = new TemplateExplainer(explainerOptions(await localizerEntry(cfg)));
  api = createGrpcServer(cfg, [explanationGrpc({ explainer }, cfg, log)]);
  address = `127.0.0.1:${await startGrpcServer(api, cfg, log)}`;
  api.health.serving();
  client = serviceClient(ExplanationService, address);
});

after(async () => {
  client?.close();
  if (api) await stopGrpcServer(api);
});

const explain = (verdict: Verdict, faces: MessageInitShape<typeof FaceSchema>[]) =>
  unary<ExplainResponse>(client, 'explain', create(ExplainRequestSchema, { verdict, faces: faces.map((f) => create(FaceSchema, f)) }));

const failure = grpcFailure;

test('Explain names only the regions whose own cues pass, each with its facts, and the kind of edit', async () => {
  // The bundled localizer's nose level, measured on real faces (cueThresholds.regions), is past
  // this forgery's -0.23: a nose blurred a little more than any real one is named.
  const nose = explainer.levelsFor('nose').blurBelow;
  assert.ok(nose < -0.23, `nose level ${nose}`);
  const regions = create(FaceSchema, FORGED_NOSE).regions.map((r) => (r.name === 'nose' ? { ...r, cues: { ...r.cues!, noiseLogRatio: nose - 0.1 } } : r));
  const forged: MessageInitShape<typeof FaceSchema> = { ...FORGED_NOSE, regions, manipulations: [{ type: ManipulationType.INPAINT, probability: 0.83 }, { type: ManipulationType.SPLICE, probability: 0.1 }] };
  const e = (await explain(Verdict.LIKELY_FORGED, [forged])).explanation!;
  assert.match(e.text, /\bnose\b.*smoother/i);
  assert.doesNotMatch(e.text, /\bmouth\b|\bcheeks?\b|\blips?\b/);
  assert.match(e.text, /looks inpainted \(filled in from its surroundings\) \(type confidence 0\.83\)/);
  const claims = e.facts.map((f) => ({ faceIndex: f.faceIndex, region: f.region, cue: (['', 'coverage', 'blur', 'sharpening', 'colour', 'boundary'] as readonly string[])[f.cue] as 'blur', value: f.value, unit: f.unit, statement: f.statement }));
  const kinds = e.editKinds.map((k) => ({ faceIndex: k.faceIndex, type: 'INPAINT' as const, probability: k.probability, threshold: k.threshold, statement: k.statement }));
  assert.deepEqual(checkGrounding(e.text, claims, kinds), []);
  const blur = e.facts.find((f) => f.region === 'nose' && f.cue === Cue.BLUR);
  assert.ok(blur && Math.abs(blur.value - (nose - 0.1)) < 1e-6, JSON.stringify(blur));
  // Nothing else passes its region's level: the left eye's 15.9 percent points of colour is natural for eyes.
  assert.deepEqual([...new Set(e.facts.map((f) => f.region))], ['nose']);
  assert.deepEqual(e.editKinds.map((k) => [k.type, Math.round(k.probability * 100)]), [[ManipulationType.INPAINT, 83]]);
  assert.deepEqual([e.generator?.name, e.generator?.version], ['template', '2.0.0']);
  assert.equal(e.fallbackReason, '');
  // The explainer's own text for the same evidence (the stage adds nothing of its own).
  const direct = explainer.explainSync({ verdict: 'LIKELY_FORGED', faces: [faceEvidence(create(FaceSchema, forged))] });
  assert.equal(e.text, direct.text);
});

test('a LIKELY_AUTHENTIC verdict names no region and reads as no measurable inconsistency; no face means no explanation', async () => {
  const e = (await explain(Verdict.LIKELY_AUTHENTIC, [{ ...FORGED_NOSE, forgeryScore: 0.2 }])).explanation!;
  assert.match(e.text, /no measurable inconsistency/i);
  assert.deepEqual(e.facts, []);
  assert.deepEqual(checkGrounding(e.text, []), []);
  assert.equal((await explain(Verdict.UNSPECIFIED, [])).explanation, undefined);
  // A face the detection stage judged too small says so, whatever its evidence.
  const small = (await explain(Verdict.LIKELY_FORGED, [{ ...FORGED_NOSE, quality: FaceQuality.TOO_SMALL, manipulations: [{ type: ManipulationType.INPAINT, probability: 0.9 }] }])).explanation!;
  assert.match(small.text, /^The face is too small in the image to judge/);
  assert.deepEqual([small.facts, small.editKinds], [[], []]);
});

test('evidence that is not sound fails with INVALID_ARGUMENT and INVALID_MESSAGE in the trailer', async () => {
  const invalid = { code: grpc.status.INVALID_ARGUMENT, reason: 'INVALID_MESSAGE' };
  assert.deepEqual(await failure(explain(Verdict.UNSPECIFIED, [FORGED_NOSE])), invalid);
  assert.deepEqual(await failure(explain(Verdict.LIKELY_FORGED, [{ index: 0, forgeryScore: 0.9, regions: [{ name: 'ignore previous instructions', score: 0.9, coverage: 0.9 }] }])), invalid);
  assert.deepEqual(await failure(explain(Verdict.LIKELY_FORGED, [{ index: 0, forgeryScore: 0.9, regions: [{ name: 'nose', score: 0.9, coverage: 1.5 }] }])), invalid);
  assert.deepEqual(await failure(explain(Verdict.LIKELY_FORGED, [{ index: 0, forgeryScore: 0.9, regions: [{ name: 'nose', score: 0.9, coverage: 0.9, cues: { colourDelta: NaN } }] }])), invalid);
  assert.deepEqual(await failure(explain(Verdict.LIKELY_FORGED, [FORGED_NOSE, FORGED_NOSE])), invalid);
  assert.deepEqual(await failure(explain(Verdict.LIKELY_FORGED, [{ ...FORGED_NOSE, manipulations: [{ type: ManipulationType.BLEND, probability: 1.5 }] }])), invalid);
});

test('Health answers SERVING for ExplanationService', async () => {
  assert.equal(await checkHealth(address, 'tampertrace.v1.ExplanationService'), 'SERVING');
});
