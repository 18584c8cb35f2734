// The localizer evaluation's arithmetic (issue #17), apart from the models: the evaluation set's
// index format, per-image outcomes, groups (recipe, laundering, identity, trained or held out)
// and their figures with bootstrap 95% intervals. bench/quality.ts runs the models and uses this.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { rng } from '@tampertrace/shared';

/** One line of `<dir>/index.jsonl`, as models/learned-localizer/make_eval.py writes it. */
export interface EvalItem {
  /** Image path relative to the set's folder. */
  file: string;
  /** Ground-truth mask (any non-zero pixel = edited), same size as the image; null for real images. */
  mask: string | null;
  recipe: string;
  /** "clean", "half_jpeg80", "grey", ...: what was done to the whole image after the edit. */
  laundering: string;
  /** The true kinds of edit (ManipulationType names without prefix); empty for real images. */
  types: string[];
  real: boolean;
  /** True for recipes the training kit never used. */
  heldOut: boolean;
  identity: string;
  seed: number;
}

export async function readEvalIndex(dir: string): Promise<EvalItem[]> {
  const text = await readFile(path.join(dir, 'index.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((line, i) => {
      const x = JSON.parse(line) as Partial<EvalItem>;
      const where = `index.jsonl line ${i + 1}`;
      if (typeof x.file !== 'string' || typeof x.recipe !== 'string' || typeof x.laundering !== 'string' || typeof x.real !== 'boolean') {
        throw new Error(`${where}: needs file, recipe, laundering (strings) and real (boolean)`);
      }
      if (!x.real && typeof x.mask !== 'string') throw new Error(`${where}: a forged image needs its mask`);
      return { file: x.file, mask: x.mask ?? null, recipe: x.recipe, laundering: x.laundering, types: x.types ?? [], real: x.real, heldOut: Boolean(x.heldOut), identity: x.identity ?? '?', seed: x.seed ?? 0 };
    });
}

/** What one model made of one image. */
export interface Outcome {
  item: EvalItem;
  /** Faces the detector found. */
  faces: number;
  /** The highest face score; 0 without a face (nothing to call forged). */
  score: number;
  verdict: 'LIKELY_FORGED' | 'UNCERTAIN' | 'LIKELY_AUTHENTIC' | 'NO_FACE';
  /** Forged only: IoU of the full-image mask with the ground truth (0 when no face was found). */
  iou?: number;
  /** Forged only, with a face found: pixel AUC of the heatmap inside the face crops. */
  pixelAuc?: number;
  /** Models with a type output: the top kind of the highest-scoring face, and its probability. */
  topType?: string;
  topProbability?: number;
  /** The model's typeThreshold. */
  typeThreshold?: number;
}

/**
 * Type accuracy, for a forged image with known kinds: the top kind of its highest-scoring face is
 * one of the true kinds and reaches the type threshold (below it the model says "no edit found",
 * which is wrong for a forged image). Undefined when the model has no type output.
 */
export function typeCorrect(o: Outcome): boolean | undefined {
  if (o.item.real || !o.item.types.length || o.typeThreshold === undefined) return undefined;
  return o.topType !== undefined && o.item.types.includes(o.topType) && (o.topProbability ?? 0) >= o.typeThreshold;
}

/** Area under the ROC curve of positive against negative scores, ties one half; NaN when a side is empty. */
export function auc(pos: number[], neg: number[]): number {
  if (!pos.length || !neg.length) return NaN;
  const all = [...pos.map((s) => [s, 1] as const), ...neg.map((s) => [s, 0] as const)].sort((a, b) => a[0] - b[0]);
  let rankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j][0] === all[i][0]) j++;
    const midRank = (i + 1 + j) / 2; // 1-based ranks i+1..j share their mean
    for (let k = i; k < j; k++) if (all[k][1]) rankSum += midRank;
    i = j;
  }
  return (rankSum - (pos.length * (pos.length + 1)) / 2) / (pos.length * neg.length);
}

const meanOf = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** A figure with its bootstrap 95% interval (2.5th and 97.5th percentiles), n the items it rests on. */
export interface Figure {
  value: number;
  lo: number;
  hi: number;
  n: number;
}


export const BOOTSTRAP_RESAMPLES = 1000;

/**
 * stat over the groups of values, with a percentile bootstrap that resamples each group on its
 * own (forged and real images separately for an AUC).
 */
export function bootstrap<T>(groups: T[][], stat: (...gs: T[][]) => number, seed = 17): Figure {
  const value = stat(...groups);
  const n = groups.reduce((a, g) => a + g.length, 0);
  if (Number.isNaN(value) || groups.some((g) => g.length === 0)) return { value, lo: NaN, hi: NaN, n };
  const next = rng(seed);
  const draws: number[] = [];
  for (let b = 0; b < BOOTSTRAP_RESAMPLES; b++) {
    const v = stat(...groups.map((g) => Array.from({ length: g.length }, () => g[Math.floor(next() * g.length)])));
    if (!Number.isNaN(v)) draws.push(v);
  }
  draws.sort((x, y) => x - y);
  const at = (p: number) => draws[Math.min(draws.length - 1, Math.floor(p * draws.length))];
  return { value, lo: at(0.025), hi: at(0.975), n };
}

export interface GroupFigures {
  forged: number;
  real: number;
  meanIou: Figure;
  pixelAuc: Figure;
  /** This group's forged images against every real image of the set. */
  imageAuc: Figure;
  /** Share of this group's real images called LIKELY_FORGED / UNCERTAIN. */
  realForged: Figure;
  realUncertain: Figure;
  /** Share of forged images called LIKELY_FORGED. */
  forgedCalledForged: Figure;
  /** Undefined value (NaN) for a model without a type output. */
  typeAccuracy: Figure;
  /** Share of faces found on this group's images. */
  facesFound: number;
}

/** The figures of one group of outcomes; `allReal` are the negatives of its image-level AUC. */
export function figures(group: Outcome[], allReal: Outcome[]): GroupFigures {
  const forged = group.filter((o) => !o.item.real);
  const real = group.filter((o) => o.item.real);
  const share = (pred: (o: Outcome) => boolean) => (os: Outcome[]) => meanOf(os.map((o) => (pred(o) ? 1 : 0)));
  const typed = forged.filter((o) => typeCorrect(o) !== undefined);
  return {
    forged: forged.length,
    real: real.length,
    meanIou: bootstrap([forged.filter((o) => o.iou !== undefined).map((o) => o.iou!)], meanOf),
    pixelAuc: bootstrap([forged.filter((o) => o.pixelAuc !== undefined && !Number.isNaN(o.pixelAuc)).map((o) => o.pixelAuc!)], meanOf),
    imageAuc: bootstrap([forged.map((o) => o.score), allReal.map((o) => o.score)], auc),
    realForged: bootstrap([real], share((o) => o.verdict === 'LIKELY_FORGED')),
    realUncertain: bootstrap([real], share((o) => o.verdict === 'UNCERTAIN')),
    forgedCalledForged: bootstrap([forged], share((o) => o.verdict === 'LIKELY_FORGED')),
    typeAccuracy: bootstrap([typed], share((o) => typeCorrect(o)!)),
    facesFound: meanOf(group.map((o) => (o.faces > 0 ? 1 : 0))),
  };
}

export interface Report {
  overall: GroupFigures;
  /** Forged images of recipes the training used (new seeds), and of recipes it never used. */
  trainedRecipes: GroupFigures;
  heldOutRecipes: GroupFigures;
  clean: GroupFigures;
  laundered: GroupFigures;
  byRecipe: Record<string, GroupFigures & { heldOut: boolean }>;
  /** Forged images by `recipe/laundering`: the cells the default-model rule (issue #17) compares. */
  byRecipeAndLaundering: Record<string, GroupFigures & { heldOut: boolean }>;
  byLaundering: Record<string, GroupFigures>;
  byIdentity: Record<string, GroupFigures>;
}

/** Every group the evaluation reports. Real images sit in overall, clean/laundered, laundering and identity groups. */
export function report(outcomes: Outcome[]): Report {
  const real = outcomes.filter((o) => o.item.real);
  const forged = outcomes.filter((o) => !o.item.real);
  const by = (key: (o: Outcome) => string, os: Outcome[]) => {
    const m = new Map<string, Outcome[]>();
    for (const o of os) m.set(key(o), [...(m.get(key(o)) ?? []), o]);
    return [...m.entries()].sort(([a], [b]) => a.localeCompare(b));
  };
  return {
    overall: figures(outcomes, real),
    trainedRecipes: figures(forged.filter((o) => !o.item.heldOut), real),
    heldOutRecipes: figures(forged.filter((o) => o.item.heldOut), real),
    clean: figures(outcomes.filter((o) => o.item.laundering === 'clean'), real),
    laundered: figures(outcomes.filter((o) => o.item.laundering !== 'clean'), real),
    byRecipe: Object.fromEntries(by((o) => o.item.recipe, forged).map(([k, os]) => [k, { ...figures(os, real), heldOut: os[0].item.heldOut }])),
    byRecipeAndLaundering: Object.fromEntries(by((o) => `${o.item.recipe}/${o.item.laundering}`, forged).map(([k, os]) => [k, { ...figures(os, real), heldOut: os[0].item.heldOut }])),
    byLaundering: Object.fromEntries(by((o) => o.item.laundering, outcomes).map(([k, os]) => [k, figures(os, real)])),
    byIdentity: Object.fromEntries(by((o) => o.item.identity, outcomes).map(([k, os]) => [k, figures(os, real.filter((r) => r.item.identity === k))])),
  };
}

/**
 * Issue #17's rule for making a new model the default, on point estimates: higher mean IoU and
 * higher image-level AUC than the baseline in every recipe/laundering cell, and no larger share
 * of real photos called LIKELY_FORGED (UNCERTAIN reported beside it). Intervals overlap on this
 * little data, so a "yes" here is necessary, not sufficient: read the intervals too.
 */
export function compareWithBaseline(base: Report, other: Report) {
  const cells = Object.keys(base.byRecipeAndLaundering).filter((k) => k in other.byRecipeAndLaundering);
  const losses: string[] = [];
  for (const k of cells) {
    const [b, o] = [base.byRecipeAndLaundering[k], other.byRecipeAndLaundering[k]];
    if (!(o.meanIou.value > b.meanIou.value)) losses.push(`${k}: IoU ${o.meanIou.value.toFixed(3)} vs ${b.meanIou.value.toFixed(3)}`);
    if (!(o.imageAuc.value > b.imageAuc.value)) losses.push(`${k}: image AUC ${o.imageAuc.value.toFixed(3)} vs ${b.imageAuc.value.toFixed(3)}`);
  }
  const realForged = { baseline: base.overall.realForged.value, model: other.overall.realForged.value };
  const realUncertain = { baseline: base.overall.realUncertain.value, model: other.overall.realUncertain.value };
  if (realForged.model > realForged.baseline) losses.push(`real photos called LIKELY_FORGED: ${realForged.model.toFixed(3)} vs ${realForged.baseline.toFixed(3)}`);
  return { cells: cells.length, beatsOnEveryCell: losses.length === 0, losses, realForged, realUncertain };
}

export const CAVEAT =
  'Every figure rests on two identities (astronaut and camera): the bootstrap intervals resample images, not people, so they understate the uncertainty; read differences of a few points as noise.';
