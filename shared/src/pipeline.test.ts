// The pipeline's list (pipeline.ts) against every place that must agree with it. Places in
// TypeScript derive from the list; these tests catch the ones that cannot (YAML, bash) and the
// list's own consistency.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { Stage } from './gen/tampertrace/v1/common_pb.ts';
import { eventSchemaOf } from './events.ts';
import { EDGE_SERVICES, INGESTED, PIPELINE, SERVICES, intermediateEvents, stageAtOrder, stageOrder } from './pipeline.ts';
import { ConsumerGroup, Topic, allTopics, deadLetterTopic } from './topics.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');
const read = (...p: string[]) => readFileSync(path.join(repo, ...p), 'utf8');

test('the stages form one chain: ingest -> each stage -> the final Analysis, every message type an event', () => {
  let prev: { topic: string; type: string } = INGESTED;
  for (const s of PIPELINE) {
    assert.deepEqual(s.input, { topic: prev.topic, type: prev.type }, `${s.service} consumes what the stage before it publishes`);
    assert.equal(eventSchemaOf(s.input.type).typeName, s.input.type);
    assert.equal(eventSchemaOf(s.output.type).typeName, s.output.type);
    prev = s.output;
  }
  assert.equal(prev.topic, Topic.analysisCompleted);
  assert.equal(prev.type, 'tampertrace.v1.AnalysisCompleted');
});

test('every stage has its own Stage value, service, group (its service name) and span', () => {
  const values: Stage[] = PIPELINE.map((s) => s.stage);
  assert.equal(new Set(values).size, values.length);
  assert.ok(!values.includes(Stage.INGEST) && !values.includes(Stage.AUDIT) && !values.includes(Stage.UNSPECIFIED));
  for (const s of PIPELINE) {
    assert.equal(s.group, s.service);
    assert.match(s.span, /^tampertrace\.[a-z_]+\.[a-z_]+$/);
  }
  assert.equal(new Set(PIPELINE.map((s) => s.span)).size, PIPELINE.length);
});

test('topics.ts: every topic but the submissions topic is on the chain, and every group is a stage, a side group or ingest/audit', () => {
  const chain = new Set([INGESTED.topic, ...PIPELINE.map((s) => s.output.topic)]);
  assert.deepEqual(new Set(Object.values(Topic).filter((t) => t !== Topic.submissions)), chain);
  const groups = new Set([...PIPELINE.flatMap((s) => [s.group, ...s.sideGroups]), ConsumerGroup.audit, ConsumerGroup.ingestResults, ConsumerGroup.ingestSubmissions]);
  assert.deepEqual(new Set(Object.values(ConsumerGroup)), groups);
  for (const g of groups) assert.ok(allTopics().includes(deadLetterTopic(g)), `${g} has a dead-letter topic`);
});

test('the events ingest reports while an analysis runs are every stage output before the final one, in order', () => {
  assert.deepEqual(
    intermediateEvents().map((e) => e.topic),
    PIPELINE.slice(0, -1).map((s) => s.output.topic),
  );
});

test('services: one folder and one gRPC port each, ingest first', () => {
  assert.equal(SERVICES[0], 'ingest');
  assert.deepEqual([...SERVICES].sort(), [...EDGE_SERVICES.map((s) => s.service), ...PIPELINE.map((s) => s.service)].sort());
  const ports = [...EDGE_SERVICES, ...PIPELINE].map((s) => s.grpcPort).sort((a, b) => a - b);
  assert.deepEqual(ports, ports.map((_, i) => 50051 + i), 'ports are consecutive from 50051');
  for (const s of SERVICES) assert.ok(read('services', s, 'src', 'main.ts').length > 0, `services/${s}/src/main.ts exists`);
});

test('deploy/local/services.sh starts every service, in port order', () => {
  const m = /^all_services=\(([^)]*)\)/m.exec(read('deploy', 'local', 'services.sh'));
  assert.ok(m, 'services.sh has an all_services=(...) line');
  assert.deepEqual(m[1].trim().split(/\s+/), [...SERVICES]);
});

test('deploy/compose.yaml runs every service, and Prometheus scrapes each', () => {
  const compose = parse(read('deploy', 'compose.yaml'), { merge: true }) as { services: Record<string, { image?: string; command?: string[] }> };
  // The services built from this repository's image (YAML merge keys: `<<: *tampertrace`).
  const tampertrace = Object.entries(compose.services).filter(([, s]) => s.image?.startsWith('tampertrace:'));
  assert.deepEqual(tampertrace.map(([name, s]) => [name, s.command![0]]).sort(), [...SERVICES].sort().map((s) => [s, s]));
  const prom = parse(read('deploy', 'observability', 'prometheus.yml')) as { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
  assert.deepEqual(prom.scrape_configs.map((j) => j.job_name).sort(), [...SERVICES].sort());
  for (const j of prom.scrape_configs) assert.deepEqual(j.static_configs[0].targets, [`${j.job_name}:9464`]);
});

test("the chart's components are the services, with the list's ports, groups and input topics", () => {
  const values = parse(read('charts', 'tampertrace', 'values.yaml')) as {
    components: Record<string, { service: string; ports: { grpc: number }; consumes: { group: string; topics: string[] } | null }>;
  };
  const c = values.components;
  assert.deepEqual(Object.keys(c).sort(), [...SERVICES].sort());
  for (const s of [...EDGE_SERVICES, ...PIPELINE]) {
    assert.equal(c[s.service].service, s.service);
    assert.equal(c[s.service].ports.grpc, s.grpcPort, `${s.service}: gRPC port`);
  }
  for (const s of PIPELINE) assert.deepEqual(c[s.service].consumes, { group: s.group, topics: [s.input.topic] }, `${s.service}: what KEDA scales on`);
  const schema = JSON.parse(read('charts', 'tampertrace', 'values.schema.json')) as { $defs?: Record<string, { properties: { service: { enum: string[] } } }>; definitions?: Record<string, { properties: { service: { enum: string[] } } }> };
  const component = (schema.$defs ?? schema.definitions)!.component;
  assert.deepEqual([...component.properties.service.enum].sort(), [...SERVICES].sort());
});

test('positions follow the list, whatever the Stage values', () => {
  assert.equal(stageOrder(Stage.INGEST), 0);
  PIPELINE.forEach((s, i) => {
    assert.equal(stageOrder(s.stage), i + 1);
    assert.equal(stageAtOrder(i + 1), s.stage);
  });
  assert.ok(stageOrder(Stage.PROVENANCE) < stageOrder(Stage.FACE_DETECTION), 'provenance (6) runs before detection (2)');
  // Rows written before provenance existed hold Stage values 2 and 3: they read as the same stages.
  assert.equal(stageAtOrder(Stage.FACE_DETECTION), Stage.FACE_DETECTION);
  assert.equal(stageAtOrder(Stage.FORGERY_LOCALIZATION), Stage.FORGERY_LOCALIZATION);
});
