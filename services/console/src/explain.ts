// Splits an explanation into plain text and region mentions, so each region word can highlight
// its region. Pure (tested in explain.test.ts).

export interface Segment {
  text: string;
  /** The region this piece names (as in RegionScore.name), if it is a mention. */
  region?: string;
}

/**
 * Mentions of `regions` in `text`, whole words, case-insensitive, longest name first (so "left
 * eye" wins over "eye" when both are known).
 */
export function segments(text: string, regions: string[]): Segment[] {
  const names = [...new Set(regions.filter((r) => r.trim()))].sort((a, b) => b.length - a.length);
  if (names.length === 0) return text ? [{ text }] : [];
  const escaped = names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+'));
  const re = new RegExp(`\\b(${escaped.join('|')})\\b`, 'gi');
  const out: Segment[] = [];
  let at = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > at) out.push({ text: text.slice(at, m.index) });
    const said = m[0].toLowerCase().replace(/\s+/g, ' ');
    out.push({ text: m[0], region: names.find((n) => n.toLowerCase() === said) ?? said });
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push({ text: text.slice(at) });
  return out;
}
