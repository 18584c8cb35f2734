// `tampertrace`: analyse files in embedded mode, serve the embedded pipeline, read the audit trail.
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, InMemoryBus, InvalidInputError, REPO_ROOT, Readiness, Semaphore, TamperTraceError, createLogger, grpc, loadConfig, codeName, requireDistributed, SERVICES, serviceClient, startOpsServer, unary, KafkaBus, allTopics, withPrefix } from '@tampertrace/shared';
import { setLagSource } from '@tampertrace/shared/metrics';
import { AnalysisStatus, ErrorCode, ErrorInfoSchema, Stage, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AuditService } from '@tampertrace/shared/gen/tampertrace/v1/audit_pb';
import {
  ArtifactKind,
  GetAnalysisRequestSchema,
  GetArtifactRequestSchema,
  IngestService,
  SubmitRequestSchema,
  WatchAnalysisRequestSchema,
  type GetAnalysisResponse,
  type GetArtifactResponse,
  type SubmitRequest,
  type SubmitResponse,
  type WatchAnalysisResponse,
} from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { serveIngest } from '@tampertrace/ingest/service';
import { CONSOLE_DIST } from '@tampertrace/ingest/console-assets';
import { startEmbedded } from './embedded.ts';
import { analysisJson, outputNames, writeOutputs } from './outputs.ts';
import { DataFolderBusy, acquireOrWait, describeHolder, type DataLock, type LockHolder } from './data-lock.ts';
import { AUDIT_VIA_SERVER, auditViaServer, folderApiKey, holderClient } from './via-server.ts';

/** Exit codes; `busy`: the data folder is held by another process and the command cannot go through it. */
export const EXIT = { ok: 0, failure: 1, rejected: 2, busy: 3 } as const;

const USAGE = `Usage:
  tampertrace analyze [--out DIR] [--concurrency N] PATH...   analyse image files and folders (embedded mode)
                                                               (in folders: the files named like images)
  tampertrace serve [--port N] [--grpc-port N]                 run the embedded pipeline with its gRPC API and HTTP endpoint
  tampertrace audit trail <analysis-id|sha256>                 print the audit records of an analysis or content
  tampertrace audit query [--from ISO] [--to ISO] [--status S] [--verdict V] [--min-score X]
                    [--model-version V] [--region R] [--stage S] [--error-code C] [--limit N] [--page-token T]
                                                               matching records, newest first, as JSON lines
  tampertrace audit export [FILTERS] [--format jsonl|csv]      every matching record to stdout (JSON lines are lossless;
                                                               CSV cells starting with = + - @ tab CR get a leading ')
  tampertrace audit verify [--from N] [--to N] [--checkpoints FILE]
                                                               check the tenant's audit hash chain (exit 1 if broken)
  tampertrace audit checkpoints [--since N]                    the tenant's chain checkpoints, to keep elsewhere
  tampertrace audit checkpoint | prune --before N              operator: checkpoint the chain head; delete records
                                                               up to checkpoint N (after verifying them)
                                                               audit commands read the database directly (embedded,
                                                               or TAMPERTRACE_DATABASE_URL) for --tenant or TAMPERTRACE_TENANT
  tampertrace service <ingest|face-detection|forgery-localization|explanation-generation|audit>
                                                               run one service on Kafka, S3 and PostgreSQL
  tampertrace topics create                                    create every topic and dead-letter topic on TAMPERTRACE_KAFKA_BROKERS
                                                               with TAMPERTRACE_TOPIC_PARTITIONS and _REPLICATION (existing ones are kept)
  tampertrace submit [--server HOST:PORT] [--api-key KEY] [--out DIR] [--reanalyze] PATH...
                                                               send files to a running ingest service (gRPC,
                                                               default 127.0.0.1:50051) and write the results
  tampertrace get|watch [--server HOST:PORT] [--api-key KEY] <analysis-id>
                                                               print an analysis, or follow it stage by stage
  tampertrace tenant create NAME [--webhook URL] [--rate N] [--burst N] [--max-in-flight N]
  tampertrace tenant list | key add TENANT | key revoke KEY-ID  manage tenants and API keys (prints a new key once)

API commands take the key from --api-key, TAMPERTRACE_API_KEY, or $TAMPERTRACE_HOME/api-key.

One process at a time uses a data folder ($TAMPERTRACE_HOME/lock names it). While \`serve\` holds it,
analyze and audit trail|query|export|verify|checkpoints go through that server's API, with the same
output; other commands wait for a finite command to finish, and stop (exit 3) where a server holds it.

Exit codes: 0 all analysed, 2 some inputs rejected, 1 system failure, 3 data folder in use (see above).
Configuration comes from TAMPERTRACE_* environment variables (see README).`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'analyze':
        return await analyze(rest);
      case 'serve':
        return await serve(rest);
      case 'audit':
        return await auditCmd(rest);
      case 'service':
        return await service(rest);
      case 'topics':
        return await topicsCmd(rest);
      case 'submit':
        return await submitCmd(rest);
      case 'get':
      case 'watch':
        return await getOrWatch(cmd, rest);
      case 'tenant':
      case 'key':
        return await tenantCmd(cmd, rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE + '\n');
        return cmd === undefined ? EXIT.failure : EXIT.ok;
      default:
        process.stderr.write(`unknown command "${cmd}"\n${USAGE}\n`);
        return EXIT.failure;
    }
  } catch (err) {
    const status = (err as grpc.ServiceError)?.code;
    if (err instanceof ConfigError) process.stderr.write(`configuration error: ${err.message}\n`);
    else if (typeof status === 'number' && 'details' in (err as object)) {
      const reason = (err as grpc.ServiceError).metadata?.get('tt-error-code')[0];
      process.stderr.write(`tampertrace: ${grpc.status[status]}${reason ? ` (${reason})` : ''}: ${(err as grpc.ServiceError).details}\n`);
    }
    // A refused argument or filter: its reason is the whole message.
    else if (err instanceof TamperTraceError && err.errorClass !== 'internal') process.stderr.write(`tampertrace: ${codeName(err.code)}: ${err.message}\n`);
    else process.stderr.write(`tampertrace: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.failure;
  }
}

/** File name endings of the formats the pipeline accepts (ACCEPTED_FORMATS: JPEG, PNG, WebP, GIF). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.webp', '.gif'];

/**
 * The files to analyse under the given paths, order stable. A file named on the command line is
 * always taken (its content decides: a text file named on purpose is REJECTED like any bad
 * input). Folders are walked recursively, hidden entries skipped, and only files whose name ends
 * like an image are taken: a folder of photos often holds a README or LICENSE, which is not an
 * input. Those left out are added to `skipped`.
 */
export async function expandInputs(paths: string[], skipped: string[] = [], inFolder = false): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const s = await stat(p).catch(() => undefined);
    if (!s) throw new Error(`no such file or folder: ${p}`);
    if (s.isDirectory()) {
      const entries = (await readdir(p)).filter((n) => !n.startsWith('.')).sort();
      out.push(...(await expandInputs(entries.map((n) => path.join(p, n)), skipped, true)));
    } else if (s.isFile()) {
      if (!inFolder || IMAGE_EXTENSIONS.includes(path.extname(p).toLowerCase())) out.push(p);
      else skipped.push(p);
    }
  }
  return out;
}

/** expandInputs with a note on stderr about what the folders held besides images; undefined when nothing is left. */
async function inputFiles(positionals: string[]): Promise<string[] | undefined> {
  const skipped: string[] = [];
  const files = await expandInputs(positionals, skipped);
  if (skipped.length) {
    const names = skipped.slice(0, 5).join(', ') + (skipped.length > 5 ? `, ... (${skipped.length - 5} more)` : '');
    process.stderr.write(`tampertrace: skipped ${skipped.length} file${skipped.length > 1 ? 's' : ''} in folders not named like an image (${IMAGE_EXTENSIONS.join(' ')}): ${names}; name a file to analyse it anyway\n`);
  }
  if (files.length === 0) {
    process.stderr.write(`tampertrace: no image files in ${positionals.join(' ')}\n`);
    return undefined;
  }
  return files;
}

async function analyze(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { out: { type: 'string', default: 'tampertrace-out' }, concurrency: { type: 'string', default: '4' } },
  });
  if (positionals.length === 0) {
    process.stderr.write(`analyze needs at least one PATH\n${USAGE}\n`);
    return EXIT.failure;
  }
  const cfg = loadConfig();
  const log = createLogger('tampertrace', process.env.TAMPERTRACE_LOG_LEVEL ?? 'warn');
  const files = await inputFiles(positionals);
  if (!files) return EXIT.failure;
  let lock: DataLock;
  try {
    lock = await folderLock(cfg.TAMPERTRACE_HOME, 'command');
  } catch (err) {
    if (!(err instanceof DataFolderBusy)) throw err;
    // A server holds the folder: analyse through it (same outputs), never beside it. Reanalyze,
    // as analyze does in-process: every run analyses its inputs anew.
    if (!(await folderApiKey(cfg.TAMPERTRACE_HOME))) return busy(err, `and its key (${path.join(cfg.TAMPERTRACE_HOME, 'api-key')}) is not readable`);
    process.stderr.write(`tampertrace: ${err.message}: analysing through it\n`);
    const client = await holderClient(err.holder, cfg.TAMPERTRACE_HOME, IngestService);
    try {
      await mkdir(values.out!, { recursive: true });
      return await runBatch(files, values.out!, Number(values.concurrency), submitOne(client, values.out!, true));
    } finally {
      client.close();
    }
  }
  const embedded = await startEmbedded(cfg, log, { lock });
  try {
    return await runBatch(files, values.out!, Number(values.concurrency), async (file, name) => {
      const a = await embedded.analyzeFile(file, path.basename(file));
      await writeOutputs(embedded.store, a, values.out!, name, embedded.overlay);
      return a;
    });
  } finally {
    await embedded.close();
  }
}

/**
 * The part `analyze` and `submit` share: a bounded number of inputs in flight, progress, the
 * summary table and the exit code. `one` analyses a file and writes its output files.
 */
async function runBatch(files: string[], outDir: string, concurrency: number, one: (file: string, name: string) => Promise<Analysis>): Promise<number> {
  const names = outputNames(files);
  const progress = new Progress(files.length);
  const results: Analysis[] = new Array(files.length);
  const inFlight = new Semaphore(Math.max(1, concurrency || 4));
  try {
    await Promise.all(
      files.map(async (file, i) => {
        await inFlight.acquire();
        try {
          results[i] = await one(file, names[i]);
          progress.tick(file, results[i]);
        } finally {
          inFlight.release();
        }
      }),
    );
  } finally {
    progress.done();
  }
  process.stdout.write(summaryTable(files, results) + '\n');
  process.stdout.write(`Results written to ${path.resolve(outDir)}\n`);
  if (results.some((a) => a.status === AnalysisStatus.FAILED)) return EXIT.failure;
  if (results.some((a) => a.status === AnalysisStatus.REJECTED)) return EXIT.rejected;
  return EXIT.ok;
}

/** The data folder's lock, waiting while a finite command (or a server still starting) holds it. */
function folderLock(home: string, role: LockHolder['role']): Promise<DataLock> {
  return acquireOrWait(home, role, (h) =>
    process.stderr.write(`tampertrace: waiting for ${describeHolder(h)} ${h.role === 'server' ? 'to listen' : `to finish with ${home}`}\n`),
  );
}

/** A command that cannot go through the server holding the folder: say why, exit 3. */
function busy(err: DataFolderBusy, why: string): number {
  process.stderr.write(`tampertrace: ${err.message}, ${why}\n`);
  return EXIT.busy;
}

/** Options every API command takes: where the ingest service is, and the caller's key. */
const API_OPTIONS = {
  server: { type: 'string', default: '127.0.0.1:50051' },
  'api-key': { type: 'string' },
} as const;

/** --api-key, else TAMPERTRACE_API_KEY, else the key `make run` keeps in $TAMPERTRACE_HOME/api-key. */
async function apiClient(values: { server?: string; 'api-key'?: string }): Promise<grpc.Client> {
  let apiKey = values['api-key'] ?? process.env.TAMPERTRACE_API_KEY;
  if (!apiKey) apiKey = await readFile(path.join(loadConfig().TAMPERTRACE_HOME, 'api-key'), 'utf8').then((k) => k.trim(), () => undefined);
  return serviceClient(IngestService, values.server!.replace(/^[a-z]+:\/\//, ''), { 'grpc.max_receive_message_length': -1, apiKey });
}

const watchStream = (client: grpc.Client, analysisId: string) =>
  (client as unknown as { watchAnalysis(req: unknown): AsyncIterable<WatchAnalysisResponse> }).watchAnalysis(create(WatchAnalysisRequestSchema, { analysisId }));

/** Submit, waiting out quota refusals for as long as the server's hint says. */
async function submitWithRetry(client: grpc.Client, req: SubmitRequest): Promise<SubmitResponse> {
  for (;;) {
    try {
      return await unary<SubmitResponse>(client, 'submit', req);
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (e.code !== grpc.status.RESOURCE_EXHAUSTED || e.metadata?.get('tt-error-code')[0] !== 'QUOTA_EXCEEDED') throw err;
      await new Promise((r) => setTimeout(r, Number(e.metadata.get('retry-after-ms')[0] ?? 1000)));
    }
  }
}

/**
 * Sends files to a running ingest service over gRPC (`make up`, or `make run`) and writes the
 * same files as `analyze`: Submit, WatchAnalysis until the final state, GetArtifact for the PNGs.
 */
async function submitCmd(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...API_OPTIONS,
      out: { type: 'string', default: 'tampertrace-out' },
      concurrency: { type: 'string', default: '4' },
      reanalyze: { type: 'boolean', default: false },
    },
  });
  if (positionals.length === 0) {
    process.stderr.write(`submit needs at least one PATH\n${USAGE}\n`);
    return EXIT.failure;
  }
  const files = await inputFiles(positionals);
  if (!files) return EXIT.failure;
  const out = values.out!;
  await mkdir(out, { recursive: true });
  const client = await apiClient(values);
  try {
    return await runBatch(files, out, Number(values.concurrency), submitOne(client, out, values.reanalyze!));
  } finally {
    client.close();
  }
}

/**
 * Submit one file through the API, WatchAnalysis until its final state, write its files (as
 * `analyze` does): the part of runBatch that `submit`, and `analyze` through a server, share.
 */
function submitOne(client: grpc.Client, out: string, reanalyze: boolean): (file: string, name: string) => Promise<Analysis> {
  return async (file, name) => {
    const sourceName = path.basename(file);
    let analysisId: string;
    try {
      const content = await readFile(file);
      analysisId = (await submitWithRetry(client, create(SubmitRequestSchema, { source: { case: 'content', value: content }, sourceName, reanalyze }))).analysisId;
    } catch (err) {
      const e = err as grpc.ServiceError;
      // A refused image still has its REJECTED analysis; it is written like any other result.
      const rejectedId = e.metadata?.get('tt-analysis-id')[0];
      if (typeof rejectedId === 'string') analysisId = rejectedId;
      // The server refuses an over-limit message before reading it; that is this input's
      // rejection, said by the server, not a system failure.
      else if (e.code !== grpc.status.RESOURCE_EXHAUSTED) throw err;
      else {
        const a = create(AnalysisSchema, { status: AnalysisStatus.REJECTED, sourceName, error: create(ErrorInfoSchema, { code: ErrorCode.TOO_LARGE, stage: Stage.INGEST, message: (err as grpc.ServiceError).details }) });
        await writeFile(path.join(out, `${name}.json`), JSON.stringify(analysisJson(a), null, 2) + '\n');
        return a;
      }
    }
    let a: Analysis | undefined;
    for await (const step of watchStream(client, analysisId)) a = step.analysis;
    if (!a || a.status === AnalysisStatus.PENDING) throw new Error(`${file}: the watch of ${analysisId} ended before its final state`);
    await writeFile(path.join(out, `${name}.json`), JSON.stringify(analysisJson(a), null, 2) + '\n');
    if (a.artifacts?.mask?.key) {
      for (const [kind, suffix] of [
        [ArtifactKind.MASK, 'mask'],
        [ArtifactKind.OVERLAY, 'overlay'],
      ] as const) {
        const art = await unary<GetArtifactResponse>(client, 'getArtifact', create(GetArtifactRequestSchema, { analysisId: a.analysisId, kind }));
        await writeFile(path.join(out, `${name}.${suffix}.png`), art.content);
      }
    }
    return a;
  };
}

/** `get ID` prints the analysis as it stands; `watch ID` prints one line per finished stage. */
async function getOrWatch(cmd: 'get' | 'watch', args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: API_OPTIONS });
  const [id] = positionals;
  if (!id) {
    process.stderr.write(`${cmd} needs an analysis id\n${USAGE}\n`);
    return EXIT.failure;
  }
  const client = await apiClient(values);
  try {
    if (cmd === 'get') {
      const a = (await unary<GetAnalysisResponse>(client, 'getAnalysis', create(GetAnalysisRequestSchema, { analysisId: id }))).analysis!;
      process.stdout.write(JSON.stringify(analysisJson(a), null, 2) + '\n');
      return a.status === AnalysisStatus.FAILED ? EXIT.failure : a.status === AnalysisStatus.REJECTED ? EXIT.rejected : EXIT.ok;
    }
    let last: Analysis | undefined;
    for await (const step of watchStream(client, id)) {
      last = step.analysis;
      process.stdout.write(JSON.stringify({ stage: Stage[step.stage!], status: AnalysisStatus[last!.status], ...(last!.status !== AnalysisStatus.PENDING ? { analysis: analysisJson(last!) } : {}) }) + '\n');
    }
    return last?.status === AnalysisStatus.FAILED ? EXIT.failure : last?.status === AnalysisStatus.REJECTED ? EXIT.rejected : EXIT.ok;
  } finally {
    client.close();
  }
}

/**
 * Tenant administration, directly on the database (PostgreSQL when TAMPERTRACE_DATABASE_URL is
 * set, else the embedded one under $TAMPERTRACE_HOME): keys are shown once, here.
 */
async function tenantCmd(cmd: 'tenant' | 'key', args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { webhook: { type: 'string' }, rate: { type: 'string' }, burst: { type: 'string' }, 'max-in-flight': { type: 'string' } },
  });
  const [sub, name] = positionals;
  const cfg = loadConfig();
  const { AnalysesStore } = await import('@tampertrace/ingest/analyses');
  const { TenantStore } = await import('@tampertrace/ingest/tenants');
  const distributed = Boolean(cfg.TAMPERTRACE_DATABASE_URL);
  let lock: DataLock | undefined;
  if (!distributed) {
    try {
      lock = await folderLock(cfg.TAMPERTRACE_HOME, 'command');
    } catch (err) {
      if (!(err instanceof DataFolderBusy)) throw err;
      return busy(err, `and \`${cmd} ${sub ?? ''}\` changes the folder's database outside the API: stop that server first`);
    }
  }
  const sql = distributed
    ? await (await import('@tampertrace/shared/pg')).openPostgres(cfg.TAMPERTRACE_DATABASE_URL)
    : await (await import('@tampertrace/shared/pglite')).openPglite(path.join(cfg.TAMPERTRACE_HOME, 'db')).catch(async (err: unknown) => {
        await lock?.release();
        throw err;
      });
  try {
    await new AnalysesStore(sql).migrate();
    if (distributed) requireDistributed(cfg, { pepper: true });
    const { localPepper } = await import('./local-secrets.ts');
    const tenants = new TenantStore(sql, cfg.TAMPERTRACE_API_KEY_PEPPER || (await localPepper(cfg.TAMPERTRACE_HOME)));
    const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
    if (cmd === 'tenant' && sub === 'create' && name) {
      const { apiKey, keyId, tenant } = await tenants.create(name, { webhookUrl: values.webhook, ratePerS: num(values.rate), burst: num(values.burst), maxInFlight: num(values['max-in-flight']) });
      process.stdout.write(`tenant ${name} created\napi key (shown once): ${apiKey}\nkey id: ${keyId}\nwebhook signing secret: ${tenant.signingSecret.toString('base64url')}\n`);
      return EXIT.ok;
    }
    if (cmd === 'tenant' && sub === 'list') {
      for (const t of await tenants.list()) process.stdout.write(`${t.tenantId}\t${t.keys.map((k) => `${k.keyId}${k.revoked ? ' (revoked)' : ''}`).join(', ') || '-'}\n`);
      return EXIT.ok;
    }
    if (cmd === 'key' && sub === 'add' && name) {
      const { apiKey, keyId } = await tenants.addKey(name);
      process.stdout.write(`api key (shown once): ${apiKey}\nkey id: ${keyId}\n`);
      return EXIT.ok;
    }
    if (cmd === 'key' && sub === 'revoke' && name) {
      if (await tenants.revoke(name)) {
        process.stdout.write(`key ${name} revoked (every replica refuses it within 5 s)\n`);
        return EXIT.ok;
      }
      process.stderr.write(`no active key ${name}\n`);
      return EXIT.failure;
    }
    process.stderr.write(`${USAGE}\n`);
    return EXIT.failure;
  } finally {
    await sql.close();
    await lock?.release();
  }
}

const statusName = (a: Analysis) => AnalysisStatus[a.status];
const verdictName = (a: Analysis) => (a.verdict ? Verdict[a.verdict] : '-');

export function summaryTable(files: string[], results: Analysis[]): string {
  const rows = results.map((a, i) => [
    path.basename(files[i]),
    statusName(a),
    verdictName(a),
    String(a.faces.length),
    a.faces.length ? a.maxForgeryScore.toFixed(2) : '-',
    a.error
      ? `${codeName(a.error.code)}: ${a.error.message}`.slice(0, 70)
      : // The regions the explanation names, so the table never claims more than the text does.
        [...new Set(a.explanation?.facts.map((f) => f.region) ?? [])].slice(0, 4).join(', ') || '-',
  ]);
  const header = ['INPUT', 'STATUS', 'VERDICT', 'FACES', 'SCORE', 'REGIONS / ERROR'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((v, c) => v.padEnd(widths[c])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** One line per finished input on stderr; redrawn in place on a terminal. */
class Progress {
  private n = 0;
  private readonly tty = process.stderr.isTTY;
  private readonly started = Date.now();
  constructor(private readonly total: number) {}
  tick(file: string, a: Analysis): void {
    this.n++;
    if (this.total < 2) return;
    const rate = this.n / Math.max(0.001, (Date.now() - this.started) / 1000);
    const msg = `[${this.n}/${this.total}] ${rate.toFixed(1)} img/s  ${path.basename(file)}: ${statusName(a)}`;
    process.stderr.write(this.tty ? `\r\x1b[2K${msg}` : `${msg}\n`);
  }
  done(): void {
    if (this.tty && this.total >= 2) process.stderr.write('\n');
  }
}

/** The embedded pipeline with the ingest service's gRPC API and HTTP endpoint, until SIGINT/SIGTERM. */
async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { port: { type: 'string' }, 'grpc-port': { type: 'string' } } });
  const cfg = loadConfig({
    ...process.env,
    ...(values.port ? { TAMPERTRACE_HTTP_PORT: values.port } : {}),
    ...(values['grpc-port'] ? { TAMPERTRACE_GRPC_PORT: values['grpc-port'] } : {}),
  });
  const log = createLogger('tampertrace');
  let lock: DataLock;
  try {
    lock = await folderLock(cfg.TAMPERTRACE_HOME, 'server');
  } catch (err) {
    if (!(err instanceof DataFolderBusy)) throw err;
    return busy(err, 'and one server serves a data folder: use that one, or set TAMPERTRACE_HOME to another folder');
  }
  const embedded = await startEmbedded(cfg, log, { lock });
  const servers = await serveIngest(embedded.ingest, cfg);
  // Everything is in this process: ready once started. Metrics as the services export them.
  if (embedded.bus instanceof InMemoryBus) setLagSource(() => (embedded.bus as InMemoryBus).lagRows());
  const readiness = new Readiness([], servers.health, log);
  const ops = await startOpsServer(cfg, log, readiness);
  await readiness.started(cfg.TAMPERTRACE_READINESS_INTERVAL_MS);
  const url = `http://${cfg.TAMPERTRACE_HTTP_HOST}:${servers.httpPort}`;
  const grpcAddr = `${cfg.TAMPERTRACE_GRPC_HOST}:${servers.grpcPort}`;
  log.info({ url, grpc: grpcAddr }, 'serving');
  // Where analyze and the audit commands on this folder reach this server (data-lock.ts).
  const local = (host: string) => (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
  await lock.update({ grpc: `${local(cfg.TAMPERTRACE_GRPC_HOST)}:${servers.grpcPort}`, http: `http://${local(cfg.TAMPERTRACE_HTTP_HOST)}:${servers.httpPort}`, tenant: cfg.TAMPERTRACE_TENANT });
  const consoleBuilt = await stat(path.join(CONSOLE_DIST, 'index.html')).then(
    () => true,
    () => false,
  );
  process.stdout.write(
    `TamperTrace is running (embedded mode, data in ${cfg.TAMPERTRACE_HOME}).\n` +
      (embedded.apiKeyCreated ? `  New API key of tenant "${cfg.TAMPERTRACE_TENANT}" (shown once): ${embedded.apiKey}\n` : '') +
      `  The key is kept in ${path.join(cfg.TAMPERTRACE_HOME, 'api-key')} (owner-only); the CLI reads it from there.\n` +
      `  Review console:    ${url}/console/  (paste the key: cat ${path.join(cfg.TAMPERTRACE_HOME, 'api-key')})${consoleBuilt ? '' : ' (not built yet: run `make console`)'}\n` +
      `  Analyse files:     npx tampertrace submit --server ${grpcAddr} photo.jpg\n` +
      `  Or over HTTP:      curl -H "authorization: Bearer $(cat ${path.join(cfg.TAMPERTRACE_HOME, 'api-key')})" --data-binary @photo.jpg '${url}/v1/analyses?wait=true'\n` +
      `  Health:            ${url}/healthz\n` +
      `  Metrics:           http://${cfg.TAMPERTRACE_OPS_HOST}:${ops.port}/metrics\nPress Ctrl-C to stop.\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  readiness.stopping();
  await servers.stop();
  await embedded.close();
  await ops.close();
  return EXIT.ok;
}


/** Runs one service's entry point (services/<name>/src/main.ts) in this process until SIGTERM/SIGINT. */
async function service(args: string[]): Promise<number> {
  const [name] = args;
  if (!SERVICES.includes(name)) {
    process.stderr.write(`unknown service "${name ?? ''}"; one of: ${SERVICES.join(', ')}\n`);
    return EXIT.failure;
  }
  try {
    await import(path.join(REPO_ROOT, 'services', name, 'src', 'main.ts'));
  } catch (err) {
    // A service that cannot start must die, not linger half-connected (its Kafka and database
    // handles would keep the process alive): the supervisor restarts it.
    process.stderr.write(`${name} failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(EXIT.failure);
  }
  return EXIT.ok;
}

/**
 * `topics create`: what every service does at start (KafkaBus.provision of allTopics()), as a
 * step of its own for installers (the Helm chart's Job), with the configured replication factor.
 * Prints the topic names on the wire.
 */
async function topicsCmd(args: string[]): Promise<number> {
  if (args.length !== 1 || args[0] !== 'create') {
    process.stderr.write('usage: tampertrace topics create\n');
    return EXIT.failure;
  }
  const cfg = loadConfig();
  requireDistributed(cfg, { kafka: true });
  const bus = await KafkaBus.connect({
    brokers: cfg.TAMPERTRACE_KAFKA_BROKERS,
    clientId: 'tampertrace-topics',
    topicPrefix: cfg.TAMPERTRACE_TOPIC_PREFIX,
    partitions: cfg.TAMPERTRACE_TOPIC_PARTITIONS,
    replicationFactor: cfg.TAMPERTRACE_TOPIC_REPLICATION,
    log: createLogger('topics'),
  });
  try {
    await bus.provision(allTopics());
  } finally {
    await bus.close();
  }
  for (const t of allTopics()) process.stdout.write(`${withPrefix(cfg.TAMPERTRACE_TOPIC_PREFIX, t)}\n`);
  return EXIT.ok;
}

const AUDIT_OPTIONS = {
  tenant: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  status: { type: 'string' },
  verdict: { type: 'string' },
  'min-score': { type: 'string' },
  'model-version': { type: 'string' },
  region: { type: 'string' },
  stage: { type: 'string' },
  'error-code': { type: 'string' },
  limit: { type: 'string' },
  'page-token': { type: 'string' },
  format: { type: 'string' },
  checkpoints: { type: 'string' },
  since: { type: 'string' },
  before: { type: 'string' },
} as const;

const usageError = (message: string) => new InvalidInputError(ErrorCode.INVALID_MESSAGE, message);

/** A positive integer option, or undefined when absent. */
function positiveInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) throw usageError(`--${name} must be a positive integer, got "${v}"`);
  return Number(v);
}

/** An enum option by its name, with or without the prefix (REJECTED, ANALYSIS_STATUS_REJECTED), as the audit table keeps it. */
function enumName(e: Record<string, string | number>, prefix: string, v: string | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  const n = v.toUpperCase().replace(new RegExp(`^${prefix}`), '');
  if (typeof e[n] !== 'number' || e[n] === 0) {
    const names = Object.keys(e).filter((k) => Number.isNaN(Number(k)) && k !== 'UNSPECIFIED');
    throw usageError(`--${name} must be one of ${names.join(', ')}; got "${v}"`);
  }
  return n;
}

/** The audit filter of the query and export options. */
function auditFilter(values: Record<string, string | boolean | undefined>): import('@tampertrace/shared/audit-trail/store').AuditFilter {
  const str = (k: string) => values[k] as string | undefined;
  const time = (k: string) => {
    const v = str(k);
    if (v === undefined) return undefined;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw usageError(`--${k} must be an ISO 8601 time, got "${v}"`);
    return d;
  };
  const score = str('min-score');
  if (score !== undefined && !(Number(score) >= 0 && Number(score) <= 1)) throw usageError(`--min-score must be a number in [0, 1], got "${score}"`);
  return {
    from: time('from'),
    to: time('to'),
    status: enumName(AnalysisStatus, 'ANALYSIS_STATUS_', str('status'), 'status'),
    verdict: enumName(Verdict, 'VERDICT_', str('verdict'), 'verdict'),
    stage: enumName(Stage, 'STAGE_', str('stage'), 'stage'),
    errorCode: enumName(ErrorCode, 'ERROR_CODE_', str('error-code'), 'error-code'),
    minForgeryScore: score === undefined ? undefined : Number(score),
    modelVersion: str('model-version'),
    region: str('region'),
  };
}

/** Checkpoints kept elsewhere: what `audit checkpoints` printed (JSON lines), a JSON array, or ListCheckpoints' JSON. */
async function readCheckpoints(file: string): Promise<import('@tampertrace/shared/audit-trail/store').AuditCheckpoint[]> {
  const text = (await readFile(file, 'utf8')).trim();
  let items: Array<Record<string, unknown>>;
  try {
    const parsed = text.startsWith('[') || text.startsWith('{"checkpoints"') ? JSON.parse(text) : text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    items = Array.isArray(parsed) ? parsed : (parsed.checkpoints ?? []);
  } catch (err) {
    throw usageError(`${file} is not a list of checkpoints in JSON: ${(err as Error).message}`);
  }
  // ListCheckpoints' proto3 JSON writes the sequences as strings.
  return items.map((c) => ({ ...c, checkpointSequence: Number(c.checkpointSequence), recordSequence: Number(c.recordSequence) }) as never);
}

/** Writes to stdout, waiting when the pipe is full so a large export never piles up in memory. */
async function writeOut(chunk: string): Promise<void> {
  if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
}

/**
 * The audit trail, read and checked directly on the database (the embedded one under
 * $TAMPERTRACE_HOME, or PostgreSQL when TAMPERTRACE_DATABASE_URL is set: operator access), for
 * the tenant of --tenant or TAMPERTRACE_TENANT. `checkpoint` and `prune` change the store and
 * exist only here, not in the API.
 */
async function auditCmd(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: AUDIT_OPTIONS });
  const [sub, key] = positionals;
  const cfg = loadConfig();
  const tenantId = values.tenant ?? cfg.TAMPERTRACE_TENANT;
  const { AuditStore } = await import('@tampertrace/shared/audit-trail/store');
  let lock: DataLock | undefined;
  if (!cfg.TAMPERTRACE_DATABASE_URL) {
    try {
      lock = await folderLock(cfg.TAMPERTRACE_HOME, 'command');
    } catch (err) {
      if (!(err instanceof DataFolderBusy)) throw err;
      return auditThroughServer(err, sub, key, values, tenantId, cfg.TAMPERTRACE_HOME);
    }
  }
  const sql = cfg.TAMPERTRACE_DATABASE_URL
    ? await (await import('@tampertrace/shared/pg')).openPostgres(cfg.TAMPERTRACE_DATABASE_URL)
    : await (await import('@tampertrace/shared/pglite')).openPglite(path.join(cfg.TAMPERTRACE_HOME, 'db')).catch(async (err: unknown) => {
        await lock?.release();
        throw err;
      });
  const audit = new AuditStore(sql);
  try {
    await audit.migrate();
    if (sub === 'trail' && key) {
      const rows = await audit.trail(tenantId, /^[0-9a-f]{64}$/.test(key) ? { contentSha256: key } : { analysisId: key });
      if (rows.length === 0) {
        process.stderr.write(`no audit records for ${key}\n`);
        return EXIT.failure;
      }
      for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
      return EXIT.ok;
    }
    if (sub === 'query') {
      const filter = auditFilter(values);
      let left = positiveInt(values.limit, 'limit') ?? 100;
      let cursor = values['page-token'];
      while (left > 0) {
        const page = await audit.query(tenantId, filter, { limit: Math.min(left, 1000), cursor });
        for (const r of page.records) await writeOut(JSON.stringify(r) + '\n');
        left -= page.records.length;
        cursor = page.nextCursor;
        if (!cursor) break;
      }
      if (cursor) process.stderr.write(`more records follow: --page-token ${cursor}\n`);
      return EXIT.ok;
    }
    if (sub === 'export') {
      const format = values.format ?? 'jsonl';
      if (format !== 'jsonl' && format !== 'csv') throw usageError(`--format must be jsonl or csv, got "${format}"`);
      for await (const chunk of audit.exportRecords(tenantId, auditFilter(values), format)) await writeOut(chunk);
      return EXIT.ok;
    }
    if (sub === 'verify') {
      const v = await audit.verify(tenantId, {
        fromSequence: positiveInt(values.from, 'from'),
        toSequence: positiveInt(values.to, 'to'),
        checkpoints: values.checkpoints ? await readCheckpoints(values.checkpoints) : undefined,
      });
      if (v.ok) {
        process.stdout.write(`OK: ${v.count} records verify for tenant ${tenantId}\n`);
        return EXIT.ok;
      }
      process.stdout.write(`FAILED at record ${v.sequence}: ${v.reason}\n`);
      return EXIT.failure;
    }
    if (sub === 'checkpoints') {
      for (const c of await audit.exportCheckpoints(tenantId, positiveInt(values.since, 'since') ?? 0)) await writeOut(JSON.stringify(c) + '\n');
      return EXIT.ok;
    }
    if (sub === 'checkpoint') {
      const c = await audit.checkpoint(tenantId);
      if (!c) {
        process.stderr.write(`tenant ${tenantId} has no audit records to checkpoint\n`);
        return EXIT.failure;
      }
      process.stdout.write(JSON.stringify(c) + '\n');
      return EXIT.ok;
    }
    if (sub === 'prune') {
      const before = positiveInt(values.before, 'before');
      if (before === undefined) throw usageError('prune needs --before CHECKPOINT-SEQUENCE');
      // The prefix must verify before it is deleted for good; a refusal is an answer, not a crash.
      const { pruned } = await audit.pruneBefore(tenantId, before).catch((err: unknown) => {
        if (err instanceof Error && err.message.startsWith('refusing to prune')) throw usageError(err.message);
        throw err;
      });
      process.stdout.write(`pruned ${pruned} records of tenant ${tenantId} up to checkpoint ${before}\n`);
      return EXIT.ok;
    }
    process.stderr.write(`${USAGE}\n`);
    return EXIT.failure;
  } finally {
    await audit.close();
    await lock?.release();
  }
}

/** An audit command on a folder a server holds: through its API where the API can answer it, else exit 3. */
async function auditThroughServer(
  err: DataFolderBusy,
  sub: string | undefined,
  key: string | undefined,
  values: Record<string, string | boolean | undefined>,
  tenantId: string,
  home: string,
): Promise<number> {
  const str = (k: string) => values[k] as string | undefined;
  if (!sub || !AUDIT_VIA_SERVER.has(sub)) {
    return busy(err, `and \`audit ${sub ?? ''}\` changes the audit store outside the API (operator only): stop that server first`);
  }
  if (err.holder.tenant !== tenantId) return busy(err, `and its API answers for tenant "${err.holder.tenant}" only, not "${tenantId}": stop that server to read another tenant`);
  if (!(await folderApiKey(home))) return busy(err, `and its key (${path.join(home, 'api-key')}) is not readable`);
  // Usage errors as on the direct path, before anything is asked of the server.
  const format = str('format') ?? 'jsonl';
  if (sub === 'export' && format !== 'jsonl' && format !== 'csv') throw usageError(`--format must be jsonl or csv, got "${format}"`);
  const args = {
    sub,
    key,
    tenantId,
    filter: () => auditFilter(values),
    limit: sub === 'query' ? positiveInt(str('limit'), 'limit') : undefined,
    pageToken: str('page-token'),
    format: format as 'jsonl' | 'csv',
    fromSequence: sub === 'verify' ? positiveInt(str('from'), 'from') : undefined,
    toSequence: sub === 'verify' ? positiveInt(str('to'), 'to') : undefined,
    checkpoints: sub === 'verify' && str('checkpoints') ? await readCheckpoints(str('checkpoints')!) : undefined,
    since: sub === 'checkpoints' ? positiveInt(str('since'), 'since') : undefined,
    out: writeOut,
    err: (s: string) => void process.stderr.write(s),
  };
  if (sub === 'trail' && !key) {
    process.stderr.write(`${USAGE}\n`);
    return EXIT.failure;
  }
  const client = await holderClient(err.holder, home, AuditService);
  try {
    return await auditViaServer(client, args);
  } finally {
    client.close();
  }
}
