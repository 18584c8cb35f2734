// Runs a command with Kafka, S3 and PostgreSQL addresses in the TAMPERTRACE_* variables: as given when
// the environment already names all three servers, otherwise against throwaway containers
// (testcontainers; needs Docker or another container runtime). `make test-containers` uses it.
//   node --import tsx deploy/testcontainers/with-servers.ts -- node --import tsx --test <files...>
// Exit status: the command's; 2 when no container runtime answers; 1 when a container does not start.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import type { StartedTestContainer } from 'testcontainers';

// @testcontainers/kafka drives only Confluent images (its start script runs /etc/confluent/docker/run);
// from 8.0 it starts them in KRaft mode, and Confluent Platform 8.x ships Apache Kafka 4.x.
// deploy/local and deploy/compose.yaml run apache/kafka 4.4.0 itself.
const KAFKA_IMAGE = 'confluentinc/cp-kafka:8.2.0';
// The same MinIO and PostgreSQL as deploy/compose.yaml.
const MINIO_IMAGE = 'quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z';
const POSTGRES_IMAGE = 'postgres:16.14-bookworm';
const SERVER_VARS = ['TAMPERTRACE_KAFKA_BROKERS', 'TAMPERTRACE_S3_ENDPOINT', 'TAMPERTRACE_DATABASE_URL'] as const;

const log = (msg: string): void => void process.stderr.write(`[with-servers] ${msg}\n`);

/** Runs argv with stdio inherited; resolves with its exit status (128 + signal number when killed). */
function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env });
    // Ctrl-C reaches the child through the terminal; a TERM sent to us only is passed on. Either
    // way we wait for the child, so that the containers are stopped after it.
    const forward = (signal: NodeJS.Signals) => () => void child.kill(signal);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt).on('SIGTERM', onTerm);
    child.on('error', (err) => {
      log(`cannot run ${argv[0]}: ${err.message}`);
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      process.off('SIGINT', onInt).off('SIGTERM', onTerm);
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const command = args[0] === '--' ? args.slice(1) : args;
  if (command.length === 0) {
    log('usage: node --import tsx deploy/testcontainers/with-servers.ts -- <command> [args...]');
    return 2;
  }

  if (SERVER_VARS.every((name) => process.env[name])) return run(command, process.env);
  const partial = SERVER_VARS.filter((name) => process.env[name]);
  if (partial.length) log(`only ${partial.join(', ')} set: using containers for all three servers instead`);

  // Loaded here, so that the pass-through above works without the devDependencies installed.
  const { getContainerRuntimeClient } = await import('testcontainers');
  try {
    const { containerRuntime: rt } = (await getContainerRuntimeClient()).info;
    log(`container runtime at ${rt.host}: ${rt.operatingSystem}, server version ${rt.serverVersion}`);
  } catch (err) {
    log(`no container runtime is reachable (testcontainers: ${err instanceof Error ? err.message : String(err)}).`);
    log('Without Docker, run `make test`: it starts Kafka, S3Proxy and PostgreSQL on loopback (deploy/local/infra.sh).');
    log(`Or set ${SERVER_VARS.join(', ')} to servers you already run.`);
    return 2;
  }

  const { KafkaContainer } = await import('@testcontainers/kafka');
  const { MinioContainer } = await import('@testcontainers/minio');
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  // Fresh secrets per run: nothing fixed to leak, and the containers live only as long as this run.
  const secret = () => randomBytes(18).toString('base64url');
  log(`starting ${KAFKA_IMAGE}, ${MINIO_IMAGE}, ${POSTGRES_IMAGE} (the first run pulls the images)`);
  const t0 = Date.now();
  const [kafka, minio, postgres] = await Promise.allSettled([
    // As deploy/local configures its broker: topics only by explicit creation, every internal topic
    // with replication factor 1 (the module sets the offsets topic only).
    new KafkaContainer(KAFKA_IMAGE)
      .withEnvironment({
        KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
        KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR: '1',
        KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR: '1',
      })
      .start(),
    new MinioContainer(MINIO_IMAGE).withUsername('tampertrace').withPassword(secret()).start(),
    new PostgreSqlContainer(POSTGRES_IMAGE).withDatabase('tampertrace').withUsername('tampertrace').withPassword(secret()).start(),
  ]);
  const started: StartedTestContainer[] = [kafka, minio, postgres].flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  let status = 1;
  try {
    if (kafka.status === 'rejected' || minio.status === 'rejected' || postgres.status === 'rejected') {
      const results = { Kafka: kafka, MinIO: minio, PostgreSQL: postgres };
      for (const [name, r] of Object.entries(results)) {
        if (r.status === 'rejected') log(`${name} did not start: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`);
      }
      return 1;
    }
    log(`servers up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const k = kafka.value;
    const m = minio.value;
    const p = postgres.value;
    // Exactly the variables `deploy/local/infra.sh env` prints, with these containers' addresses.
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TAMPERTRACE_KAFKA_BROKERS: `${k.getHost()}:${k.getMappedPort(9093)}`,
      TAMPERTRACE_S3_ENDPOINT: m.getConnectionUrl(),
      TAMPERTRACE_S3_REGION: 'us-east-1',
      TAMPERTRACE_S3_ACCESS_KEY: m.getUsername(),
      TAMPERTRACE_S3_SECRET_KEY: m.getPassword(),
      TAMPERTRACE_S3_FORCE_PATH_STYLE: 'true',
      TAMPERTRACE_DATABASE_URL: `postgres://${p.getUsername()}:${p.getPassword()}@${p.getHost()}:${p.getPort()}/${p.getDatabase()}`,
    };
    status = await run(command, env);
    return status;
  } finally {
    // testcontainers' reaper (Ryuk) also removes them should this process die first.
    await Promise.allSettled(started.map((c) => c.stop()));
    log(`containers stopped; exit status ${status}`);
  }
}

// exit() rather than exitCode: a client socket left open must not keep the run (and make) waiting.
process.exit(await main());
