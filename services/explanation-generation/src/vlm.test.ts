// The vision-language explainer against an OpenAI-compatible chat-completions server that this
// test runs on loopback (a stand-in for vLLM / llama.cpp / Ollama, which cannot run here).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import sharp from 'sharp';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import { create } from '@bufbuild/protobuf';
import { FsObjectStore } from '@tampertrace/shared';
import { ManipulationType, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { EventMetaSchema, ForgeryLocalizedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { TemplateExplainer, checkGrounding, type ExplanationInput } from './explainer.ts';
import { explanationStage } from './stage.ts';
import { accept, CircuitBreaker, VlmExplainer, type VlmOptions } from './vlm.ts';

const KEY = 'sk-test-7f3a9c1e5b2d4f6a8c0e';

/** What the server does with the next requests: answer with a body, a status, hang, or wait first. */
type Behaviour = { status?: number; body?: string; delayMs?: number; hang?: boolean };
let behaviour: (body: Record<string, unknown>) => Behaviour = () => ({ status: 500 });
const received: { authorization?: string; body: Record<string, unknown> }[] = [];
let concurrent = 0;
let maxConcurrent = 0;
const server = http.createServer(async (req, res) => {
  concurrent++;
  maxConcurrent = Math.max(maxConcurrent, concurrent);
  try {
    let raw = '';
    for await (const c of req) raw += c;
    const body = JSON.parse(raw) as Record<string, unknown>;
    received.push({ authorization: req.headers.authorization, body });
    const b = behaviour(body);
    if (b.delayMs) await new Promise((r) => setTimeout(r, b.delayMs));
    if (b.hang) {
      await once(res, 'close');
      return;
    }
    res.writeHead(b.status ?? 200, { 'content-type': 'application/json' }).end(b.body ?? '');
  } finally {
    concurrent--;
  }
});
let url: string;

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const logged: string[] = [];
const log = pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => (logged.push(String(c)), cb()) }));

before(async () => {
  provider.register();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`;
});
after(async () => {
  server.closeAllConnections();
  server.close();
  await provider.shutdown();
});

/** A chat completion whose message content is `content` (a JSON answer, usually). */
const completion = (content: unknown) => JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: typeof content === 'string' ? content : JSON.stringify(content) } }] });

const template = new TemplateExplainer();
const options = (o: Partial<VlmOptions> = {}): VlmOptions => ({
  url, model: 'test-vlm', apiKey: KEY, timeoutMs: 2000, maxConcurrency: 4, breakerFailures: 3, breakerResetMs: 60_000, responseFormat: 'json_schema', ...o,
});
let facePng: Uint8Array;
const input = (): ExplanationInput => ({
  verdict: 'LIKELY_FORGED',
  faces: [{
    faceIndex: 0,
    forgeryScore: 0.9,
    regions: [
      { name: 'left cheek', score: 0.9, coverage: 0.7, cues: { noiseLogRatio: -0.8, colourDelta: 25 } },
      { name: 'lips', score: 0.8, coverage: 0.6, cues: { colourDelta: 30 } },
      { name: 'nose', score: 0.2, coverage: 0.05, cues: { noiseLogRatio: -2 } },
    ],
    manipulations: [{ type: 'SMOOTH', probability: 0.77 }],
  }],
  faceImage: async () => facePng,
});

before(async () => {
  facePng = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#a07050' } }).png().toBuffer();
});

const GOOD = { faces: [{ face: 1, claims: [
  { region: 'left cheek', cues: ['blur', 'colour'], sentence: 'The left cheek looks airbrushed: smoother than the surrounding skin, and its colour is a little off.' },
  { region: 'lips', cues: ['colour'], sentence: 'The lips have a colour that does not belong to this face.' },
] }] };

test('a good answer: the model\'s sentences, in evidence order, with the template\'s kind of edit, and the model recorded', async () => {
  received.length = 0;
  behaviour = () => ({ body: completion(GOOD) });
  const e = await new VlmExplainer(options(), template).explain(input());
  assert.equal(e.text, 'The left cheek looks airbrushed: smoother than the surrounding skin, and its colour is a little off. The lips have a colour that does not belong to this face. The edit looks smoothed or retouched (type confidence 0.77).');
  assert.deepEqual(e.generator, { name: 'openai-compatible:test-vlm', version: 'prompt-1.0.0' });
  assert.equal(e.fallbackReason, undefined);
  assert.deepEqual(e.facts.map((f) => `${f.region}:${f.cue}`), ['left cheek:coverage', 'left cheek:blur', 'left cheek:colour', 'lips:coverage', 'lips:colour']);
  assert.deepEqual(checkGrounding(e.text, e.facts, e.editKinds), []);
  // What went over the wire: the key as a bearer token, the schema, the face as a PNG data URL,
  // and only the regions the facts allow (not the nose, under the coverage threshold).
  assert.equal(received.length, 1);
  const { authorization, body } = received[0];
  assert.equal(authorization, `Bearer ${KEY}`);
  assert.equal(body.model, 'test-vlm');
  assert.equal((body.response_format as { type: string }).type, 'json_schema');
  const sent = JSON.stringify(body.messages);
  assert.ok(sent.includes(`data:image/png;base64,${Buffer.from(facePng).toString('base64')}`));
  assert.match(sent, /left cheek/);
  assert.doesNotMatch(sent, /nose/);
});

test('invented regions, cues, kinds and numbers are dropped claim by claim; nothing left means the template', async () => {
  behaviour = () => ({ body: completion({ faces: [{ face: 1, claims: [
    { region: 'nose', cues: ['blur'], sentence: 'The nose is blurry.' },
    { region: 'left cheek', cues: ['blur'], sentence: 'The left cheek and the teeth are smoother than the rest.' },
    { region: 'lips', cues: ['boundary'], sentence: 'A blending edge runs around the lips.' },
    { region: 'lips', cues: ['colour'], sentence: 'The lips look recoloured.' },
    { region: 'lips', cues: ['colour'], sentence: 'The lips are 87% off in colour.' },
    { region: 'lips', cues: ['colour'], sentence: 'The lips have the wrong colour.' },
  ] }, { face: 7, claims: [{ region: 'lips', cues: ['colour'], sentence: 'The lips have the wrong colour.' }] }] }) });
  const e = await new VlmExplainer(options(), template).explain(input());
  // Only the last lips claim survives; the cheek claim that also named the teeth is dropped, not
  // rewritten: the text says what the model wrote and the facts back.
  assert.equal(e.text, 'The lips have the wrong colour. The edit looks smoothed or retouched (type confidence 0.77).');
  assert.deepEqual([...new Set(e.facts.map((f) => f.region))], ['lips']);
  assert.equal(e.generator.name, 'openai-compatible:test-vlm');

  behaviour = () => ({ body: completion({ faces: [{ face: 1, claims: [{ region: 'chin', cues: ['blur'], sentence: 'The chin is smooth.' }] }] }) });
  const none = await new VlmExplainer(options(), template).explain(input());
  assert.deepEqual({ ...none, fallbackReason: undefined }, { ...template.explainSync(input()), fallbackReason: undefined });
  assert.equal(none.fallbackReason, 'no grounded claim');
});

test('malformed answers fall back to the template and do not open the breaker', async () => {
  const vlm = new VlmExplainer(options({ breakerFailures: 1 }), template);
  for (const body of ['not json', completion('{"faces": [ {"face": 1, "claims": [ '), JSON.stringify({ choices: [] }), completion('```json\n{"faces": 3}\n```')]) {
    behaviour = () => ({ body });
    const e = await vlm.explain(input());
    assert.equal(e.text, template.explainSync(input()).text);
    assert.match(e.fallbackReason!, /^(malformed|no grounded claim)$/);
  }
  assert.equal(vlm.breaker.state, 'closed');
  // A fenced answer is read.
  behaviour = () => ({ body: completion('```json\n' + JSON.stringify(GOOD) + '\n```') });
  assert.equal((await vlm.explain(input())).fallbackReason, undefined);
});

test('timeouts and 500s fall back; consecutive failures open the breaker, which then sends nothing until its trial', async () => {
  let now = 0;
  const vlm = new VlmExplainer(options({ timeoutMs: 150, breakerFailures: 2, breakerResetMs: 1000 }), template);
  (vlm as unknown as { breaker: CircuitBreaker }).breaker = new CircuitBreaker(2, 1000, () => now);
  behaviour = () => ({ hang: true });
  assert.equal((await vlm.explain(input())).fallbackReason, 'timeout');
  behaviour = () => ({ status: 500, body: '{"error":"boom"}' });
  const failed = await vlm.explain(input());
  assert.equal(failed.fallbackReason, 'http 500');
  assert.equal(failed.text, template.explainSync(input()).text);
  assert.equal(vlm.breaker.state, 'open');
  received.length = 0;
  assert.equal((await vlm.explain(input())).fallbackReason, 'circuit open');
  assert.equal(received.length, 0, 'an open breaker sends no request');
  // After the reset time one trial goes; its success closes the breaker.
  now = 1000;
  behaviour = () => ({ body: completion(GOOD) });
  assert.equal((await vlm.explain(input())).fallbackReason, undefined);
  assert.equal(received.length, 1);
  assert.equal(vlm.breaker.state, 'closed');
  // A 4xx other than 429 is our request's fault, not the server's health.
  behaviour = () => ({ status: 400, body: '{}' });
  for (let i = 0; i < 3; i++) assert.equal((await vlm.explain(input())).fallbackReason, 'http 400');
  assert.equal(vlm.breaker.state, 'closed');
});

test('a slow server under load: never more requests in flight than the cap, the rest get the template at once', async () => {
  maxConcurrent = 0;
  received.length = 0;
  behaviour = () => ({ delayMs: 300, body: completion(GOOD) });
  const vlm = new VlmExplainer(options({ maxConcurrency: 3 }), template);
  const all = await Promise.all(Array.from({ length: 20 }, () => vlm.explain(input())));
  assert.ok(maxConcurrent <= 3, `at most 3 at the server, saw ${maxConcurrent}`);
  assert.equal(received.length, 3);
  assert.equal(all.filter((e) => e.fallbackReason === undefined).length, 3);
  assert.equal(all.filter((e) => e.fallbackReason === 'busy').length, 17);
  assert.equal(vlm.active, 0);
  // And when it slows past the timeout under load, the breaker opens and holds.
  behaviour = () => ({ hang: true });
  const slow = new VlmExplainer(options({ maxConcurrency: 2, timeoutMs: 100, breakerFailures: 2 }), template);
  for (let i = 0; i < 3; i++) await Promise.all(Array.from({ length: 5 }, () => slow.explain(input())));
  assert.equal(slow.breaker.state, 'open');
  received.length = 0;
  const held = await Promise.all(Array.from({ length: 10 }, () => slow.explain(input())));
  assert.ok(held.every((e) => e.fallbackReason === 'circuit open'));
  assert.equal(received.length, 0);
});

test('the key never appears in logs, spans, errors or explanations', async () => {
  exporter.reset();
  logged.length = 0;
  const outputs: unknown[] = [];
  const vlm = new VlmExplainer(options({ timeoutMs: 100, breakerFailures: 100 }), template, log);
  for (const b of [{ hang: true }, { status: 500, body: `{"error":"bad key ${KEY.slice(0, 4)}"}` }, { body: 'garbage' }, { body: completion(GOOD) }] as Behaviour[]) {
    behaviour = () => b;
    outputs.push(await vlm.explain(input()));
  }
  // Unreachable endpoint: the network error's own text is not passed on either.
  outputs.push(await new VlmExplainer(options({ url: 'http://127.0.0.1:1/v1' }), template, log).explain(input()));
  assert.ok(logged.length >= 3, 'failures are logged');
  const spans = exporter.getFinishedSpans().map((s) => JSON.stringify({ name: s.name, attributes: s.attributes, events: s.events, status: s.status }));
  assert.ok(spans.some((s) => s.includes('tampertrace.explanation.model_call')));
  const everything = [...logged, ...spans, JSON.stringify(outputs), JSON.stringify(vlm), String(Object.values(vlm))].join('\n');
  assert.ok(!everything.includes(KEY), 'key leaked');
  assert.ok(!everything.includes(KEY.slice(3, 15)), 'part of the key leaked');
});

test('accept() ignores answers of the wrong shape', () => {
  const offers = [{ faceIndex: 0, claims: template.claims(input().faces[0], 'LIKELY_FORGED'), facts: template.explainSync(input()).facts, editKinds: [] }];
  for (const a of [null, 3, 'x', {}, { faces: {} }, { faces: [null, 1, { face: 1 }, { face: 1, claims: [null, { region: 1 }, { region: 'lips', cues: 'colour', sentence: 'The lips colour.' }] }] }]) {
    assert.equal(accept(a, offers).size, 0, JSON.stringify(a));
  }
});

test('through the stage: the model is shown the stored face with its mask drawn, and the Analysis records the model', async () => {
  const store = new FsObjectStore(await mkdtemp(path.join(os.tmpdir(), 'tt-vlm-')));
  // A 200 x 160 grey photo with the right half of its 40 px face masked.
  const W = 200;
  const H = 160;
  const original = await store.put('originals', 't/a.png', await sharp({ create: { width: W, height: H, channels: 3, background: '#646464' } }).png().toBuffer(), 'image/png');
  const maskPx = Buffer.alloc(W * H, 0);
  for (let y = 60; y < 100; y++) maskPx.fill(255, y * W + 100, y * W + 120);
  const mask = await store.put('artifacts', 't/a.mask.png', await sharp(maskPx, { raw: { width: W, height: H, channels: 1 } }).png().toBuffer(), 'image/png');
  const face = input().faces[0];
  received.length = 0;
  behaviour = () => ({ body: completion(GOOD) });
  const event = create(ForgeryLocalizedSchema, {
    meta: create(EventMetaSchema, { analysisId: '01a21cbd-0000-7000-8000-000000000000', tenantId: 't' }),
    verdict: Verdict.LIKELY_FORGED,
    artifacts: { original, mask },
    faces: [{ index: 0, box: { x: 80, y: 60, width: 40, height: 40 }, forgeryScore: face.forgeryScore, regions: face.regions, manipulations: [{ type: ManipulationType.SMOOTH, probability: 0.77 }] }],
  });
  const out = await explanationStage({ explainer: new VlmExplainer(options(), template), store }).handle(event);
  const e = out.analysis!.explanation!;
  assert.deepEqual([e.generator?.name, e.generator?.version, e.fallbackReason], ['openai-compatible:test-vlm', 'prompt-1.0.0', '']);
  assert.match(e.text, /^The left cheek looks airbrushed/);
  assert.ok(out.analysis!.models.some((m) => m.name === 'openai-compatible:test-vlm'));
  const url = JSON.stringify(received[0].body.messages).match(/data:image\/png;base64,([A-Za-z0-9+/=]+)/)![1];
  const { data, info } = await sharp(Buffer.from(url, 'base64')).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [320, 320]);
  const px = (fx: number, fy: number) => [...data.subarray((Math.round(fy * 320) * 320 + Math.round(fx * 320)) * info.channels).subarray(0, 3)];
  assert.deepEqual(px(0.3, 0.5), [100, 100, 100]);
  assert.ok(px(0.6, 0.5)[0] > 130 && px(0.6, 0.5)[1] < 80, 'the masked half is drawn red');
});
