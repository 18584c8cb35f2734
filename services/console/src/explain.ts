// Splits an explanation into plain text and region mentions, so each region word can highlight
// its region(s), and names the kinds of edit. Region words come from shared/src/region-words.ts:
// the explainer's grounding check reads them the same way, so "lips", "eyes", "teeth" or "both
// cheeks" highlight what the text claims. Pure (tested in explain.test.ts).
import { findRegionMentions, regionsNamedBy } from '@tampertrace/shared/region-words';

export interface Segment {
  text: string;
  /** The stored regions (RegionScore.name) this piece names, if it is a mention of any ("eyes" -> both eyes). */
  regions?: string[];
  /** The face the sentence is about (Face.index): "On face N, ..." paragraphs, else the first face. */
  face?: number;
}

/**
 * Mentions of `regions` in `text`: every region word, plural or synonym, resolved to the stored
 * region names it names (on the face its paragraph is about when `regionsOfFace` is given).
 * Words naming no region of that face stay plain text.
 */
export function segments(text: string, regions: string[] | ((face: number) => string[])): Segment[] {
  const namesOf = typeof regions === 'function' ? regions : () => regions;
  // Paragraph starts: "On face 2, ..." switches the face for what follows.
  const faceAt = [...text.matchAll(/\bOn face (\d+),/g)].map((m) => ({ at: m.index, face: Number(m[1]) - 1 }));
  const face = (at: number) => faceAt.filter((f) => f.at <= at).at(-1)?.face ?? 0;
  const out: Segment[] = [];
  let at = 0;
  for (const m of findRegionMentions(text)) {
    const named = regionsNamedBy(m, namesOf(face(m.index)).filter((r) => r.trim()));
    if (named.length === 0) continue;
    if (m.index > at) out.push({ text: text.slice(at, m.index) });
    out.push({ text: m.text, regions: named, face: face(m.index) });
    at = m.index + m.length;
  }
  if (at < text.length) out.push({ text: text.slice(at) });
  return out;
}

/** How each kind of edit (ManipulationType) reads. */
const EDIT_KIND_LABEL: Record<string, string> = {
  MANIPULATION_TYPE_BLEND: 'blending / face swap',
  MANIPULATION_TYPE_INPAINT: 'inpainting',
  MANIPULATION_TYPE_SPLICE: 'splicing',
  MANIPULATION_TYPE_RECOLOUR: 'recolouring',
  MANIPULATION_TYPE_SMOOTH: 'smoothing / retouching',
  MANIPULATION_TYPE_SHARPEN: 'sharpening',
};
export const editKindLabel = (t: string) => EDIT_KIND_LABEL[t] ?? t.replace('MANIPULATION_TYPE_', '').toLowerCase();

/**
 * A face's kinds of edit, most probable first, marked `named` when the explanation names them
 * (they passed the model's type threshold); [] without a type output.
 */
export function editKinds(
  manipulations: readonly { type: string; probability?: number }[] | undefined,
  named: readonly { type: string }[] = [],
): { label: string; probability: number; named: boolean }[] {
  return [...(manipulations ?? [])]
    .map((m) => ({ label: editKindLabel(m.type), probability: m.probability ?? 0, named: named.some((n) => n.type === m.type) }))
    .sort((a, b) => b.probability - a.probability);
}
