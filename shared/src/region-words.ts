// The words an explanation may use for facial regions, and which stored regions (RegionScore.name)
// each one names. One list for the explainer's grounding check, the console's highlighting and
// the evaluation, so that "lips" in a sentence, the "lips" region and an older analysis's "lip"
// region are the same thing everywhere. Pure, no Node APIs (the console bundles it).

/**
 * Region families and the words that name them, singular family name first. ForgeryTalker's 21
 * region words plus a few facial terms no region covers (eyelid, temple, neck): a sentence naming
 * one of those can never be backed by a fact, so a language model that uses them is caught.
 */
export const REGION_WORDS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  eye: ['eye', 'eyes'],
  pupil: ['pupil', 'pupils', 'iris', 'irises'],
  eyebrow: ['eyebrow', 'eyebrows', 'brow', 'brows'],
  eyelid: ['eyelid', 'eyelids'],
  nose: ['nose', 'nostril', 'nostrils'],
  lip: ['lip', 'lips'],
  mouth: ['mouth'],
  tooth: ['tooth', 'teeth'],
  tongue: ['tongue'],
  cheek: ['cheek', 'cheeks', 'cheekbone', 'cheekbones'],
  forehead: ['forehead'],
  temple: ['temple', 'temples'],
  chin: ['chin'],
  jaw: ['jaw', 'jaws', 'jawline'],
  ear: ['ear', 'ears'],
  neck: ['neck'],
  skin: ['skin'],
  hair: ['hair', 'hairline'],
  beard: ['beard'],
  mustache: ['mustache', 'moustache'],
  wrinkle: ['wrinkle', 'wrinkles'],
  freckle: ['freckle', 'freckles'],
  scar: ['scar', 'scars'],
  dimple: ['dimple', 'dimples'],
});

/**
 * Families whose region exists only when its own evidence shows it is there (visible teeth, a
 * beard), and the pupils (a catch-light is not an edit): the explainer never names them without
 * a passing cue of their own, and their levels default to the strictest measured ones.
 */
export const ZONE_FAMILIES: readonly string[] = Object.freeze(['tooth', 'beard', 'mustache', 'hair', 'pupil']);

export type Side = 'left' | 'right';

/** A region name taken apart: "left eye" is { side: 'left', family: 'eye' }, "lips" is { family: 'lip' }. */
export interface RegionKey {
  side?: Side;
  family: string;
}

const FAMILY_OF = new Map<string, string>(Object.entries(REGION_WORDS).flatMap(([family, words]) => words.map((w) => [w, family] as const)));

/** The family a single word names ("teeth" -> "tooth"), or undefined when it is no region word. */
export function familyOfWord(word: string): string | undefined {
  return FAMILY_OF.get(word.trim().toLowerCase());
}

/** A stored region name taken apart; undefined for names outside the vocabulary. */
export function parseRegion(name: string): RegionKey | undefined {
  const m = /^(?:(left|right)\s+)?(.+)$/.exec(name.trim().toLowerCase().replace(/\s+/g, ' '));
  if (!m) return undefined;
  const family = familyOfWord(m[2]);
  return family ? { side: m[1] as Side | undefined, family } : undefined;
}

/** The family of a region name ("right cheek" -> "cheek", "lips" -> "lip"), or undefined. */
export function regionFamily(name: string): string | undefined {
  return parseRegion(name)?.family;
}

/** One region word in a text. */
export interface RegionMention {
  /** Offset and length of the words in the text ("left eye", "both cheeks", "lips"). */
  index: number;
  length: number;
  /** The words as written. */
  text: string;
  family: string;
  /** 'both' for "both eyes"; undefined when no side was said. */
  side?: Side | 'both';
}

const ALL_WORDS = [...FAMILY_OF.keys()].sort((a, b) => b.length - a.length);
// "the surrounding skin" is the reference a region is compared with, not a claim about a region.
const MENTION = new RegExp(`\\b(?<!surrounding\\s+)(?:(both|left|right)\\s+)?(${ALL_WORDS.join('|')})\\b`, 'gi');

/**
 * Every region word in `text`, in order; "left eye" is one mention, not "left" plus "eye". The
 * reference "surrounding skin" ("smoother than the surrounding skin") is not a mention.
 */
export function findRegionMentions(text: string): RegionMention[] {
  const out: RegionMention[] = [];
  for (const m of text.matchAll(new RegExp(MENTION))) {
    const side = m[1]?.toLowerCase() as Side | 'both' | undefined;
    out.push({ index: m.index, length: m[0].length, text: m[0], family: FAMILY_OF.get(m[2].toLowerCase())!, side });
  }
  return out;
}

/** Whether a mention names the stored region `name`: same family, and a side that fits. */
export function mentionNames(mention: Pick<RegionMention, 'family' | 'side'>, name: string): boolean {
  const r = parseRegion(name);
  if (!r || r.family !== mention.family) return false;
  if (!mention.side || mention.side === 'both' || !r.side) return true;
  return mention.side === r.side;
}

/** The stored regions (from `names`) a mention names: "eyes" -> ["right eye", "left eye"], "lips" -> ["lip"] on an older analysis. */
export function regionsNamedBy(mention: Pick<RegionMention, 'family' | 'side'>, names: readonly string[]): string[] {
  return [...new Set(names.filter((n) => mentionNames(mention, n)))];
}

/**
 * Whether `backed` (region names with a fact of their own) backs a mention: "both eyes" needs
 * both sides (or a side-less region of that family), any other mention needs one region it names.
 */
export function mentionBacked(mention: Pick<RegionMention, 'family' | 'side'>, backed: readonly string[]): boolean {
  const named = regionsNamedBy(mention, backed).map((n) => parseRegion(n)!);
  if (mention.side !== 'both') return named.length > 0;
  return named.some((r) => !r.side) || (named.some((r) => r.side === 'left') && named.some((r) => r.side === 'right'));
}
