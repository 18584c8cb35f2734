/**
 * Grounded explanation generation: turns per-region forgery evidence into short natural
 * sentences (MMTT / ForgeryTalker annotation style) plus the machine-readable facts that back
 * every claim in them. Pure: no pixels, no I/O, no randomness.
 *
 * Region names are those of shared/src/face-regions.ts (lowercase, subject's left/right:
 * "right eye", "left cheek", "nose", "lip", ...), which the localization service scores.
 */

export interface RegionEvidence {
  name: string;
  /** Mean forgery prob in the region, 0..1. */
  score: number;
  /** Fraction of the region inside the binary forgery mask, 0..1. */
  coverage: number;
  cues: {
    /** Signed log-ratio of high-frequency energy vs the face reference (<0 blurrier, >0 sharper/noisier). */
    noiseLogRatio?: number;
    /** Chroma distance from the face reference colour, on a 0..1 RGB scale (>= 0). */
    colourDelta?: number;
    /** Mean blending-boundary strength on the mask edge inside the region (>= 0, model units). */
    boundaryStrength?: number;
  };
}

export interface FaceEvidence {
  /** 0-based; the text calls it "face faceIndex+1". */
  faceIndex: number;
  /** Image-level score of the face (faceScore in forgery-localization), 0..1. */
  forgeryScore: number;
  regions: RegionEvidence[];
}

export type Verdict = 'LIKELY_FORGED' | 'LIKELY_AUTHENTIC' | 'UNCERTAIN';

export type FactCue = 'coverage' | 'blur' | 'sharpening' | 'colour' | 'boundary';

/** One checkable claim. Every region and cue word in an explanation's text is backed by one. */
export interface Fact {
  faceIndex: number;
  region: string;
  cue: FactCue;
  value: number;
  unit: string;
  statement: string;
}

export interface Explanation {
  text: string;
  facts: Fact[];
  generator: { name: string; version: string };
}

export interface ExplanationInput {
  verdict: Verdict;
  faces: FaceEvidence[];
}

/**
 * An explanation backend.
 *
 * Plugging in an LLM (e.g. a multimodal model fine-tuned on MMTT, ForgeryTalker-style):
 * it receives the same ExplanationInput (later also a reference to the image / face crops and
 * the forgery mask) and must return an Explanation whose `facts` are drawn from that input
 * (region names from the vocabulary, values copied from the evidence) and whose `text` only
 * names regions and cues those facts back. Because free text can drift, an LLM backend should
 * run `checkGrounding(text, facts, DEFAULT_REGION_VOCABULARY)` on its output and, when it
 * returns any ungrounded region word, retry or fall back to TemplateExplainer. `name` and
 * `version` identify the backend (model id + prompt version) in the audit trail.
 */
export interface Explainer {
  readonly name: string;
  readonly version: string;
  explain(input: ExplanationInput): Promise<Explanation>;
}

export interface TemplateExplainerOptions {
  /** Minimum region coverage (fraction of the region inside the forgery mask) to name a region. Default 0.15. */
  minCoverage?: number;
  /** "blurrier" when noiseLogRatio < this (about 30 % less high-frequency energy). Default -0.35. */
  blurBelow?: number;
  /** "sharper/noisier" when noiseLogRatio > this (about 42 % more). Default 0.35. */
  sharpenAbove?: number;
  /** "colour mismatch" when colourDelta > this (chroma distance on 0..1 RGB; 0.06 ~ 15/255 levels). Default 0.06. */
  colourAbove?: number;
  /** "blending edge" when boundaryStrength > this (model units, calibrated so ~0.3 is a visible seam). Default 0.3. */
  boundaryAbove?: number;
  /** At most this many regions are named per face (highest score first). Default 3. */
  maxRegionsPerFace?: number;
  /** Per-face text budget; regions are dropped (lowest score first) until the text fits. Default 360. */
  maxCharsPerFace?: number;
}

export const DEFAULT_TEMPLATE_OPTIONS: Readonly<Required<TemplateExplainerOptions>> = Object.freeze({
  minCoverage: 0.15,
  blurBelow: -0.35,
  sharpenAbove: 0.35,
  colourAbove: 0.06,
  boundaryAbove: 0.3,
  maxRegionsPerFace: 3,
  maxCharsPerFace: 360,
});

/** Region names the localization service scores (one list: shared/src/face-regions.ts). */
export { REGION_NAMES } from '@tampertrace/shared/face-regions';
import { REGION_NAMES } from '@tampertrace/shared/face-regions';

/**
 * Words checkGrounding looks for by default: the region names, their side-less families
 * ("eye", "cheek", ...) and facial terms the prompter never emits (so an LLM naming them is
 * always flagged as ungrounded). Matching is case-insensitive, whole-word, plural-tolerant.
 */
export const DEFAULT_REGION_VOCABULARY: readonly string[] = Object.freeze([
  ...REGION_NAMES,
  'eye', 'eyebrow', 'cheek', 'ear', 'pupil',
  'eyelid', 'teeth', 'tooth', 'nostril', 'temple', 'neck', 'beard', 'moustache', 'mustache',
]);

/** Validates generated text: region words in `text` that no fact backs. */
export type GroundingCheck = (text: string, facts: readonly Fact[], regionNames: readonly string[]) => string[];

/**
 * Returns the region words present in `text` (lowercased, as written, in order of first
 * appearance, deduplicated) that no fact backs; [] means the text is grounded.
 *
 * Matching: whole words, case-insensitive, optional plural ("lips" -> "lip", "eyes" -> "eye"),
 * longest name first ("left eye" is one mention, not "left eye" + "eye"). A word w is backed
 * by a fact whose region is w, or ends with " w" (so "eye" is backed by "left eye").
 * "both Xs" needs facts for both "right X" and "left X" (or for X itself).
 */
export const checkGrounding: GroundingCheck = (text, facts, regionNames) => {
  const names = [...new Set(regionNames.map((n) => n.trim().toLowerCase()).filter((n) => n.length > 0))];
  if (names.length === 0 || text.length === 0) return [];
  names.sort((a, b) => b.length - a.length);
  const alt = names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+')).join('|');
  const re = new RegExp(`\\b(both\\s+)?(${alt})(?:s|es)?\\b`, 'gi');
  const regions = new Set(facts.map((f) => f.region.trim().toLowerCase()));
  const backs = (w: string) => regions.has(w) || [...regions].some((r) => r.endsWith(` ${w}`));
  const out: string[] = [];
  for (const m of text.matchAll(re)) {
    const word = m[2].toLowerCase().replace(/\s+/g, ' ');
    const both = m[1] !== undefined;
    const ok = both ? regions.has(word) || (regions.has(`right ${word}`) && regions.has(`left ${word}`)) : backs(word);
    const said = m[0].toLowerCase().replace(/\s+/g, ' ');
    if (!ok && !out.includes(said)) out.push(said);
  }
  return out;
};

type Cue = Exclude<FactCue, 'coverage'>;
const CUES: readonly Cue[] = ['blur', 'sharpening', 'colour', 'boundary'];

interface Phrase {
  /** Subject noun phrase, e.g. "the nose and both cheeks". */
  s: string;
  /** Plural agreement. */
  p: boolean;
}
type Template = (x: Phrase) => string;
const vb = (x: Phrase, singular: string, plural: string) => (x.p ? plural : singular);

// Cue words are confined to their cue's templates: "blurrier" (blur), "sharper" (sharpening),
// "colour" (colour), "edge" (boundary). Other templates must not use them, nor any region word.
/** Sentence openers naming the regions, one list per cue. */
const CUE_TEMPLATES: Record<Cue, readonly Template[]> = {
  blur: [
    (x) => `${x.s} ${vb(x, 'is', 'are')} blurrier than the rest of the face`,
    (x) => `${x.s} ${vb(x, 'looks', 'look')} blurrier than ${vb(x, 'its', 'their')} surroundings`,
    (x) => `${x.s} ${vb(x, 'appears', 'appear')} smoothed out, blurrier than the rest of the face`,
  ],
  sharpening: [
    (x) => `${x.s} ${vb(x, 'is', 'are')} sharper and noisier than the rest of the face`,
    (x) => `${x.s} ${vb(x, 'shows', 'show')} sharper, grainier texture than ${vb(x, 'its', 'their')} surroundings`,
  ],
  colour: [
    (x) => `the colour of ${x.s} does not match the rest of the face`,
    (x) => `${x.s} ${vb(x, 'has', 'have')} a colour that differs from the rest of the face`,
    (x) => `${x.s} ${vb(x, 'shows', 'show')} a colour shift against the rest of the face`,
  ],
  boundary: [
    (x) => `a blending edge runs around ${x.s}`,
    (x) => `a visible blending edge surrounds ${x.s}`,
    (x) => `${x.s} ${vb(x, 'is', 'are')} outlined by a soft blending edge`,
  ],
};
/** Continuations referring back to the same regions by pronoun (regions sharing several cues). */
const CUE_FOLLOW_UPS: Record<Cue, readonly Template[]> = {
  blur: [(x) => ` and ${vb(x, 'it looks', 'they look')} blurrier than ${vb(x, 'its', 'their')} surroundings`],
  sharpening: [(x) => ` and ${vb(x, 'it looks', 'they look')} sharper than ${vb(x, 'its', 'their')} surroundings`],
  colour: [
    (x) => ` and ${vb(x, 'its', 'their')} colour does not match the surrounding face`,
    (x) => ` and ${vb(x, 'its', 'their')} colour is off`,
  ],
  boundary: [
    (x) => `; a soft blending edge runs around ${vb(x, 'it', 'them')}`,
    (x) => `; a blending edge is visible around ${vb(x, 'it', 'them')}`,
  ],
};
const ALSO_FLAGGED: readonly Template[] = [
  (x) => `${x.s} ${vb(x, 'is', 'are')} also flagged as manipulated`,
  (x) => `the forgery map also marks ${x.s}`,
];
const FLAGGED_ONLY: readonly Template[] = [
  (x) => `${x.s} ${vb(x, 'looks', 'look')} manipulated, though no single cue stands out`,
  (x) => `the forgery map flags ${x.s} without one clear cue`,
];
const NOTHING: readonly ((score: string) => string)[] = [
  (sc) => `no facial region shows consistent manipulation cues (face score ${sc})`,
  (sc) => `no facial region shows a consistent sign of manipulation (face score ${sc})`,
];
const WEAK = (sc: string) => `The evidence is weak overall (face score ${sc}).`;

/** Deterministic variant picker (FNV-1a over a content key). */
function pick<T>(list: readonly T[], key: string): T {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return list[h % list.length];
}

const SIDED = /^(right|left) (.+)$/;
function displayName(name: string): Phrase {
  if (name === 'lip') return { s: 'the lips', p: true };
  return { s: `the ${name}`, p: false };
}
/** "the nose", "both cheeks", "the mouth and the left eye", "the nose, the chin and the lips". */
function subject(names: readonly string[]): Phrase {
  const parts: Phrase[] = [];
  const used = new Set<string>();
  for (const n of names) {
    if (used.has(n)) continue;
    const m = SIDED.exec(n);
    const other = m ? `${m[1] === 'right' ? 'left' : 'right'} ${m[2]}` : undefined;
    if (m && other && names.includes(other)) {
      parts.push({ s: `both ${m[2]}s`, p: true });
      used.add(n).add(other);
    } else {
      parts.push(displayName(n));
      used.add(n);
    }
  }
  const s = parts.length <= 1
    ? (parts[0]?.s ?? '')
    : `${parts.slice(0, -1).map((x) => x.s).join(', ')} and ${parts[parts.length - 1].s}`;
  return { s, p: parts.length > 1 || (parts[0]?.p ?? false) };
}

const capitalize = (s: string) => (s.length ? s[0].toUpperCase() + s.slice(1) : s);
const fmt = (v: number) => v.toFixed(2);

interface Selected {
  region: RegionEvidence;
  cues: Cue[];
}

/**
 * Template-based explainer. Deterministic: the same input always gives the same text (phrase
 * variants are chosen by a hash of the face index, cue and region names).
 *
 * Per face: regions with coverage >= minCoverage are ranked by score (then coverage, name) and
 * the top maxRegionsPerFace are kept. Regions sharing a cue are grouped into one sentence per
 * cue (blur, sharpening, colour, boundary, in that order); kept regions without any cue get one
 * "also flagged" sentence. With a LIKELY_AUTHENTIC verdict, or when no region reaches the
 * coverage threshold, the face gets one sentence saying no region shows consistent cues, with
 * its face score, and no region is named. An UNCERTAIN verdict adds a "weak evidence" sentence.
 * With several faces each paragraph starts "On face N, ...". Facts back every region named
 * (a 'coverage' fact) and every cue used (a cue fact whose value passes its threshold).
 */
export class TemplateExplainer implements Explainer {
  readonly name = 'template';
  readonly version = '1.0.0';
  readonly options: Readonly<Required<TemplateExplainerOptions>>;

  constructor(options: TemplateExplainerOptions = {}) {
    const o = { ...DEFAULT_TEMPLATE_OPTIONS };
    for (const [k, v] of Object.entries(options) as [keyof TemplateExplainerOptions, number | undefined][]) {
      if (v !== undefined) o[k] = v;
    }
    if (!(o.maxRegionsPerFace >= 1)) throw new RangeError('maxRegionsPerFace must be >= 1');
    this.options = Object.freeze(o);
  }

  async explain(input: ExplanationInput): Promise<Explanation> {
    return this.explainSync(input);
  }

  /** Same as explain(), synchronously. */
  explainSync(input: ExplanationInput): Explanation {
    const generator = { name: this.name, version: this.version };
    if (input.faces.length === 0) {
      return { text: 'No face was found, so no facial region could be checked.', facts: [], generator };
    }
    const multi = input.faces.length > 1;
    const paragraphs: string[] = [];
    const facts: Fact[] = [];
    for (const face of input.faces) {
      const r = this.explainFace(face, input.verdict, multi);
      paragraphs.push(r.text);
      facts.push(...r.facts);
    }
    return { text: paragraphs.join(' '), facts, generator };
  }

  /** Passing cues of one region, in CUES order. */
  private cuesOf(r: RegionEvidence): Cue[] {
    const o = this.options;
    const c = r.cues ?? {};
    const out: Cue[] = [];
    const fin = (v: number | undefined): v is number => typeof v === 'number' && Number.isFinite(v);
    if (fin(c.noiseLogRatio) && c.noiseLogRatio < o.blurBelow) out.push('blur');
    if (fin(c.noiseLogRatio) && c.noiseLogRatio > o.sharpenAbove) out.push('sharpening');
    if (fin(c.colourDelta) && c.colourDelta > o.colourAbove) out.push('colour');
    if (fin(c.boundaryStrength) && c.boundaryStrength > o.boundaryAbove) out.push('boundary');
    return out;
  }

  private explainFace(face: FaceEvidence, verdict: Verdict, multi: boolean): { text: string; facts: Fact[] } {
    const o = this.options;
    const prefix = multi ? `On face ${face.faceIndex + 1}, ` : '';
    const score = Number.isFinite(face.forgeryScore) ? fmt(face.forgeryScore) : 'n/a';

    const seen = new Set<string>();
    const eligible = verdict === 'LIKELY_AUTHENTIC'
      ? []
      : face.regions
          .filter((r) => Number.isFinite(r.coverage) && r.coverage >= o.minCoverage && r.name.trim().length > 0)
          .map((r) => ({ ...r, score: Number.isFinite(r.score) ? r.score : 0 }))
          .sort((a, b) => b.score - a.score || b.coverage - a.coverage || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
          .filter((r) => (seen.has(r.name) ? false : (seen.add(r.name), true)));

    if (eligible.length === 0) {
      const s = pick(NOTHING, `${face.faceIndex}|none`)(score);
      return { text: `${prefix ? prefix + s : capitalize(s)}.`, facts: [] };
    }

    let n = Math.min(o.maxRegionsPerFace, eligible.length);
    for (;;) {
      const selected: Selected[] = eligible.slice(0, n).map((region) => ({ region, cues: this.cuesOf(region) }));
      const text = this.render(face, selected, verdict, prefix, score);
      if (text.length <= o.maxCharsPerFace || n === 1) return { text, facts: this.factsFor(face, selected) };
      n--;
    }
  }

  private render(face: FaceEvidence, selected: Selected[], verdict: Verdict, prefix: string, score: string): string {
    // One group per cue (regions sharing it); cues whose region sets are identical share a
    // sentence: opener for the first cue, pronoun continuations for the others.
    const groups: { names: string[]; cues: Cue[] }[] = [];
    for (const cue of CUES) {
      const names = selected.filter((x) => x.cues.includes(cue)).map((x) => x.region.name);
      if (names.length === 0) continue;
      const same = groups.find((g) => g.names.join('|') === names.join('|'));
      if (same) same.cues.push(cue);
      else groups.push({ names, cues: [cue] });
    }
    const clauses = groups.map(({ names, cues }) => {
      const subj = subject(names);
      const key = `${face.faceIndex}|${cues.join('+')}|${names.join(',')}`;
      return cues
        .map((cue, i) => pick(i === 0 ? CUE_TEMPLATES[cue] : CUE_FOLLOW_UPS[cue], `${key}|${i}`)(subj))
        .join('');
    });
    const plain = selected.filter((x) => x.cues.length === 0).map((x) => x.region.name);
    if (plain.length) {
      const list = clauses.length ? ALSO_FLAGGED : FLAGGED_ONLY;
      clauses.push(pick(list, `${face.faceIndex}|plain|${plain.join(',')}`)(subject(plain)));
    }
    const sentences = clauses.map((c, i) => (i === 0 && prefix ? prefix + c : capitalize(c)) + '.');
    if (verdict === 'UNCERTAIN') sentences.push(WEAK(score));
    return sentences.join(' ');
  }

  private factsFor(face: FaceEvidence, selected: Selected[]): Fact[] {
    const o = this.options;
    const facts: Fact[] = [];
    for (const { region: r, cues } of selected) {
      const the = displayName(r.name).s;
      const The = capitalize(the);
      const base = { faceIndex: face.faceIndex, region: r.name };
      facts.push({
        ...base,
        cue: 'coverage',
        value: r.coverage,
        unit: 'fraction of region',
        statement: `${Math.round(r.coverage * 100)}% of ${the} lies inside the forgery mask (mean probability ${fmt(r.score)}).`,
      });
      for (const cue of cues) {
        const c = r.cues;
        if (cue === 'blur') {
          facts.push({ ...base, cue, value: c.noiseLogRatio!, unit: 'log-ratio of high-frequency energy',
            statement: `${The} has less fine detail than the face reference (log-ratio ${fmt(c.noiseLogRatio!)} < ${fmt(o.blurBelow)}).` });
        } else if (cue === 'sharpening') {
          facts.push({ ...base, cue, value: c.noiseLogRatio!, unit: 'log-ratio of high-frequency energy',
            statement: `${The} has more fine detail or noise than the face reference (log-ratio ${fmt(c.noiseLogRatio!)} > ${fmt(o.sharpenAbove)}).` });
        } else if (cue === 'colour') {
          facts.push({ ...base, cue, value: c.colourDelta!, unit: 'chroma distance (0..1 RGB)',
            statement: `${The} deviates from the face's reference colour (chroma distance ${fmt(c.colourDelta!)} > ${fmt(o.colourAbove)}).` });
        } else {
          facts.push({ ...base, cue, value: c.boundaryStrength!, unit: 'boundary strength (model units)',
            statement: `The forgery mask edge in ${the} has a blending boundary (strength ${fmt(c.boundaryStrength!)} > ${fmt(o.boundaryAbove)}).` });
        }
      }
    }
    return facts;
  }
}
