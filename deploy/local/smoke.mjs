#!/usr/bin/env node
// End-to-end smoke test of the loopback servers with the real client libraries:
//   kafkajs: create a topic, idempotent producer with acks=-1, consumer group reads it back;
//   minio:   make bucket, put object, fetch a presigned GET URL, list objects, and a client with a
//            WRONG secret must be rejected (signatures are checked);
//   pg:      connect as the tampertrace user and run queries.
// Run through `deploy/local/infra.sh smoke`, which installs the clients into a scratch dir under
// the cache (never into the repo) and passes it as argv[2]. Settings come from `infra.sh env`.
import { createRequire } from 'node:module';
import path from 'node:path';

const modulesDir = process.argv[2];
if (!modulesDir) {
  console.error('usage: smoke.mjs DIR_WITH_NODE_MODULES [kafka|s3|postgres ...]');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modulesDir), 'package.json'));
const only = new Set(process.argv.slice(3));
const want = (s) => only.size === 0 || only.has(s);
const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (eval "$(deploy/local/infra.sh env)")`);
  return v;
};

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)${detail ? `: ${detail}` : ''}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

async function kafkaSmoke() {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
  const { Kafka, logLevel } = require('kafkajs');
  const kafka = new Kafka({
    clientId: 'tampertrace-smoke',
    brokers: env('TAMPERTRACE_KAFKA_BROKERS').split(','),
    logLevel: logLevel.NOTHING,
  });
  const topic = `tampertrace-smoke-${Date.now()}`;
  const admin = kafka.admin();
  await admin.connect();
  try {
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    if (!created) throw new Error('createTopics returned false');
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const value = `hello ${topic}`;
    const [res] = await producer.send({ topic, acks: -1, messages: [{ key: 'k', value }] });
    await producer.disconnect();
    if (res.errorCode !== 0) throw new Error(`produce error ${res.errorCode}`);
    const consumer = kafka.consumer({ groupId: `${topic}-group` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no message within 60 s')), 60000);
      consumer
        .run({
          eachMessage: async ({ message }) => {
            clearTimeout(timer);
            resolve(message.value.toString());
          },
        })
        .catch(reject);
    });
    await consumer.disconnect();
    if (got !== value) throw new Error(`consumed ${JSON.stringify(got)}, expected ${JSON.stringify(value)}`);
    return `topic ${topic}: produced at offset ${res.baseOffset} (idempotent, acks=-1), consumed back`;
  } finally {
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  }
}

function s3Client(secretKey) {
  const Minio = require('minio');
  const u = new URL(env('TAMPERTRACE_S3_ENDPOINT'));
  return new Minio.Client({
    endPoint: u.hostname,
    port: Number(u.port),
    useSSL: u.protocol === 'https:',
    accessKey: env('TAMPERTRACE_S3_ACCESS_KEY'),
    secretKey,
    region: env('TAMPERTRACE_S3_REGION'),
    pathStyle: true,
  });
}

async function s3Smoke() {
  const client = s3Client(env('TAMPERTRACE_S3_SECRET_KEY'));
  const bucket = `tampertrace-smoke-${Date.now()}`;
  const key = 'dir/hello.txt';
  const body = Buffer.from(`hello ${bucket}\n`);
  await client.makeBucket(bucket, env('TAMPERTRACE_S3_REGION'));
  try {
    await client.putObject(bucket, key, body, body.length, { 'Content-Type': 'text/plain' });
    const url = await client.presignedGetObject(bucket, key, 60);
    const res = await fetch(url);
    const text = await res.text();
    if (res.status !== 200 || text !== body.toString()) throw new Error(`presigned GET: ${res.status} ${text.slice(0, 200)}`);
    const names = await new Promise((resolve, reject) => {
      const out = [];
      const stream = client.listObjectsV2(bucket, '', true);
      stream.on('data', (o) => out.push(o.name));
      stream.on('error', reject);
      stream.on('end', () => resolve(out));
    });
    if (names.length !== 1 || names[0] !== key) throw new Error(`list: ${JSON.stringify(names)}`);
    // 20 MiB in one PUT (minio-js goes multipart only above partSize, 64 MiB by default; S3Proxy's
    // filesystem backends lack ListMultipartUploads, which minio-js calls first: see README)
    const big = Buffer.alloc(20 * 1024 * 1024, 7);
    await client.putObject(bucket, 'big.bin', big, big.length);
    const st = await client.statObject(bucket, 'big.bin');
    await client.removeObject(bucket, 'big.bin');
    if (st.size !== big.length) throw new Error(`20 MiB object has size ${st.size}`);
    const bad = s3Client(`${env('TAMPERTRACE_S3_SECRET_KEY')}-wrong`);
    let rejected = '';
    try {
      await bad.statObject(bucket, key);
    } catch (e) {
      rejected = e.code || e.message;
    }
    if (!rejected) throw new Error('a request signed with a wrong secret was accepted');
    let rejected2 = '';
    try {
      await bad.putObject(bucket, 'evil.txt', Buffer.from('x'), 1);
    } catch (e) {
      rejected2 = e.code || e.message;
    }
    if (!rejected2) throw new Error('a PUT signed with a wrong secret was accepted');
    return `bucket ${bucket}: put, presigned GET, list, 20 MiB put ok; wrong secret rejected (${rejected}, ${rejected2})`;
  } finally {
    await client.removeObject(bucket, key).catch(() => {});
    await client.removeBucket(bucket).catch(() => {});
  }
}

async function pgSmoke() {
  const { Client } = require('pg');
  const client = new Client({ connectionString: env('TAMPERTRACE_DATABASE_URL') });
  await client.connect();
  try {
    const v = await client.query('select current_user as u, current_database() as d, version() as v');
    await client.query('create temp table smoke (id int primary key, note text)');
    await client.query('insert into smoke values ($1, $2)', [1, 'hello']);
    const r = await client.query('select note from smoke where id = $1', [1]);
    if (r.rows[0].note !== 'hello') throw new Error('round trip failed');
    const { u, d } = v.rows[0];
    return `${u}@${d}: ${v.rows[0].v.split(' ').slice(0, 2).join(' ')}, insert/select ok`;
  } finally {
    await client.end();
  }
}

if (want('kafka')) await check('kafka (kafkajs)', kafkaSmoke);
if (want('s3')) await check('s3 (minio)', s3Smoke);
if (want('postgres')) await check('postgres (pg)', pgSmoke);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
