// How well explanations name what was edited, against a ground-truth mask (make eval-localizer):
// region precision and recall, whether the kind of edit was named correctly, and false claims on
// real photos. Pure: the caller decodes the mask.
import type { Analysis, Face, RegionScore } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { Cue } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import type { ManipulationType } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { REGION_NAMES, rasteriseRegions, regionLayer, type RegionName } from '@tampertrace/shared/face-regions';

/** A region counts as edited when at least this share of its area is in the ground-truth mask (issue #18). */
export const EDITED_REGION_FRACTION = 0.15;

export interface GroundTruth {
  /** One byte per image pixel, row-major, non-zero = edited; all zero (or absent) for a real photo. */
  mask?: Uint8Array;
  width: number;
  height: number;
  /** The kinds of edit the forgery applied; empty for a real photo. */
  kinds?: readonly ManipulationType[];
}

/** Where a region lies: one byte per image pixel, non-zero inside; undefined when unknown. */
export type RegionArea = (face: Face, region: RegionScore, width: number, height: number) => Uint8Array | undefined;

export interface ExplanationRegionMetrics {
  /** "face index:region" of every region the explanation names (a fact of a cue, not coverage alone). */
  claimed: string[];
  /** "face index:region" of every region of the analysis at least EDITED_REGION_FRACTION inside the mask. */
  edited: string[];
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  /** TP / claimed; undefined when nothing was claimed. */
  precision?: number;
  /** TP / edited; undefined when nothing was edited (a real photo). */
  recall?: number;
  /** Regions whose area is unknown (no polygons and no RegionArea fallback): left out of `edited`. */
  unknownArea: string[];
  /** Kinds of edit the explanation names (EditKindFact), over all faces. */
  kindsNamed: ManipulationType[];
  /** Whether the most probable kind named is one the forgery applied; undefined without truth kinds or when none was named. */
  kindCorrect?: boolean;
  /** On a real photo (empty mask): regions claimed, i.e. false claims; 0 on a forgery. */
  falseClaimsOnReal: number;
}

/**
 * A region's area from its stored polygons (analyses made since regions come from landmarks),
 * by the geometry's own rasterisation rule (shared/src/face-regions.ts rasteriseRegions).
 */
export const storedRegionArea: RegionArea = (_face, region, width, height) => {
  if (region.polygons.length === 0 || !(REGION_NAMES as readonly string[]).includes(region.name)) return undefined;
  const name = region.name as RegionName;
  const polygons = region.polygons.map((p) => ({ hole: p.hole, points: p.points.map((q) => ({ x: q.x, y: q.y })) }));
  const maps = rasteriseRegions([{ name, polygons }], width, height);
  const k = REGION_NAMES.indexOf(name);
  return (regionLayer(name) === 'zone' ? maps.zones : maps.labels).map((v) => (v === k ? 1 : 0));
};

/**
 * Region precision and recall of one analysis's explanation against its ground truth. A claim is
 * a region the explanation names (a fact of a cue, coverage alone names nothing); a region is
 * edited when at least 15% of its area is in the mask. `area` says where a region lies: the
 * stored polygons by default; pass a fallback for analyses without them.
 */
export function explanationRegionMetrics(analysis: Analysis, truth: GroundTruth, area: RegionArea = storedRegionArea): ExplanationRegionMetrics {
  const { width, height } = truth;
  const mask = truth.mask;
  if (mask && mask.length !== width * height) throw new RangeError(`mask has ${mask.length} pixels, expected ${width} x ${height}`);
  const real = !mask || !mask.some((v) => v !== 0);
  const key = (face: number, region: string) => `${face}:${region}`;

  const facts = analysis.explanation?.facts ?? [];
  const claimed = [...new Set(facts.filter((f) => f.cue !== Cue.COVERAGE && f.cue !== Cue.UNSPECIFIED).map((f) => key(f.faceIndex, f.region)))];

  const edited: string[] = [];
  const unknownArea: string[] = [];
  if (!real) {
    for (const face of analysis.faces) {
      for (const region of face.regions) {
        const inside = area(face, region, width, height);
        if (!inside) {
          unknownArea.push(key(face.index, region.name));
          continue;
        }
        let n = 0;
        let hit = 0;
        for (let i = 0; i < inside.length; i++) {
          if (!inside[i]) continue;
          n++;
          if (mask![i]) hit++;
        }
        if (n > 0 && hit / n >= EDITED_REGION_FRACTION) edited.push(key(face.index, region.name));
      }
    }
  }
  const tp = claimed.filter((c) => edited.includes(c)).length;

  const named = [...(analysis.explanation?.editKinds ?? [])].sort((a, b) => b.probability - a.probability);
  const kinds = truth.kinds ?? [];
  return {
    claimed,
    edited,
    truePositives: tp,
    falsePositives: claimed.length - tp,
    falseNegatives: edited.length - tp,
    precision: claimed.length ? tp / claimed.length : undefined,
    recall: edited.length ? tp / edited.length : undefined,
    unknownArea,
    kindsNamed: [...new Set(named.map((k) => k.type))],
    kindCorrect: kinds.length && named.length ? kinds.includes(named[0].type) : undefined,
    falseClaimsOnReal: real ? claimed.length : 0,
  };
}

export interface ExplanationMetricsSummary {
  forgeries: number;
  realPhotos: number;
  /** Pooled over all forgeries: sum TP / sum claimed, sum TP / sum edited. */
  precision?: number;
  recall?: number;
  /** Share of forgeries with a kind named whose most probable named kind was right (over those with truth kinds and a kind named). */
  kindAccuracy?: number;
  /** Forgeries (with truth kinds) on which no kind was named. */
  kindNotNamed: number;
  /** False region claims per real photo (target: at most 1 per 20, i.e. 0.05). */
  falseClaimsPerRealPhoto?: number;
  /** Kinds named on real photos. */
  kindsNamedOnReal: number;
}

/** Pools per-image metrics (forgeries and real photos together) into the figures the issue targets. */
export function summarizeExplanationMetrics(items: readonly { metrics: ExplanationRegionMetrics; real: boolean; hasKinds?: boolean }[]): ExplanationMetricsSummary {
  const forged = items.filter((x) => !x.real).map((x) => x.metrics);
  const real = items.filter((x) => x.real).map((x) => x.metrics);
  const sum = (xs: ExplanationRegionMetrics[], f: (m: ExplanationRegionMetrics) => number) => xs.reduce((a, m) => a + f(m), 0);
  const claimed = sum(forged, (m) => m.claimed.length);
  const edited = sum(forged, (m) => m.edited.length);
  const tp = sum(forged, (m) => m.truePositives);
  const judged = forged.filter((m) => m.kindCorrect !== undefined);
  return {
    forgeries: forged.length,
    realPhotos: real.length,
    precision: claimed ? tp / claimed : undefined,
    recall: edited ? tp / edited : undefined,
    kindAccuracy: judged.length ? judged.filter((m) => m.kindCorrect).length / judged.length : undefined,
    kindNotNamed: items.filter((x) => !x.real && x.hasKinds && x.metrics.kindsNamed.length === 0).length,
    falseClaimsPerRealPhoto: real.length ? sum(real, (m) => m.falseClaimsOnReal) / real.length : undefined,
    kindsNamedOnReal: sum(real, (m) => m.kindsNamed.length),
  };
}
