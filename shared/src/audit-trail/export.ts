// Audit records as JSON lines or CSV, for exportRecords. JSON lines keep every hashed field and
// the chain fields losslessly (structured fields as JSON, times as ISO 8601, scores as stored), so
// an export can be re-hashed elsewhere. CSV is for people and spreadsheets: cells are quoted per
// RFC 4180, and a text cell that a spreadsheet would evaluate as a formula (OWASP's CSV injection:
// a first character of = + - @ tab or carriage return, e.g. a source name "=HYPERLINK(...)") gets
// a leading single quote and is quoted, so it shows as text. Only those cells differ from the
// stored value; re-hash from JSON lines, or drop that one quote first.
import { InvalidInputError } from '../index.ts';
import { ErrorCode } from '../gen/tampertrace/v1/common_pb.ts';
import type { AuditRow } from './row.ts';

export type ExportFormat = 'jsonl' | 'csv';

/** CSV columns, in order: AuditRow field names. */
export const CSV_COLUMNS = [
  'sequence', 'eventId', 'tenantId', 'analysisId', 'contentSha256', 'stage', 'status', 'verdict', 'maxForgeryScore', 'models',
  'faces', 'regions', 'explanationText', 'explanationFacts', 'errorCode', 'errorMessage', 'sourceName', 'traceId', 'submittedBy',
  'eventTime', 'recordedTime', 'prevHash', 'recordHash', 'hashVersion',
] as const satisfies ReadonlyArray<keyof AuditRow>;

/** First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection). */
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * One CSV cell. Numbers are written as they are (a negative number is a value, not a formula);
 * text and JSON that start like a formula get the quote prefix and are always quoted.
 */
export function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  const s = v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (FORMULA_START.test(s)) return `"'${s.replaceAll('"', '""')}"`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function exportFormatter(format: ExportFormat): { header?: string; line: (r: AuditRow) => string } {
  if (format === 'jsonl') return { line: (r) => `${JSON.stringify(r)}\n` };
  if (format === 'csv') {
    return {
      header: `${CSV_COLUMNS.join(',')}\r\n`,
      line: (r) => `${CSV_COLUMNS.map((c) => csvCell(r[c])).join(',')}\r\n`,
    };
  }
  throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, `unknown export format "${String(format)}" (jsonl or csv)`);
}
