// What the benchmarks that go through the public gRPC API share.
import { create } from '@bufbuild/protobuf';
import { grpc } from '@tampertrace/shared';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { WatchAnalysisRequestSchema, type WatchAnalysisResponse } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';

/** Deadline of every call a benchmark makes: long, since a backlog may stand before it. */
export const CALL_DEADLINE_MS = 600_000;

/** The final Analysis, from WatchAnalysis (its last step). */
export async function finalAnalysis(client: grpc.Client, analysisId: string): Promise<Analysis> {
  const c = client as unknown as { watchAnalysis(req: unknown, md: grpc.Metadata, opts: grpc.CallOptions): AsyncIterable<WatchAnalysisResponse> };
  let last: Analysis | undefined;
  for await (const step of c.watchAnalysis(create(WatchAnalysisRequestSchema, { analysisId }), new grpc.Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS })) last = step.analysis;
  if (!last || last.status === AnalysisStatus.PENDING) throw new Error(`WatchAnalysis of ${analysisId} ended without a final state`);
  return last;
}
