// How enum names, scores and times read on the page. Pure (tested in format.test.ts).
import { PIPELINE } from '@tampertrace/shared/pipeline';
import { Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';

/** "ANALYSIS_STATUS_NO_FACE" -> "no face", "VERDICT_LIKELY_FORGED" -> "likely forged". */
export function enumLabel(name: string | undefined, prefix: string): string {
  if (!name) return '';
  return name.replace(prefix, '').replaceAll('_', ' ').toLowerCase();
}

export const statusLabel = (s: string | undefined) => enumLabel(s, 'ANALYSIS_STATUS_');
export const verdictLabel = (v: string | undefined) => (v && v !== 'VERDICT_UNSPECIFIED' ? enumLabel(v, 'VERDICT_') : '');
export const stageLabel = (s: string | undefined) => enumLabel(s, 'STAGE_');

/** A score in [0, 1] with two decimals. */
export const score = (x: number | undefined) => (x ?? 0).toFixed(2);
export const percent = (x: number | undefined) => `${Math.round((x ?? 0) * 100)}%`;

/** Local date and time, to the second. */
export function when(iso: string | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** The pipeline's stages in order, as the events stream names them. */
export const STAGES: readonly string[] = ['STAGE_INGEST', ...PIPELINE.map((s) => `STAGE_${Stage[s.stage]}`)];
