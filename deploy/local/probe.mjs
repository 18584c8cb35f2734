#!/usr/bin/env node
// Readiness probes used by deploy/local/infra.sh. No npm dependencies: plain Node >= 20.
//
//   node probe.mjs kafka 127.0.0.1 19092
//     Kafka wire protocol: ApiVersions (v0), then a real Metadata request (v4..v8, picked from
//     the ranges the broker advertised). Ready when the broker lists at least one live broker.
//   node probe.mjs s3 http://127.0.0.1:19000 ACCESS_KEY SECRET_KEY [region]
//     S3: a SigV4-signed ListBuckets must answer 200, and the same request signed with a wrong
//     secret must answer 403 (proves that signatures are really checked).
//
// Exit 0 when ready, 1 otherwise (one line on stderr says why). Only loopback is accepted.
import net from 'node:net';
import crypto from 'node:crypto';

const TIMEOUT_MS = 5000;

function fail(msg) {
  process.stderr.write(`probe: ${msg}\n`);
  process.exit(1);
}

function assertLoopback(host) {
  if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') {
    fail(`refusing to probe non-loopback host ${host}`);
  }
}

// ---------------------------------------------------------------- Kafka

function kafkaRequest(sock, apiKey, apiVersion, correlationId, body) {
  const clientId = Buffer.from('tampertrace-probe');
  const header = Buffer.alloc(2 + 2 + 4 + 2);
  header.writeInt16BE(apiKey, 0);
  header.writeInt16BE(apiVersion, 2);
  header.writeInt32BE(correlationId, 4);
  header.writeInt16BE(clientId.length, 8);
  const payload = Buffer.concat([header, clientId, body]);
  const size = Buffer.alloc(4);
  size.writeInt32BE(payload.length, 0);
  sock.write(Buffer.concat([size, payload]));
}

function readFrames(sock) {
  let buf = Buffer.alloc(0);
  const waiters = [];
  const frames = [];
  let error = null;
  const flush = () => {
    while (waiters.length && (frames.length || error)) {
      const w = waiters.shift();
      if (frames.length) w.resolve(frames.shift());
      else w.reject(error);
    }
  };
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4) {
      const len = buf.readInt32BE(0);
      if (buf.length < 4 + len) break;
      frames.push(buf.subarray(4, 4 + len));
      buf = buf.subarray(4 + len);
    }
    flush();
  });
  const onEnd = (e) => {
    error = e instanceof Error ? e : new Error('connection closed');
    flush();
  };
  sock.on('error', onEnd);
  sock.on('close', onEnd);
  return () =>
    new Promise((resolve, reject) => {
      waiters.push({ resolve, reject });
      flush();
    });
}

class Reader {
  constructor(b) {
    this.b = b;
    this.o = 0;
  }
  i16() { const v = this.b.readInt16BE(this.o); this.o += 2; return v; }
  i32() { const v = this.b.readInt32BE(this.o); this.o += 4; return v; }
  str() {
    const n = this.i16();
    if (n < 0) return null;
    const v = this.b.toString('utf8', this.o, this.o + n);
    this.o += n;
    return v;
  }
}

async function probeKafka(host, port) {
  assertLoopback(host);
  const sock = net.connect({ host, port: Number(port) });
  sock.setTimeout(TIMEOUT_MS, () => sock.destroy(new Error(`timeout after ${TIMEOUT_MS} ms`)));
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const next = readFrames(sock);

  // ApiVersions v0 (API key 18): every broker version answers it.
  kafkaRequest(sock, 18, 0, 1, Buffer.alloc(0));
  let r = new Reader(await next());
  if (r.i32() !== 1) throw new Error('ApiVersions: bad correlation id');
  const err = r.i16();
  if (err !== 0) throw new Error(`ApiVersions: error code ${err}`);
  const ranges = new Map();
  for (let n = r.i32(); n > 0; n--) {
    const key = r.i16();
    ranges.set(key, [r.i16(), r.i16()]);
  }
  const md = ranges.get(3);
  if (!md) throw new Error('broker does not advertise Metadata');
  const version = Math.max(md[0], 4);
  if (version > 8 || version > md[1]) throw new Error(`no Metadata version in 4..8 (broker: ${md[0]}..${md[1]})`);

  // Metadata (API key 3), all topics: topics=null, allow_auto_topic_creation=false
  // (+ the two include_*_authorized_operations flags from v8).
  const body = Buffer.alloc(version >= 8 ? 7 : 5);
  body.writeInt32BE(-1, 0);
  body.writeInt8(0, 4);
  if (version >= 8) { body.writeInt8(0, 5); body.writeInt8(0, 6); }
  kafkaRequest(sock, 3, version, 2, body);
  r = new Reader(await next());
  if (r.i32() !== 2) throw new Error('Metadata: bad correlation id');
  r.i32(); // throttle_time_ms
  const brokers = [];
  for (let n = r.i32(); n > 0; n--) {
    const id = r.i32();
    const h = r.str();
    const p = r.i32();
    r.str(); // rack
    brokers.push(`${id}@${h}:${p}`);
  }
  const clusterId = r.str();
  sock.destroy();
  if (brokers.length === 0) throw new Error('Metadata: no live broker yet');
  return `kafka ready: cluster ${clusterId}, brokers ${brokers.join(',')}, ${ranges.size} APIs, Metadata v${version}`;
}

// ---------------------------------------------------------------- S3

function sigV4Headers(endpoint, accessKey, secretKey, region, method, path) {
  const url = new URL(path, endpoint);
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const emptyHash = crypto.createHash('sha256').update('').digest('hex');
  const signedHeaders = 'host;x-amz-content-sha256;x-amz-date';
  const canonical = [
    method,
    url.pathname,
    '',
    `host:${url.host}`,
    `x-amz-content-sha256:${emptyHash}`,
    `x-amz-date:${amzDate}`,
    '',
    signedHeaders,
    emptyHash,
  ].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, crypto.createHash('sha256').update(canonical).digest('hex')].join('\n');
  const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
  const kSigning = hmac(hmac(hmac(hmac(`AWS4${secretKey}`, day), region), 's3'), 'aws4_request');
  const signature = crypto.createHmac('sha256', kSigning).update(toSign).digest('hex');
  return {
    url,
    headers: {
      'x-amz-date': amzDate,
      'x-amz-content-sha256': emptyHash,
      authorization: `AWS4-HMAC-SHA256 Credential=${accessKey}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    },
  };
}

async function s3Get(endpoint, accessKey, secretKey, region) {
  const { url, headers } = sigV4Headers(endpoint, accessKey, secretKey, region, 'GET', '/');
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  const text = await res.text();
  return { status: res.status, text };
}

async function probeS3(endpoint, accessKey, secretKey, region = 'us-east-1') {
  assertLoopback(new URL(endpoint).hostname);
  const ok = await s3Get(endpoint, accessKey, secretKey, region);
  if (ok.status !== 200) throw new Error(`signed ListBuckets answered ${ok.status}: ${ok.text.slice(0, 200)}`);
  const bad = await s3Get(endpoint, accessKey, `${secretKey}-wrong`, region);
  if (bad.status !== 403) throw new Error(`ListBuckets with a wrong secret answered ${bad.status}, expected 403`);
  const buckets = (ok.text.match(/<Bucket>/g) || []).length;
  return `s3 ready: signed ListBuckets 200 (${buckets} buckets), wrong secret 403`;
}

// ---------------------------------------------------------------- main

const [what, ...args] = process.argv.slice(2);
try {
  let msg;
  if (what === 'kafka') msg = await probeKafka(args[0], args[1]);
  else if (what === 's3') msg = await probeS3(args[0], args[1], args[2], args[3]);
  else fail('usage: probe.mjs kafka HOST PORT | s3 ENDPOINT ACCESS_KEY SECRET_KEY [REGION]');
  process.stdout.write(`${msg}\n`);
  process.exit(0);
} catch (e) {
  fail(e && e.message ? e.message : String(e));
}
