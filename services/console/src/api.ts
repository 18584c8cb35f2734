// A typed client for the ingest service's HTTP/JSON API (services/ingest/src/http.ts), with the
// same API key as every other client: `authorization: Bearer <key>`. The types are the proto3
// JSON forms of protos/tampertrace/v1 (only the fields the console reads; enums as names).

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}
export interface Point {
  x: number;
  y: number;
}
export interface ModelRef {
  name: string;
  version: string;
  sha256: string;
}
export interface RegionScore {
  name: string;
  score: number;
  coverage: number;
  cues?: { noiseLogRatio?: number; colourDelta?: number; boundaryStrength?: number };
  /** The region's shape as scored, image pixels; absent on analyses stored before regions came from landmarks. */
  polygons?: Polygon[];
}
/** proto3 JSON drops zero and false: a missing x, y or hole is 0 or false. */
export interface Polygon {
  points: Partial<Point>[];
  hole?: boolean;
}
export interface Face {
  index: number;
  box?: Box;
  detectionScore: number;
  keypoints: Point[];
  forgeryScore: number;
  regions: RegionScore[];
  maskedFraction: number;
  /** MANIPULATION_TYPE_* with its probability, most probable first; absent without a type output. */
  manipulations?: { type: string; probability?: number }[];
  /** FACE_QUALITY_*; absent on older analyses. */
  quality?: string;
}
export interface Fact {
  faceIndex: number;
  region: string;
  cue: string;
  value: number;
  unit: string;
  statement: string;
}
/** An earlier analysis of the same picture (Provenance.related). */
export interface RelatedAnalysis {
  analysisId: string;
  hammingDistance: number;
  mirrored: boolean;
  /** ANALYSIS_STATUS_* then */
  status: string;
  /** VERDICT_* then */
  verdict: string;
  maxForgeryScore: number;
  submittedAt?: string;
  sourceName: string;
}
export interface Provenance {
  perceptualHash: string;
  related: RelatedAnalysis[];
  editingSoftware: string[];
  c2paManifestPresent: boolean;
}
export interface Analysis {
  analysisId: string;
  tenantId: string;
  contentSha256: string;
  /** ANALYSIS_STATUS_* */
  status: string;
  /** VERDICT_* */
  verdict: string;
  image?: { format: string; width: number; height: number; sizeBytes: string };
  faces: Face[];
  explanation?: { text: string; facts: Fact[]; editKinds?: { faceIndex?: number; type: string; probability?: number; statement?: string }[]; generator?: ModelRef; fallbackReason?: string };
  error?: { code: string; message: string; stage: string };
  models: ModelRef[];
  artifacts?: Record<'original' | 'mask' | 'heatmap' | 'overlay', { key: string; sizeBytes: string; contentType: string } | undefined>;
  submittedAt?: string;
  completedAt?: string;
  timings: Array<{ stage: string; durationMs: number }>;
  sourceName: string;
  maxForgeryScore: number;
  provenance?: Provenance;
}
export interface AuditRecord {
  eventId: string;
  analysisId: string;
  stage: string;
  status: string;
  verdict: string;
  models?: ModelRef[];
  maxForgeryScore?: number;
  error?: { code: string; message: string };
  eventTime: string;
  recordedTime?: string;
  sequence: string;
  submittedBy?: string;
  prevHash: string;
  recordHash: string;
  regions?: string[];
}
export interface VerifyResult {
  ok: boolean;
  count: string;
  failedSequence: string;
  reason: string;
}
export interface Accepted {
  analysisId: string;
  contentSha256: string;
  deduplicated: boolean;
}
export interface ListFilter {
  status?: string;
  verdict?: string;
  minForgeryScore?: number;
  pageSize?: number;
  pageToken?: string;
}
export type ArtifactName = 'original' | 'mask' | 'heatmap' | 'overlay';

/** An answer other than 2xx, with the API's error code (ERROR_CODE_*) when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** A refused image still has its REJECTED analysis. */
    readonly analysisId?: string,
  ) {
    super(message);
  }
}

const KEY = 'tampertrace.apiKey';

export const apiKey = {
  get: (): string => sessionStorage.getItem(KEY) ?? '',
  set: (k: string) => sessionStorage.setItem(KEY, k.trim()),
  clear: () => sessionStorage.removeItem(KEY),
};

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = apiKey.get();
  if (key) headers.set('authorization', `Bearer ${key}`);
  const res = await fetch(path, { ...init, headers });
  if (res.ok) return res;
  let body: { error?: { code?: string; message?: string }; analysisId?: string } = {};
  try {
    body = await res.json();
  } catch {
    // Not JSON: the status says enough.
  }
  throw new ApiError(res.status, body.error?.code ?? `HTTP_${res.status}`, body.error?.message ?? res.statusText, body.analysisId);
}

const json = async <T>(path: string, init?: RequestInit): Promise<T> => (await call(path, init)).json() as Promise<T>;
const enc = encodeURIComponent;

export const api = {
  submitFile: (file: File, reanalyze: boolean) =>
    json<Accepted>(`/v1/analyses${reanalyze ? '?reanalyze=true' : ''}`, {
      method: 'POST',
      body: file,
      // Header values must be Latin-1; the name is informational, so others are dropped.
      headers: { 'content-type': 'application/octet-stream', 'x-source-name': /^[\x20-\x7e]*$/.test(file.name) ? file.name : '' },
    }),
  submitUrl: (url: string, reanalyze: boolean) =>
    json<Accepted>('/v1/analyses', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url, sourceName: url, reanalyze }) }),
  get: (id: string) => json<Analysis>(`/v1/analyses/${enc(id)}`),
  list: (f: ListFilter) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v !== undefined && v !== '' && v !== 0) q.set(k, String(v));
    return json<{ analyses?: Analysis[]; nextPageToken?: string }>(`/v1/analyses?${q}`);
  },
  artifact: async (id: string, name: ArtifactName): Promise<Blob> => (await call(`/v1/analyses/${enc(id)}/${name}`)).blob(),
  trail: (id: string) => json<{ records?: AuditRecord[] }>(`/v1/audit/trail?analysisId=${enc(id)}`),
  verify: (fromSequence: string, toSequence: string) => json<VerifyResult>(`/v1/audit/verify?fromSequence=${enc(fromSequence)}&toSequence=${enc(toSequence)}`),

  /**
   * WatchAnalysis as server-sent events. EventSource cannot send the key, so the stream is read
   * with fetch; resolves with the final analysis (or when `signal` aborts).
   */
  async watch(id: string, onStep: (stage: string, a: Analysis) => void, signal?: AbortSignal): Promise<Analysis | undefined> {
    const res = await call(`/v1/analyses/${enc(id)}/events`, { signal, headers: { accept: 'text/event-stream' } });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let last: Analysis | undefined;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return last;
      buf += value;
      for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
        const event = parseEvent(buf.slice(0, end));
        buf = buf.slice(end + 2);
        if (!event) continue;
        const step = JSON.parse(event.data) as { stage: string; analysis: Analysis };
        last = step.analysis;
        onStep(step.stage, step.analysis);
      }
    }
  },
};

/** One server-sent event block ("event: x\ndata: y"), or undefined for comments. */
export function parseEvent(block: string): { event: string; data: string } | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  return data.length ? { event, data: data.join('\n') } : undefined;
}
