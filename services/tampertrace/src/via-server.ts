// The audit commands through the API of the server that holds the data folder (`serve`, whose
// lock names its address; data-lock.ts), with the same output as reading the folder directly:
// records come from ExportRecords' JSON lines, which are the stored rows exactly as the direct
// path prints them; GetTrail and QueryRecords say which records, in which order, and the page token.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { create, type DescService } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { grpc, serviceClient, unary } from '@tampertrace/shared';
import { AnalysisStatus, ErrorCode, Stage, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import {
  AuditFilterSchema,
  ExportFormat,
  ExportRecordsRequestSchema,
  GetTrailRequestSchema,
  ListCheckpointsRequestSchema,
  QueryRecordsRequestSchema,
  VerifyChainRequestSchema,
  type AuditFilter as AuditFilterMsg,
  type AuditRecord,
  type ExportRecordsResponse,
  type GetTrailResponse,
  type ListCheckpointsResponse,
  type QueryRecordsResponse,
  type VerifyChainResponse,
} from '@tampertrace/shared/gen/tampertrace/v1/audit_pb';
import type { AuditCheckpoint, AuditFilter } from '@tampertrace/shared/audit-trail/store';
import { checkpointMsg } from '@tampertrace/shared/audit-trail/grpc';
import type { LockHolder } from './data-lock.ts';

/** The audit subcommands the API can answer; checkpoint and prune are operator-only, on the folder itself. */
export const AUDIT_VIA_SERVER = new Set(['trail', 'query', 'export', 'verify', 'checkpoints']);

/** The key of the folder's tenant, as `serve` keeps it in $TAMPERTRACE_HOME/api-key (or TAMPERTRACE_API_KEY). */
export async function folderApiKey(home: string): Promise<string | undefined> {
  return (await readFile(path.join(home, 'api-key'), 'utf8').then((k) => k.trim(), () => undefined)) || process.env.TAMPERTRACE_API_KEY || undefined;
}

/** A client of `service` on the holding server, with the folder's key. */
export async function holderClient(holder: LockHolder, home: string, service: DescService): Promise<grpc.Client> {
  return serviceClient(service, holder.grpc!, { 'grpc.max_receive_message_length': -1, apiKey: await folderApiKey(home) });
}

/** The API's filter for the CLI's (enum names as the table keeps them). */
function filterMsg(f: AuditFilter): AuditFilterMsg {
  const num = <E extends Record<string, string | number>>(e: E, name: string | undefined) => (name === undefined ? 0 : (e[name] as number));
  return create(AuditFilterSchema, {
    fromTime: f.from ? timestampFromDate(f.from) : undefined,
    toTime: f.to ? timestampFromDate(f.to) : undefined,
    status: num(AnalysisStatus, f.status),
    verdict: num(Verdict, f.verdict),
    stage: num(Stage, f.stage),
    errorCode: num(ErrorCode, f.errorCode),
    minForgeryScore: f.minForgeryScore,
    modelVersion: f.modelVersion ?? '',
    region: f.region ?? '',
  });
}

/** ExportRecords' bytes as text chunks. */
async function* exportText(client: grpc.Client, filter: AuditFilter, format: 'jsonl' | 'csv'): AsyncGenerator<string> {
  const stream = (client as unknown as { exportRecords(req: unknown): AsyncIterable<ExportRecordsResponse> }).exportRecords(
    create(ExportRecordsRequestSchema, { filter: filterMsg(filter), format: format === 'csv' ? ExportFormat.CSV : ExportFormat.JSONL }),
  );
  const decoder = new TextDecoder();
  for await (const chunk of stream) yield decoder.decode(chunk.data, { stream: true });
  const rest = decoder.decode();
  if (rest) yield rest;
}

/**
 * The stored rows (JSON lines, exactly as exported) of `records`, in their order: one export of
 * the time window they span, narrowed by `filter`, picked by sequence.
 */
async function rowLines(client: grpc.Client, records: AuditRecord[], filter: AuditFilter): Promise<string[]> {
  if (records.length === 0) return [];
  const times = records.map((r) => timestampDate(r.eventTime!).getTime());
  const window: AuditFilter = { ...filter, from: new Date(Math.min(...times)), to: new Date(Math.max(...times) + 1) };
  const want = new Set(records.map((r) => Number(r.sequence)));
  const bySequence = new Map<number, string>();
  let buffered = '';
  for await (const text of exportText(client, window, 'jsonl')) {
    buffered += text;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      const seq = (JSON.parse(line) as { sequence: number }).sequence;
      if (want.has(seq)) bySequence.set(seq, line);
    }
  }
  return records.map((r) => {
    const line = bySequence.get(Number(r.sequence));
    if (line === undefined) throw new Error(`record ${r.sequence} is missing from the server's export`);
    return line;
  });
}

export interface AuditViaServerArgs {
  sub: string;
  key?: string;
  filter: () => AuditFilter;
  limit?: number;
  pageToken?: string;
  format: 'jsonl' | 'csv';
  fromSequence?: number;
  toSequence?: number;
  checkpoints?: AuditCheckpoint[];
  since?: number;
  tenantId: string;
  /** Writes to stdout, honouring back-pressure. */
  out: (s: string) => Promise<void>;
  err: (s: string) => void;
}

/** One audit subcommand (AUDIT_VIA_SERVER) through the server; returns the exit code as the direct path would. */
export async function auditViaServer(client: grpc.Client, a: AuditViaServerArgs): Promise<number> {
  if (a.sub === 'trail' && a.key) {
    const req = create(GetTrailRequestSchema, { key: /^[0-9a-f]{64}$/.test(a.key) ? { case: 'contentSha256', value: a.key } : { case: 'analysisId', value: a.key } });
    const { records } = await unary<GetTrailResponse>(client, 'getTrail', req);
    if (records.length === 0) {
      a.err(`no audit records for ${a.key}\n`);
      return 1;
    }
    for (const line of await rowLines(client, records, {})) await a.out(line + '\n');
    return 0;
  }
  if (a.sub === 'query') {
    const filter = a.filter();
    let left = a.limit ?? 100;
    let cursor = a.pageToken;
    while (left > 0) {
      const page = await unary<QueryRecordsResponse>(client, 'queryRecords', create(QueryRecordsRequestSchema, { filter: filterMsg(filter), pageSize: Math.min(left, 1000), pageToken: cursor ?? '' }));
      for (const line of await rowLines(client, page.records, filter)) await a.out(line + '\n');
      left -= page.records.length;
      cursor = page.nextPageToken || undefined;
      if (!cursor) break;
    }
    if (cursor) a.err(`more records follow: --page-token ${cursor}\n`);
    return 0;
  }
  if (a.sub === 'export') {
    for await (const text of exportText(client, a.filter(), a.format)) await a.out(text);
    return 0;
  }
  if (a.sub === 'verify') {
    const v = await unary<VerifyChainResponse>(
      client,
      'verifyChain',
      create(VerifyChainRequestSchema, { fromSequence: BigInt(a.fromSequence ?? 0), toSequence: BigInt(a.toSequence ?? 0), checkpoints: (a.checkpoints ?? []).map(checkpointMsg) }),
    );
    if (v.ok) {
      await a.out(`OK: ${v.count} records verify for tenant ${a.tenantId}\n`);
      return 0;
    }
    await a.out(`FAILED at record ${v.failedSequence}: ${v.reason}\n`);
    return 1;
  }
  if (a.sub === 'checkpoints') {
    const { checkpoints } = await unary<ListCheckpointsResponse>(client, 'listCheckpoints', create(ListCheckpointsRequestSchema, { since: BigInt(a.since ?? 0) }));
    for (const c of checkpoints) {
      const cp: AuditCheckpoint = {
        tenantId: c.tenantId,
        checkpointSequence: Number(c.checkpointSequence),
        recordSequence: Number(c.recordSequence),
        headHash: c.headHash,
        createdTime: timestampDate(c.createdTime!).toISOString(),
        prevCheckpointHash: c.prevCheckpointHash,
        checkpointHash: c.checkpointHash,
      };
      await a.out(JSON.stringify(cp) + '\n');
    }
    return 0;
  }
  throw new Error(`audit ${a.sub} cannot go through the server`);
}
