// Quality metrics for forgery masks: pixel AUC, IoU and F1 against a ground-truth mask.

/**
 * Area under the ROC curve of 8-bit scores against binary labels, over the pixels where
 * `area` is set (all pixels when omitted). Ties count one half (Mann-Whitney U), which a
 * histogram of the 256 levels gives exactly. NaN when one class is absent.
 */
export function pixelAuc(scores: Uint8Array, labels: Uint8Array, area?: Uint8Array): number {
  const pos = new Float64Array(256);
  const neg = new Float64Array(256);
  for (let i = 0; i < scores.length; i++) {
    if (area && !area[i]) continue;
    if (labels[i]) pos[scores[i]]++;
    else neg[scores[i]]++;
  }
  let nPos = 0;
  let nNeg = 0;
  for (let v = 0; v < 256; v++) {
    nPos += pos[v];
    nNeg += neg[v];
  }
  if (nPos === 0 || nNeg === 0) return NaN;
  let u = 0;
  let negBelow = 0;
  for (let v = 0; v < 256; v++) {
    u += pos[v] * (negBelow + neg[v] / 2);
    negBelow += neg[v];
  }
  return u / (nPos * nNeg);
}

export interface MaskScores {
  iou: number;
  f1: number;
  precision: number;
  recall: number;
}

/** Binary agreement of a predicted mask (any non-zero) with the ground truth (any non-zero). */
export function maskScores(pred: Uint8Array, gt: Uint8Array, area?: Uint8Array): MaskScores {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < pred.length; i++) {
    if (area && !area[i]) continue;
    const p = pred[i] !== 0;
    const g = gt[i] !== 0;
    if (p && g) tp++;
    else if (p) fp++;
    else if (g) fn++;
  }
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return {
    iou: tp + fp + fn ? tp / (tp + fp + fn) : 1,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
    precision,
    recall,
  };
}
