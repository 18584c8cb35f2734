/**
 * Grounded explanation generation: turns per-region forgery evidence and the localizer's
 * kind-of-edit output into short plain sentences a moderator can act on, plus the measured facts
 * that back every claim in them. Pure: no pixels, no I/O, no randomness.
 *
 * A claim is a region and what looks wrong there ("the left cheek is smoother than the
 * surrounding skin"); a region is named only when a cue of its own passes that region's level,
 * measured on real faces (models/forensic-inconsistency/MODEL_CARD.md). Region words are those of
 * shared/src/region-words.ts, so "lips", "lip" and "both eyes" mean the same everywhere.
 */
import type { ManifestEntry } from '@tampertrace/shared';
import { findRegionMentions, mentionBacked, parseRegion, ZONE_FAMILIES } from '@tampertrace/shared/region-words';

export interface RegionEvidence {
  name: string;
  /** Mean forgery prob in the region, 0..1. */
  score: number;
  /** Fraction of the region inside the binary forgery mask, 0..1. */
  coverage: number;
  cues: {
    /** Signed log-ratio of high-frequency energy vs the face reference (<0 smoother, >0 sharper/noisier). */
    noiseLogRatio?: number;
    /** Distance from the face's own colour, in percent points of chromaticity (>= 0; RegionCues.colour_delta). */
    colourDelta?: number;
    /** Mean blending-boundary strength on the mask edge inside the region (>= 0, model units). */
    boundaryStrength?: number;
  };
}

/** The localizer's kinds of edit (ManipulationType without its prefix). */
export type EditKind = 'BLEND' | 'INPAINT' | 'SPLICE' | 'RECOLOUR' | 'SMOOTH' | 'SHARPEN';
export const EDIT_KINDS: readonly EditKind[] = ['BLEND', 'INPAINT', 'SPLICE', 'RECOLOUR', 'SMOOTH', 'SHARPEN'];

/** Whether a face could be judged (FaceQuality without its prefix). */
export type FaceQualityLabel = 'UNSPECIFIED' | 'JUDGEABLE' | 'TOO_SMALL' | 'TOO_DEGRADED';

export interface FaceEvidence {
  /** 0-based; the text calls it "face faceIndex+1". */
  faceIndex: number;
  /** Image-level score of the face (faceScore in forgery-localization), 0..1. */
  forgeryScore: number;
  regions: RegionEvidence[];
  /** Absent or UNSPECIFIED on analyses made before quality was assessed: judged as before. */
  quality?: FaceQualityLabel;
  /** Independent probability of each kind of edit (Face.manipulations); empty without a type output. */
  manipulations?: { type: EditKind; probability: number }[];
  /** The localizer's own type threshold for this face, when the analysis carries it; else the explainer's typeThreshold. */
  typeThreshold?: number;
}

export type Verdict = 'LIKELY_FORGED' | 'LIKELY_AUTHENTIC' | 'UNCERTAIN';

export type FactCue = 'coverage' | 'blur' | 'sharpening' | 'colour' | 'boundary';
type Cue = Exclude<FactCue, 'coverage'>;
export const CLAIM_CUES: readonly Cue[] = ['blur', 'sharpening', 'colour', 'boundary'];

/** One checkable claim. Every region and cue word in an explanation's text is backed by one. */
export interface Fact {
  faceIndex: number;
  region: string;
  cue: FactCue;
  value: number;
  unit: string;
  statement: string;
}

/** One kind-of-edit claim (proto EditKindFact). */
export interface EditKindFact {
  faceIndex: number;
  type: EditKind;
  probability: number;
  threshold: number;
  statement: string;
}

export interface Explanation {
  text: string;
  facts: Fact[];
  editKinds: EditKindFact[];
  generator: { name: string; version: string };
  /** Why a configured language model's text was not used; absent when it was, or none is configured. */
  fallbackReason?: string;
}

export interface ExplanationInput {
  verdict: Verdict;
  faces: FaceEvidence[];
  /**
   * The face's crop with the forgery mask drawn on it, as PNG, for explainers that look at the
   * pixels; loaded on demand (the template never asks). Undefined when it cannot be made.
   */
  faceImage?: (faceIndex: number) => Promise<Uint8Array | undefined>;
}

/**
 * An explanation backend. Whatever it writes goes through `checkGrounding` against the facts it
 * was given; `name` and `version` identify it (model id, prompt version) in the audit trail.
 */
export interface Explainer {
  readonly name: string;
  readonly version: string;
  explain(input: ExplanationInput, signal?: AbortSignal): Promise<Explanation>;
}

/** The levels at which a cue justifies a claim, in the cue's own units (RegionCues). */
export interface CueThresholds {
  /** Smoother when noiseLogRatio < this. */
  blurBelow: number;
  /** Sharper/grainier when noiseLogRatio > this. */
  sharpenAbove: number;
  /** Colour mismatch when colourDelta > this, percent points of chromaticity. */
  colourAbove: number;
  /** Blending edge when boundaryStrength > this (model units). */
  boundaryAbove: number;
}

export interface TemplateExplainerOptions extends Partial<CueThresholds> {
  /** Minimum region coverage (fraction of the region inside the forgery mask) to name a region. Default 0.15. */
  minCoverage?: number;
  /**
   * Levels per region, by name ("left eye") or family ("eye", "lip"), over the global ones above.
   * Zones (teeth, beard, mustache, hair) without levels of their own take the strictest known.
   */
  regionThresholds?: Readonly<Record<string, Partial<CueThresholds>>>;
  /** A kind of edit is named when its probability reaches this. Default 0.5. */
  typeThreshold?: number;
  /** At most this many regions are named per face (strongest evidence first). Default 3. */
  maxRegionsPerFace?: number;
  /** At most this many kinds of edit are named per face. Default 2. */
  maxKindsPerFace?: number;
  /** Per-face text budget; regions are dropped (weakest first) until the text fits. Default 420. */
  maxCharsPerFace?: number;
}

type ResolvedOptions = Required<Omit<TemplateExplainerOptions, 'regionThresholds'>> & { regionThresholds: Readonly<Record<string, Partial<CueThresholds>>> };

/**
 * Defaults for when no manifest entry says otherwise: the global levels of forensic-inconsistency
 * (its model card), whose cue units the proto fixes for every localizer.
 */
export const DEFAULT_TEMPLATE_OPTIONS: Readonly<ResolvedOptions> = Object.freeze({
  minCoverage: 0.15,
  blurBelow: -0.13,
  sharpenAbove: 0.64,
  colourAbove: 13,
  boundaryAbove: 0.91,
  regionThresholds: Object.freeze({}),
  typeThreshold: 0.5,
  maxRegionsPerFace: 3,
  maxKindsPerFace: 2,
  maxCharsPerFace: 420,
});

/** The template's options from a localizer's manifest entry (its cue levels, per region, and its typeThreshold). */
export function explainerOptions(entry: Pick<ManifestEntry, 'cueThresholds' | 'typeThreshold'> | undefined): TemplateExplainerOptions {
  const { regions, ...global } = entry?.cueThresholds ?? {};
  return { ...global, regionThresholds: regions, typeThreshold: entry?.typeThreshold };
}

const fin = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const fmt = (v: number) => v.toFixed(2);
const capitalize = (s: string) => (s.length ? s[0].toUpperCase() + s.slice(1) : s);

/** Whether a value passes a cue's level. */
export function cuePasses(cue: Cue, r: RegionEvidence, t: CueThresholds): boolean {
  const c = r.cues ?? {};
  switch (cue) {
    case 'blur': return fin(c.noiseLogRatio) && c.noiseLogRatio < t.blurBelow;
    case 'sharpening': return fin(c.noiseLogRatio) && c.noiseLogRatio > t.sharpenAbove;
    case 'colour': return fin(c.colourDelta) && c.colourDelta > t.colourAbove;
    case 'boundary': return fin(c.boundaryStrength) && c.boundaryStrength > t.boundaryAbove;
  }
}

/** How far past its level a passing cue is, as a ratio (>1), to order a region's cues. */
function cueStrength(cue: Cue, r: RegionEvidence, t: CueThresholds): number {
  const c = r.cues;
  const ratio = (v: number, level: number) => (level !== 0 ? v / level : 1 + Math.abs(v));
  switch (cue) {
    case 'blur': return ratio(c.noiseLogRatio!, t.blurBelow);
    case 'sharpening': return ratio(c.noiseLogRatio!, t.sharpenAbove);
    case 'colour': return ratio(c.colourDelta!, t.colourAbove);
    case 'boundary': return ratio(c.boundaryStrength!, t.boundaryAbove);
  }
}

// Sentence parts. A region sentence names exactly one region and only cue words of cues that
// region passes: blur "smoother", sharpening "sharper and grainier", colour "colour", boundary
// "blending edge" (CUE_WORDS below is what checkGrounding looks for).
/** Regions of skin, compared with "the surrounding skin"; the others with "the rest of the face". */
const SKIN = new Set(['cheek', 'forehead', 'chin', 'jaw', 'skin', 'nose', 'temple', 'beard', 'mustache']);
interface Subject {
  /** "the left cheek", "the lips". */
  s: string;
  plural: boolean;
  skin: boolean;
}
function subjectOf(name: string): Subject {
  const key = parseRegion(name);
  const display = key?.family === 'lip' ? 'lips' : key?.family === 'tooth' ? 'teeth' : name;
  return { s: `the ${display}`, plural: display === 'lips' || display === 'teeth', skin: SKIN.has(key?.family ?? '') };
}
const be = (x: Subject) => (x.plural ? 'are' : 'is');
const than = (x: Subject) => (x.skin ? 'the surrounding skin' : 'the rest of the face');
const FIRST: Record<Cue, (x: Subject) => string> = {
  blur: (x) => `${x.s} ${be(x)} smoother than ${than(x)}`,
  sharpening: (x) => `${x.s} ${be(x)} sharper and grainier than ${than(x)}`,
  colour: (x) => `the colour of ${x.s} does not match the rest of the face`,
  boundary: (x) => `a blending edge runs around ${x.s}`,
};
const NEXT: Record<Cue, (x: Subject) => string> = {
  blur: (x) => `${x.plural ? 'they are' : 'it is'} smoother than ${than(x)}`,
  sharpening: (x) => `${x.plural ? 'they are' : 'it is'} sharper and grainier than ${than(x)}`,
  colour: (x) => `${x.plural ? 'their' : 'its'} colour does not match the rest of the face`,
  boundary: (x) => `a blending edge runs around ${x.plural ? 'them' : 'it'}`,
};
const list = (parts: string[]) => (parts.length <= 1 ? parts.join('') : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`);

/** What each kind of edit looks like, in words a moderator uses ("The edit looks inpainted"). */
export const EDIT_KIND_WORDS: Readonly<Record<EditKind, string>> = Object.freeze({
  BLEND: 'blended in from another face or image',
  INPAINT: 'inpainted (filled in from its surroundings)',
  SPLICE: 'spliced in from another photo',
  RECOLOUR: 'recoloured',
  SMOOTH: 'smoothed or retouched',
  SHARPEN: 'sharpened',
});
const EDIT_KIND_NOUN: Readonly<Record<EditKind, string>> = Object.freeze({
  BLEND: 'blending', INPAINT: 'inpainting', SPLICE: 'splicing', RECOLOUR: 'recolouring', SMOOTH: 'smoothing', SHARPEN: 'sharpening',
});

/** Words that claim a cue; a sentence using one may name only regions with a fact of that cue. */
export const CUE_WORDS: Readonly<Record<Cue, RegExp>> = Object.freeze({
  blur: /\b(blur\w*|smooth\w*)\b/i,
  sharpening: /\b(sharp\w*|grain\w*|nois\w*)\b/i,
  colour: /\b(colou?r\w*|hue|tint\w*|tone)\b/i,
  boundary: /\b(edges?|seams?|boundar\w*|blending)\b/i,
});
/** Words that claim a kind of edit; each needs an EditKindFact of that kind. */
export const EDIT_KIND_CLAIM_WORDS: Readonly<Record<EditKind, RegExp>> = Object.freeze({
  BLEND: /\b(blended in|face[- ]?swap\w*)\b/i,
  INPAINT: /\binpaint\w*/i,
  SPLICE: /\bsplic\w*/i,
  RECOLOUR: /\brecolou?r\w*/i,
  SMOOTH: /\b(retouch\w*|smoothed)\b/i,
  SHARPEN: /\bsharpened\b/i,
});

/**
 * What in `text` the facts do not back; [] means the text is grounded. Stricter than naming a
 * known region: a region word is backed only by a fact of a cue (coverage alone is no reason to
 * name a region), "both eyes" needs both sides, a sentence that uses a cue word may only name
 * regions with a fact of that cue, and a kind-of-edit word needs a claim of that kind. Problems
 * are reported as written, lowercased, deduplicated, in order: "nose", "colour: left eye",
 * "inpainted".
 */
export function checkGrounding(text: string, facts: readonly Fact[], editKinds: readonly EditKindFact[] = []): string[] {
  const out: string[] = [];
  const add = (p: string) => (out.includes(p) ? undefined : out.push(p));
  const claimed = facts.filter((f) => f.cue !== 'coverage');
  const regions = [...new Set(claimed.map((f) => f.region))];
  const byCue = (cue: Cue) => [...new Set(claimed.filter((f) => f.cue === cue).map((f) => f.region))];
  for (const sentence of text.split(/(?<=[.!?;])\s+/)) {
    const mentions = findRegionMentions(sentence);
    for (const m of mentions) {
      if (!mentionBacked(m, regions)) add(m.text.toLowerCase().replace(/\s+/g, ' '));
    }
    for (const cue of CLAIM_CUES) {
      if (!CUE_WORDS[cue].test(sentence)) continue;
      for (const m of mentions) {
        if (mentionBacked(m, regions) && !mentionBacked(m, byCue(cue))) add(`${cue}: ${m.text.toLowerCase().replace(/\s+/g, ' ')}`);
      }
    }
    for (const kind of EDIT_KINDS) {
      const said = EDIT_KIND_CLAIM_WORDS[kind].exec(sentence);
      if (said && !editKinds.some((k) => k.type === kind)) add(said[0].toLowerCase());
    }
  }
  return out;
}

export interface Claim {
  region: RegionEvidence;
  /** Its passing cues, strongest first. */
  cues: Cue[];
  levels: CueThresholds;
}

/**
 * Claim sentences written by someone else (a language model), already checked against their
 * facts: per face index, per region name, the sentence and the cues it claims.
 */
export type WrittenClaims = ReadonlyMap<number, ReadonlyMap<string, { sentence: string; cues: readonly Cue[] }>>;

/**
 * Template explainer. Deterministic: the same input always gives the same text.
 *
 * Per face: a face too small or too degraded to judge says so and nothing else. Otherwise each
 * region with coverage >= minCoverage and at least one cue past its own level is a claim; claims
 * are ordered by evidence (mean probability x coverage, then the number of cues), at most
 * maxRegionsPerFace, one sentence each naming the region and what looks wrong there. Kinds of
 * edit whose probability reaches typeThreshold follow, with their confidence. With a
 * LIKELY_AUTHENTIC verdict nothing is claimed and the face reads "no measurable inconsistency"
 * (never a clearance); otherwise a face without claims says no region passed its level.
 * UNCERTAIN adds that the evidence is weak.
 */
export class TemplateExplainer implements Explainer {
  readonly name = 'template';
  readonly version = '2.0.0';
  readonly options: Readonly<ResolvedOptions>;
  private readonly zoneLevels: CueThresholds;

  constructor(options: TemplateExplainerOptions = {}) {
    const o: ResolvedOptions = { ...DEFAULT_TEMPLATE_OPTIONS };
    for (const [k, v] of Object.entries(options) as [keyof TemplateExplainerOptions, never][]) {
      if (v !== undefined) o[k] = v;
    }
    if (!(o.maxRegionsPerFace >= 1)) throw new RangeError('maxRegionsPerFace must be >= 1');
    this.options = Object.freeze(o);
    // Strictest of every level known, for zones nobody measured.
    const all = [o, ...Object.values(o.regionThresholds)];
    const pick = (k: keyof CueThresholds, f: (...v: number[]) => number) => f(...all.map((t) => t[k]).filter(fin));
    this.zoneLevels = {
      blurBelow: pick('blurBelow', Math.min),
      sharpenAbove: pick('sharpenAbove', Math.max),
      colourAbove: pick('colourAbove', Math.max),
      boundaryAbove: pick('boundaryAbove', Math.max),
    };
  }

  /** A region's cue levels: its own name's, else its family's, else the global ones (zones: the strictest). */
  levelsFor(name: string): CueThresholds {
    const o = this.options;
    const family = parseRegion(name)?.family;
    const own = o.regionThresholds[name] ?? (family !== undefined ? o.regionThresholds[family] : undefined);
    const base: CueThresholds = own === undefined && family !== undefined && ZONE_FAMILIES.includes(family)
      ? this.zoneLevels
      : { blurBelow: o.blurBelow, sharpenAbove: o.sharpenAbove, colourAbove: o.colourAbove, boundaryAbove: o.boundaryAbove };
    return { ...base, ...Object.fromEntries(Object.entries(own ?? {}).filter(([, v]) => fin(v))) };
  }

  async explain(input: ExplanationInput): Promise<Explanation> {
    return this.explainSync(input);
  }

  /**
   * Same as explain(), synchronously. With `written`, a face that has written claims gets those
   * sentences (in evidence order, with facts for the cues they claim) instead of the template's
   * own, and keeps the template's other sentences (kinds of edit, weak evidence).
   */
  explainSync(input: ExplanationInput, written?: WrittenClaims): Explanation {
    const generator = { name: this.name, version: this.version };
    if (input.faces.length === 0) {
      return { text: 'No face was found, so there was nothing to check.', facts: [], editKinds: [], generator };
    }
    const multi = input.faces.length > 1;
    const paragraphs: string[] = [];
    const facts: Fact[] = [];
    const editKinds: EditKindFact[] = [];
    for (const face of input.faces) {
      const r = this.explainFace(face, input.verdict, multi, written?.get(face.faceIndex));
      paragraphs.push(r.text);
      facts.push(...r.facts);
      editKinds.push(...r.editKinds);
    }
    return { text: paragraphs.join(' '), facts, editKinds, generator };
  }

  /** The claims the evidence supports on one face, strongest first (all of them, before the per-face limits). */
  claims(face: FaceEvidence, verdict: Verdict): Claim[] {
    if (verdict === 'LIKELY_AUTHENTIC' || !judgeable(face)) return [];
    const seen = new Set<string>();
    const ev = (r: RegionEvidence) => (fin(r.score) ? r.score : 0) * r.coverage;
    return face.regions
      .filter((r) => fin(r.coverage) && r.coverage >= this.options.minCoverage && parseRegion(r.name) !== undefined)
      .map((region) => {
        const levels = this.levelsFor(region.name);
        const cues = CLAIM_CUES.filter((c) => cuePasses(c, region, levels))
          .sort((a, b) => cueStrength(b, region, levels) - cueStrength(a, region, levels));
        return { region, cues, levels };
      })
      .filter((c) => c.cues.length > 0)
      .sort((a, b) => ev(b.region) - ev(a.region) || b.cues.length - a.cues.length || (a.region.name < b.region.name ? -1 : a.region.name > b.region.name ? 1 : 0))
      .filter((c) => (seen.has(c.region.name) ? false : (seen.add(c.region.name), true)));
  }

  /** The kinds of edit to name on one face, most probable first. */
  kinds(face: FaceEvidence, verdict: Verdict): { type: EditKind; probability: number }[] {
    if (verdict === 'LIKELY_AUTHENTIC' || !judgeable(face)) return [];
    const level = this.typeLevel(face);
    return (face.manipulations ?? [])
      .filter((m) => fin(m.probability) && m.probability >= level && EDIT_KINDS.includes(m.type))
      .sort((a, b) => b.probability - a.probability)
      .slice(0, this.options.maxKindsPerFace);
  }

  /** The probability from which a kind of edit is named on this face. */
  typeLevel(face: FaceEvidence): number {
    return fin(face.typeThreshold) && face.typeThreshold > 0 ? face.typeThreshold : this.options.typeThreshold;
  }

  private explainFace(face: FaceEvidence, verdict: Verdict, multi: boolean, written?: ReadonlyMap<string, { sentence: string; cues: readonly Cue[] }>): { text: string; facts: Fact[]; editKinds: EditKindFact[] } {
    const o = this.options;
    const prefix = multi ? `On face ${face.faceIndex + 1}, ` : '';
    const open = (s: string) => (prefix ? prefix + s : capitalize(s));
    const score = fin(face.forgeryScore) ? fmt(face.forgeryScore) : 'n/a';
    if (face.quality === 'TOO_SMALL' || face.quality === 'TOO_DEGRADED') {
      const why = face.quality === 'TOO_SMALL' ? 'too small in the image' : 'too degraded (blurred, hidden or turned away)';
      return { text: open(`the face is ${why} to judge, so its scores say nothing either way.`), facts: [], editKinds: [] };
    }
    const all = written?.size
      ? this.claims(face, verdict)
          .filter((c) => written.has(c.region.name))
          .map((c) => ({ ...c, cues: c.cues.filter((cue) => written.get(c.region.name)!.cues.includes(cue)) }))
          .filter((c) => c.cues.length > 0)
      : this.claims(face, verdict);
    const kinds = this.kinds(face, verdict);
    const editKinds = kinds.map((k) => ({
      faceIndex: face.faceIndex,
      type: k.type,
      probability: k.probability,
      threshold: this.typeLevel(face),
      statement: `The localizer's type output gives ${EDIT_KIND_NOUN[k.type]} a probability of ${fmt(k.probability)} (named from ${fmt(this.typeLevel(face))}).`,
    }));
    for (let n = Math.min(o.maxRegionsPerFace, all.length); ; n--) {
      const claims = all.slice(0, n);
      const sentences = claims.map((c) => {
        const own = written?.get(c.region.name)?.sentence;
        if (own) return own[0].toLowerCase() + own.slice(1).replace(/[.!]?\s*$/, '.');
        const x = subjectOf(c.region.name);
        return list(c.cues.map((cue, i) => (i === 0 ? FIRST[cue] : NEXT[cue])(x))) + '.';
      });
      if (kinds.length) {
        sentences.push(`the edit looks ${list(kinds.map((k, i) => `${EDIT_KIND_WORDS[k.type]} (${i === 0 ? 'type confidence ' : ''}${fmt(k.probability)})`))}.`);
      }
      if (claims.length === 0) {
        sentences.unshift(verdict === 'LIKELY_AUTHENTIC'
          ? `no measurable inconsistency was found on this face (face score ${score}); that is not proof that it is unedited.`
          : `no single facial region shows a cue past its natural level, so none is named (face score ${score}).`);
      }
      if (verdict === 'UNCERTAIN') sentences.push(claims.length ? `the evidence is weak overall (face score ${score}).` : 'the evidence is weak overall.');
      const text = sentences.map((s, i) => (i === 0 ? open(s) : capitalize(s))).join(' ');
      if (text.length <= o.maxCharsPerFace || n <= 1) return { text, facts: claims.flatMap((c) => this.factsFor(face, c)), editKinds };
    }
  }

  private factsFor(face: FaceEvidence, { region: r, cues, levels: t }: Claim): Fact[] {
    const x = subjectOf(r.name);
    const the = x.s;
    const The = capitalize(the);
    const has = x.plural ? 'have' : 'has';
    const base = { faceIndex: face.faceIndex, region: r.name };
    const facts: Fact[] = [{
      ...base,
      cue: 'coverage',
      value: r.coverage,
      unit: 'fraction of region',
      statement: `${Math.round(r.coverage * 100)}% of ${the} ${x.plural ? 'lie' : 'lies'} inside the forgery mask (mean probability ${fmt(fin(r.score) ? r.score : 0)}).`,
    }];
    const c = r.cues;
    for (const cue of cues) {
      if (cue === 'blur' || cue === 'sharpening') {
        const blur = cue === 'blur';
        facts.push({ ...base, cue, value: c.noiseLogRatio!, unit: 'log-ratio of high-frequency energy',
          statement: `${The} ${has} ${blur ? 'less fine detail' : 'more fine detail or noise'} than the face as a whole (log-ratio ${fmt(c.noiseLogRatio!)}, ${blur ? 'below' : 'above'} this region's level of ${fmt(blur ? t.blurBelow : t.sharpenAbove)}).` });
      } else if (cue === 'colour') {
        facts.push({ ...base, cue, value: c.colourDelta!, unit: 'percent points of chromaticity',
          statement: `${The} ${be(x)} ${c.colourDelta!.toFixed(1)} percent points of chromaticity away from the face's own colour (above this region's level of ${t.colourAbove.toFixed(1)}).` });
      } else {
        facts.push({ ...base, cue, value: c.boundaryStrength!, unit: 'boundary strength (model units)',
          statement: `The forgery mask's edge in ${the} shows a blending boundary of strength ${fmt(c.boundaryStrength!)} (above this region's level of ${fmt(t.boundaryAbove)}).` });
      }
    }
    return facts;
  }
}

const judgeable = (f: FaceEvidence) => f.quality !== 'TOO_SMALL' && f.quality !== 'TOO_DEGRADED';
