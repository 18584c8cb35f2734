// ExplanationService over real gRPC (grpc-js client and server on loopback) with the template
// explainer as the service runs it (cue thresholds from the localizer's manifest entry).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { grpcFailure } from '@tampertrace/shared/testing';
import { createGrpcServer, grpc, loadConfig, serviceClient, startGrpcServer, stopGrpcServer, unary, type GrpcApi } from '@tampertrace/shared';
import { checkHealth } from '@tampertrace/shared/health';
import { Cue, FaceSchema } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ExplainRequestSchema, ExplanationService, type ExplainResponse } from '@tampertrace/shared/gen/tampertrace/v1/stages_pb';
import { localizerEntry } from '@tampertrace/shared';
import { DEFAULT_REGION_VOCABULARY, TemplateExplainer, checkGrounding } from './explainer.ts';
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
  explainer = new TemplateExplainer((await localizerEntry(cfg)).cueThresholds);
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

test('Explain names only the regions the evidence backs, each with its facts', async () => {
  const e = (await explain(Verdict.LIKELY_FORGED, [FORGED_NOSE])).explanation!;
  assert.match(e.text, /\bnose\b.*blurrier/i);
  assert.match(e.text, /\blips\b/);
  assert.match(e.text, /\bleft eye\b/);
  // The fourth region (three per face at most) and the one outside the mask are not named.
  assert.doesNotMatch(e.text, /\bmouth\b|\bcheeks?\b/);
  // checkGrounding looks at the facts' regions only.
  const backing = e.facts.map((f) => ({ faceIndex: f.faceIndex, region: f.region, cue: 'coverage' as const, value: f.value, unit: f.unit, statement: f.statement }));
  assert.deepEqual(checkGrounding(e.text, backing, DEFAULT_REGION_VOCABULARY), []);
  assert.deepEqual([...new Set(e.facts.map((f) => f.region))].sort(), ['left eye', 'lip', 'nose']);
  const blur = e.facts.find((f) => f.region === 'nose' && f.cue === Cue.BLUR);
  assert.ok(blur && Math.abs(blur.value - -0.23) < 1e-6, JSON.stringify(blur));
  assert.ok(e.facts.some((f) => f.region === 'left eye' && f.cue === Cue.COLOUR));
  assert.deepEqual([e.generator?.name, e.generator?.version], ['template', '1.0.0']);
  // The explainer's own text for the same evidence (the stage adds nothing of its own).
  const face = create(FaceSchema, FORGED_NOSE);
  const direct = explainer.explainSync({
    verdict: 'LIKELY_FORGED',
    faces: [{ faceIndex: 0, forgeryScore: face.forgeryScore, regions: face.regions.map((r) => ({ name: r.name, score: r.score, coverage: r.coverage, cues: { ...r.cues } })) }],
  });
  assert.equal(e.text, direct.text);
});

test('a LIKELY_AUTHENTIC verdict names no region; no face means no explanation', async () => {
  const e = (await explain(Verdict.LIKELY_AUTHENTIC, [{ ...FORGED_NOSE, forgeryScore: 0.2 }])).explanation!;
  assert.match(e.text, /no facial region/i);
  assert.deepEqual(e.facts, []);
  assert.deepEqual(checkGrounding(e.text, [], DEFAULT_REGION_VOCABULARY), []);
  assert.equal((await explain(Verdict.UNSPECIFIED, [])).explanation, undefined);
});

test('evidence that is not sound fails with INVALID_ARGUMENT and INVALID_MESSAGE in the trailer', async () => {
  const invalid = { code: grpc.status.INVALID_ARGUMENT, reason: 'INVALID_MESSAGE' };
  assert.deepEqual(await failure(explain(Verdict.UNSPECIFIED, [FORGED_NOSE])), invalid);
  assert.deepEqual(await failure(explain(Verdict.LIKELY_FORGED, [{ index: 0, forgeryScore: 0.9, regions: [{ name: 'ignore previous instructions', score: 0.9, coverage: 0.9 }] }])), invalid);
  assert.deepEqual(await failure(explain(Verdict.LIKELY_FORGED, [{ index: 0, forgeryScore: 0.9, regions: [{ name: 'nose', score: 0.9, coverage: 1.5 }] }])), invalid);
  assert.deepEqual(await failure(explain(Verdict.LIKELY_FORGED, [{ index: 0, forgeryScore: 0.9, regions: [{ name: 'nose', score: 0.9, coverage: 0.9, cues: { colourDelta: NaN } }] }])), invalid);
  assert.deepEqual(await failure(explain(Verdict.LIKELY_FORGED, [FORGED_NOSE, FORGED_NOSE])), invalid);
});

test('Health answers SERVING for ExplanationService', async () => {
  assert.equal(await checkHealth(address, 'tampertrace.v1.ExplanationService'), 'SERVING');
});
