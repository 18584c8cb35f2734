// Audit records for tests: the same shape for the PGlite and the PostgreSQL suites.
import type { AuditRecordInput } from './store.ts';

export function auditRecord(i: number, tenantId = 't1'): AuditRecordInput {
  return {
    eventId: `${tenantId}:a${i}:stage`,
    tenantId,
    analysisId: `a${i}`,
    contentSha256: 'cd'.repeat(32),
    stage: 'EXPLANATION',
    status: 'COMPLETED',
    verdict: 'LIKELY_FORGED',
    maxForgeryScore: 0.1 * i,
    models: [{ name: 'm', version: '1' }],
    faces: [{ box: { x: 1, y: 2, width: 3, height: 4 } }],
    regions: ['nose', 'mouth'],
    explanationText: `record ${i}`,
    explanationFacts: [{ fact: 'f', value: i }],
    sourceName: 'upload.jpg',
    eventTime: new Date(1_700_000_000_000 + i),
  };
}
