// Audit records as JSON lines or CSV, for exportRecords. Both keep every hashed field and the
// chain fields, lossless (structured fields as JSON, times as ISO 8601, scores as stored), so an
// export can be re-hashed elsewhere. CSV cells are quoted per RFC 4180 and not otherwise altered:
// a spreadsheet that evaluates cells starting with "=" must be told not to.
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

function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  const s = v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v);
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
