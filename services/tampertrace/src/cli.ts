// `tampertrace`: analyse files in embedded mode, serve the embedded pipeline, read the audit trail.
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, REPO_ROOT, Semaphore, createLogger, grpc, loadConfig, codeName, serviceClient, unary } from '@tampertrace/shared';
import { AnalysisStatus, ErrorCode, ErrorInfoSchema, Stage, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import {
  ArtifactKind,
  GetArtifactRequestSchema,
  IngestService,
  SubmitRequestSchema,
  WatchAnalysisRequestSchema,
  type GetArtifactResponse,
  type SubmitResponse,
  type WatchAnalysisResponse,
} from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { serveHttp } from '@tampertrace/ingest/http';
import { serveGrpc, stopGrpc } from '@tampertrace/ingest/grpc';
import { startEmbedded } from './embedded.ts';
import { analysisJson, outputNames, writeOutputs } from './outputs.ts';

export const EXIT = { ok: 0, failure: 1, rejected: 2 } as const;

const USAGE = `Usage:
  tampertrace analyze [--out DIR] [--concurrency N] PATH...   analyse image files and folders (embedded mode)
  tampertrace serve [--port N] [--grpc-port N]                 run the embedded pipeline with its gRPC API and HTTP endpoint
  tampertrace audit trail <analysis-id|sha256>                 print the audit records of an analysis or content
  tampertrace audit verify                                     check the tenant's audit hash chain
  tampertrace service <ingest|face-detection|forgery-localization|explanation-generation|audit>
                                                               run one service on Kafka, S3 and PostgreSQL
  tampertrace submit [--server HOST:PORT] [--out DIR] [--reanalyze] PATH...
                                                               send files to a running ingest service (gRPC,
                                                               default 127.0.0.1:50051) and write the results

Exit codes: 0 all analysed, 2 some inputs rejected, 1 system failure.
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
      case 'submit':
        return await submitCmd(rest);
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
    if (err instanceof ConfigError) process.stderr.write(`configuration error: ${err.message}\n`);
    else process.stderr.write(`tampertrace: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.failure;
  }
}

/** Files under the given paths: folders are walked recursively, hidden entries skipped, order stable. */
export async function expandInputs(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const s = await stat(p).catch(() => undefined);
    if (!s) throw new Error(`no such file or folder: ${p}`);
    if (s.isDirectory()) {
      const entries = (await readdir(p)).filter((n) => !n.startsWith('.')).sort();
      out.push(...(await expandInputs(entries.map((n) => path.join(p, n)))));
    } else if (s.isFile()) out.push(p);
  }
  return out;
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
  const files = await expandInputs(positionals);
  const embedded = await startEmbedded(cfg, log);
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

/**
 * Sends files to a running ingest service over gRPC (`make up`, or `make run`) and writes the
 * same files as `analyze`: Submit, WatchAnalysis until the final state, GetArtifact for the PNGs.
 */
async function submitCmd(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      server: { type: 'string', default: '127.0.0.1:50051' },
      out: { type: 'string', default: 'tampertrace-out' },
      concurrency: { type: 'string', default: '4' },
      reanalyze: { type: 'boolean', default: false },
    },
  });
  if (positionals.length === 0) {
    process.stderr.write(`submit needs at least one PATH\n${USAGE}\n`);
    return EXIT.failure;
  }
  const files = await expandInputs(positionals);
  const out = values.out!;
  await mkdir(out, { recursive: true });
  const client = serviceClient(IngestService, values.server!.replace(/^[a-z]+:\/\//, ''), { 'grpc.max_receive_message_length': -1 });
  try {
    return await runBatch(files, out, Number(values.concurrency), async (file, name) => {
      const sourceName = path.basename(file);
      let submitted: SubmitResponse;
      try {
        const content = await readFile(file);
        submitted = await unary<SubmitResponse>(client, 'submit', create(SubmitRequestSchema, { source: { case: 'content', value: content }, sourceName, reanalyze: values.reanalyze }));
      } catch (err) {
        // The server refuses an over-limit message before reading it; that is this input's
        // rejection, said by the server, not a system failure.
        if ((err as grpc.ServiceError).code !== grpc.status.RESOURCE_EXHAUSTED) throw err;
        const a = create(AnalysisSchema, { status: AnalysisStatus.REJECTED, sourceName, error: create(ErrorInfoSchema, { code: ErrorCode.TOO_LARGE, stage: Stage.INGEST, message: (err as grpc.ServiceError).details }) });
        await writeFile(path.join(out, `${name}.json`), JSON.stringify(analysisJson(a), null, 2) + '\n');
        return a;
      }
      let a: Analysis | undefined;
      const stream = (client as unknown as { watchAnalysis(req: unknown): grpc.ClientReadableStream<WatchAnalysisResponse> }).watchAnalysis(
        create(WatchAnalysisRequestSchema, { analysisId: submitted.analysisId }),
      );
      for await (const step of stream as AsyncIterable<WatchAnalysisResponse>) a = step.analysis;
      if (!a || a.status === AnalysisStatus.PENDING) throw new Error(`${file}: the watch of ${submitted.analysisId} ended before its final state`);
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
    });
  } finally {
    client.close();
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
  const embedded = await startEmbedded(cfg, log);
  const server = await serveHttp(embedded.gateway, cfg, log);
  const { server: grpcServer, port: grpcPort } = await serveGrpc(embedded.gateway, cfg, log);
  const addr = server.address();
  const url = typeof addr === 'object' && addr ? `http://${cfg.TAMPERTRACE_HTTP_HOST}:${addr.port}` : '';
  const grpcAddr = `${cfg.TAMPERTRACE_GRPC_HOST}:${grpcPort}`;
  log.info({ url, grpc: grpcAddr }, 'ready');
  process.stdout.write(
    `TamperTrace is running (embedded mode, data in ${cfg.TAMPERTRACE_HOME}).\n` +
      `  Analyse files:     npx tampertrace submit --server ${grpcAddr} photo.jpg\n` +
      `  Or over HTTP:      curl --data-binary @photo.jpg '${url}/v1/analyses?wait=true'\n` +
      `  Health:            ${url}/healthz\nPress Ctrl-C to stop.\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await Promise.all([stopGrpc(grpcServer), new Promise<void>((resolve) => server.close(() => resolve()))]);
  await embedded.close();
  return EXIT.ok;
}

export const SERVICES = ['ingest', 'face-detection', 'forgery-localization', 'explanation-generation', 'audit'] as const;

/** Runs one service's entry point (services/<name>/src/main.ts) in this process until SIGTERM/SIGINT. */
async function service(args: string[]): Promise<number> {
  const [name] = args;
  if (!(SERVICES as readonly string[]).includes(name)) {
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

async function auditCmd(args: string[]): Promise<number> {
  const [sub, key] = args;
  const cfg = loadConfig();
  const { AuditStore } = await import('@tampertrace/audit/store');
  const { openPglite } = await import('@tampertrace/shared/pglite');
  const audit = new AuditStore(await openPglite(path.join(cfg.TAMPERTRACE_HOME, 'db')));
  try {
    await audit.migrate();
    if (sub === 'trail' && key) {
      const rows = await audit.trail(cfg.TAMPERTRACE_TENANT, /^[0-9a-f]{64}$/.test(key) ? { contentSha256: key } : { analysisId: key });
      if (rows.length === 0) {
        process.stderr.write(`no audit records for ${key}\n`);
        return EXIT.failure;
      }
      for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
      return EXIT.ok;
    }
    if (sub === 'verify') {
      const v = await audit.verify(cfg.TAMPERTRACE_TENANT);
      if (v.ok) {
        process.stdout.write(`OK: ${v.count} records verify for tenant ${cfg.TAMPERTRACE_TENANT}\n`);
        return EXIT.ok;
      }
      process.stdout.write(`FAILED at record ${v.sequence}: ${v.reason}\n`);
      return EXIT.failure;
    }
    process.stderr.write(`${USAGE}\n`);
    return EXIT.failure;
  } finally {
    await audit.close();
  }
}
