// A vision-language explainer behind any OpenAI-compatible chat-completions endpoint (vLLM,
// llama.cpp server, Ollama). The model sees each face with its mask drawn on it and the claims
// the measured facts allow, and rewrites those claims in plain words as JSON. Every sentence it
// writes goes through the grounding check against the facts of its own claim; failing ones are
// dropped, and whatever is left unwritten (or everything, on a timeout, an error, an open circuit
// or a full concurrency cap) is the template's text. The API key is read once from config and
// sent only in the Authorization header: never in logs, spans, errors or the Explanation.
import { Attr, SpanName, withSpan, type Logger } from '@tampertrace/shared';
import { findRegionMentions, mentionNames } from '@tampertrace/shared/region-words';
import {
  CLAIM_CUES,
  checkGrounding,
  CUE_WORDS,
  EDIT_KIND_WORDS,
  type Claim,
  type EditKindFact,
  type Explainer,
  type Explanation,
  type ExplanationInput,
  type Fact,
  type FactCue,
  type TemplateExplainer,
  type WrittenClaims,
} from './explainer.ts';

/** Version of the prompt and answer schema below; recorded with the model id as the generator. */
export const PROMPT_VERSION = 'prompt-1.0.0';

export interface VlmOptions {
  /** Base URL up to /v1: requests go to {url}/chat/completions. */
  url: string;
  model: string;
  apiKey?: string;
  timeoutMs: number;
  maxConcurrency: number;
  breakerFailures: number;
  breakerResetMs: number;
  responseFormat: 'json_schema' | 'json_object' | 'none';
  /** At most this many faces are shown to the model per analysis (the strongest evidence first). Default 4. */
  maxFaces?: number;
}

type Cue = Exclude<FactCue, 'coverage'>;

/** What the model must answer; also sent as response_format json_schema where supported. */
export const ANSWER_SCHEMA = Object.freeze({
  type: 'object',
  additionalProperties: false,
  required: ['faces'],
  properties: {
    faces: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['face', 'claims'],
        properties: {
          face: { type: 'integer', description: 'The face number given in the evidence (1-based).' },
          claims: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['region', 'cues', 'sentence'],
              properties: {
                region: { type: 'string', description: 'Exactly one region name from that face\'s evidence.' },
                cues: { type: 'array', items: { type: 'string', enum: [...CLAIM_CUES] } },
                sentence: { type: 'string', maxLength: 300 },
              },
            },
          },
        },
      },
    },
  },
});

const SYSTEM = [
  'You help a content moderator read forensic evidence about faces in one photo.',
  'For each face you get an image (the face, with the area a forgery detector flagged tinted red and outlined) and the measured claims about it.',
  'Rewrite each claim as one short, plain sentence a non-expert understands: say which region it is and what looks wrong there.',
  'Only use the regions and cues listed for that face. Never name another facial region, another defect, a kind of edit, a person, or a number that is not in the evidence.',
  'Cues: blur = smoother / less fine detail than the rest of the face; sharpening = sharper or grainier; colour = its colour does not match the rest of the face; boundary = a blending edge runs around it.',
  'Answer with JSON only: {"faces":[{"face":<number>,"claims":[{"region":"<region>","cues":["<cue>",...],"sentence":"<sentence>"}]}]}.',
].join(' ');

/** Why a model's text was not used (Explanation.fallback_reason and the span's outcome). */
export type Outcome = 'ok' | 'timeout' | 'network' | `http_${number}` | 'malformed' | 'busy' | 'circuit_open' | 'no_grounded_claim' | 'no_image';

/** Consecutive-failure circuit breaker: open after `failures`, one trial after `resetMs`. */
export class CircuitBreaker {
  private failures = 0;
  private openedAt?: number;
  private trial = false;

  constructor(private readonly threshold: number, private readonly resetMs: number, private readonly now: () => number = Date.now) {}

  /** Whether a request may go now; in half-open state only one trial at a time. */
  allow(): boolean {
    if (this.openedAt === undefined) return true;
    if (this.now() - this.openedAt < this.resetMs || this.trial) return false;
    this.trial = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.openedAt = undefined;
    this.trial = false;
  }

  failure(): void {
    this.trial = false;
    this.failures++;
    if (this.failures >= this.threshold || this.openedAt !== undefined) this.openedAt = this.now();
  }

  get state(): 'closed' | 'open' | 'half-open' {
    if (this.openedAt === undefined) return 'closed';
    return this.now() - this.openedAt < this.resetMs ? 'open' : 'half-open';
  }
}

class CallFailed extends Error {
  constructor(readonly outcome: Outcome, readonly counts: boolean) {
    super(outcome);
  }
}

/** One face's evidence as the model is shown it. */
interface Offer {
  faceIndex: number;
  claims: Claim[];
  facts: Fact[];
  editKinds: EditKindFact[];
}

export class VlmExplainer implements Explainer {
  readonly name: string;
  readonly version = PROMPT_VERSION;
  readonly breaker: CircuitBreaker;
  private inFlight = 0;
  private readonly endpoint: string;
  // Kept off the instance's enumerable fields, so that logging or serialising the explainer
  // cannot carry the key.
  readonly #authorization?: string;

  private readonly o: Omit<VlmOptions, 'apiKey'>;

  constructor({ apiKey, ...o }: VlmOptions, private readonly template: TemplateExplainer, private readonly log?: Logger) {
    this.o = o;
    this.name = `openai-compatible:${o.model}`;
    this.endpoint = `${o.url.replace(/\/+$/, '')}/chat/completions`;
    this.#authorization = apiKey ? `Bearer ${apiKey}` : undefined;
    this.breaker = new CircuitBreaker(o.breakerFailures, o.breakerResetMs);
  }

  /** Requests in flight now (the concurrency cap holds it at most at maxConcurrency). */
  get active(): number {
    return this.inFlight;
  }

  async explain(input: ExplanationInput, signal?: AbortSignal): Promise<Explanation> {
    const fallback = (reason: Outcome): Explanation => ({ ...this.template.explainSync(input), fallbackReason: reason.replace(/_/g, ' ') });
    const offers = this.offers(input);
    // Nothing to say about any region: the template's sentences are all there is.
    if (offers.length === 0) return this.template.explainSync(input);
    return withSpan(SpanName.explainModel, { [Attr.model]: this.o.model }, async (span) => {
      const done = (outcome: Outcome, e: Explanation) => (span.setAttribute(Attr.explainOutcome, outcome), e);
      if (this.inFlight >= this.o.maxConcurrency) return done('busy', fallback('busy'));
      if (!this.breaker.allow()) return done('circuit_open', fallback('circuit_open'));
      this.inFlight++;
      try {
        const images = await Promise.all(offers.map((f) => input.faceImage?.(f.faceIndex).catch(() => undefined)));
        if (images.some((i) => !i)) {
          // The request never went: says nothing about the endpoint's health.
          this.breaker.success();
          return done('no_image', fallback('no_image'));
        }
        const answer = await this.call(offers, images as Uint8Array[], signal);
        this.breaker.success();
        const written = accept(answer, offers);
        if (written.size === 0) return done('no_grounded_claim', fallback('no_grounded_claim'));
        const e = this.template.explainSync(input, written);
        return done('ok', { ...e, generator: { name: this.name, version: this.version } });
      } catch (err) {
        const f = err instanceof CallFailed ? err : new CallFailed('network', true);
        if (f.counts) this.breaker.failure();
        else this.breaker.success();
        this.log?.warn({ outcome: f.outcome, model: this.o.model, breaker: this.breaker.state }, 'vision-language explainer failed; template text used');
        return done(f.outcome, fallback(f.outcome));
      } finally {
        this.inFlight--;
      }
    });
  }

  /** Faces with claims to rewrite, strongest first, each with the facts of every claim it may make. */
  private offers(input: ExplanationInput): Offer[] {
    const out: Offer[] = [];
    for (const face of input.faces) {
      const claims = this.template.claims(face, input.verdict).slice(0, this.template.options.maxRegionsPerFace);
      if (claims.length === 0) continue;
      const one = this.template.explainSync({ verdict: input.verdict, faces: [face] });
      out.push({ faceIndex: face.faceIndex, claims, facts: one.facts, editKinds: one.editKinds });
    }
    return out.slice(0, this.o.maxFaces ?? 4);
  }

  private async call(offers: Offer[], images: Uint8Array[], signal?: AbortSignal): Promise<unknown> {
    const evidence = offers.map((f) => ({
      face: f.faceIndex + 1,
      claims: f.claims.map((c) => ({
        region: c.region.name,
        cues: c.cues,
        measured: f.facts.filter((x) => x.region === c.region.name).map((x) => x.statement),
      })),
      kind_of_edit: f.editKinds.map((k) => `${EDIT_KIND_WORDS[k.type]} (type confidence ${k.probability.toFixed(2)}); stated separately, do not repeat it`),
    }));
    const content = [
      { type: 'text', text: `Evidence:\n${JSON.stringify(evidence)}` },
      ...offers.flatMap((f, i) => [
        { type: 'text', text: `Face ${f.faceIndex + 1}:` },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${Buffer.from(images[i]).toString('base64')}` } },
      ]),
    ];
    const body: Record<string, unknown> = {
      model: this.o.model,
      messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content }],
      temperature: 0,
      max_tokens: 200 * offers.reduce((n, f) => n + f.claims.length, 0) + 50,
    };
    if (this.o.responseFormat === 'json_schema') body.response_format = { type: 'json_schema', json_schema: { name: 'face_claims', strict: true, schema: ANSWER_SCHEMA } };
    else if (this.o.responseFormat === 'json_object') body.response_format = { type: 'json_object' };

    const timeout = AbortSignal.timeout(this.o.timeoutMs);
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.#authorization) headers.authorization = this.#authorization;
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.endpoint, { method: 'POST', headers, body: JSON.stringify(body), signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      text = await res.text();
    } catch {
      // The error's own message is dropped: only the kind of failure leaves this function.
      throw new CallFailed(timeout.aborted ? 'timeout' : 'network', !signal?.aborted);
    }
    if (!res.ok) throw new CallFailed(`http_${res.status}`, res.status >= 500 || res.status === 429);
    try {
      const completion = JSON.parse(text) as { choices?: { message?: { content?: unknown } }[] };
      const said = completion.choices?.[0]?.message?.content;
      if (typeof said !== 'string') throw new Error('no content');
      // Models without schema support often fence their JSON.
      return JSON.parse(said.trim().replace(/^```(?:json)?\s*|\s*```$/g, ''));
    } catch {
      throw new CallFailed('malformed', false);
    }
  }
}

/**
 * The model's claims that survive validation: a face and a region it was offered, cues among
 * that region's passing ones, and a sentence that names that region (and no other), is grounded
 * in that claim's own facts and states no number the facts do not hold. Invalid shapes are
 * ignored claim by claim.
 */
export function accept(answer: unknown, offers: readonly Offer[]): WrittenClaims {
  const out = new Map<number, Map<string, { sentence: string; cues: Cue[] }>>();
  const faces = (answer as { faces?: unknown })?.faces;
  if (!Array.isArray(faces)) return out;
  for (const f of faces as { face?: unknown; claims?: unknown }[]) {
    const offer = offers.find((o) => o.faceIndex + 1 === f?.face);
    if (!offer || !Array.isArray(f.claims)) continue;
    for (const c of f.claims as { region?: unknown; cues?: unknown; sentence?: unknown }[]) {
      if (typeof c?.region !== 'string' || typeof c.sentence !== 'string' || !Array.isArray(c.cues)) continue;
      const sentence = c.sentence.trim().replace(/\s+/g, ' ');
      const claim = offer.claims.find((x) => x.region.name === c.region);
      if (!claim || sentence.length === 0 || sentence.length > 300 || out.get(offer.faceIndex)?.has(claim.region.name)) continue;
      const cues = [...new Set(c.cues)].filter((x): x is Cue => claim.cues.includes(x as Cue));
      if (cues.length === 0 || cues.length !== c.cues.length) continue;
      const facts = offer.facts.filter((x) => x.region === claim.region.name && (x.cue === 'coverage' || cues.includes(x.cue as Cue)));
      // One sentence, about this region only.
      if (/[.!?;]\s+\S/.test(sentence)) continue;
      const mentions = findRegionMentions(sentence);
      if (mentions.length === 0 || !mentions.every((m) => mentionNames(m, claim.region.name))) continue;
      // It must say what looks wrong, in words of a cue it claims.
      if (!cues.some((cue) => CUE_WORDS[cue].test(sentence))) continue;
      // Kinds of edit are the template's sentence; a claim may not state one.
      if (checkGrounding(sentence, facts, []).length > 0) continue;
      const numbers = new Set(facts.flatMap((x) => x.statement.match(/\d+(?:\.\d+)?/g) ?? []));
      if ((sentence.match(/\d+(?:\.\d+)?/g) ?? []).some((n) => !numbers.has(n))) continue;
      if (!out.has(offer.faceIndex)) out.set(offer.faceIndex, new Map());
      out.get(offer.faceIndex)!.set(claim.region.name, { sentence, cues });
    }
  }
  return out;
}

