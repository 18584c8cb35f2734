// Renders charts/tampertrace with the real `helm template` (default values, and the GPU + KEDA
// profile in ci/gpu-keda-values.yaml) and checks the properties an install depends on. helm comes
// from charts/tools/install.sh (`make chart-check`); without it the test is skipped, except under
// CI=true, where a missing helm fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConsumerGroup, withPrefix } from '../shared/src/topics.ts';
import { PIPELINE, SERVICES } from '../shared/src/pipeline.ts';

const repo = path.resolve(import.meta.dirname, '..');
const chart = path.join(repo, 'charts', 'tampertrace');

function findHelm(): string | undefined {
  const candidates = [process.env.HELM, path.join(repo, '.cache', 'k8s-tools', 'bin', 'helm')].filter(Boolean) as string[];
  for (const c of candidates) if (existsSync(c)) return c;
  try {
    execFileSync('helm', ['version', '--short'], { stdio: 'ignore' });
    return 'helm';
  } catch {
    return undefined;
  }
}

const helm = findHelm();
const skip = helm ? false : process.env.CI === 'true' ? false : 'helm is not installed: run `make chart-check` (charts/tools/install.sh) first';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

function render(valuesFile?: string): Obj[] {
  if (!helm) throw new Error('helm is not installed (CI=true): charts/tools/install.sh must run before the tests');
  const args = ['template', 'tampertrace', chart, '--namespace', 'tampertrace', '--kube-version', '1.33.0'];
  if (valuesFile) args.push('-f', path.join(chart, 'ci', valuesFile));
  const out = execFileSync(helm, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return parseAllDocuments(out)
    .map((d) => d.toJS())
    .filter(Boolean);
}

const ofKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const byName = (objs: Obj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const component = (o: Obj) => o.metadata.labels['app.kubernetes.io/component'] as string;
const SECRET_VARS = ['TAMPERTRACE_API_KEY_PEPPER', 'TAMPERTRACE_S3_ACCESS_KEY', 'TAMPERTRACE_S3_SECRET_KEY', 'DATABASE_PASSWORD', 'TAMPERTRACE_EXPLAINER_API_KEY'];
/** The stage services' input topics and groups, from the pipeline's list. */
const STAGES = Object.fromEntries(PIPELINE.map((s) => [s.service, { group: s.group, topic: s.input.topic }]));
const GPU_COMPONENTS = ['face-detection', 'forgery-localization'];

for (const profile of ['default', 'gpu-keda'] as const) {
  test(`${profile} values: every Deployment has gRPC readiness, /livez liveness, resources and the hardened securityContext`, { skip }, () => {
    const objs = render(profile === 'default' ? undefined : 'gpu-keda-values.yaml');
    const deployments = ofKind(objs, 'Deployment');
    assert.deepEqual(deployments.map(component).sort(), [...SERVICES].sort());
    for (const d of deployments) {
      const name = d.metadata.name;
      const pod = d.spec.template.spec;
      assert.equal(pod.securityContext.runAsNonRoot, true, `${name}: pod runAsNonRoot`);
      assert.ok(pod.securityContext.runAsUser > 0, `${name}: non-root uid`);
      assert.equal(pod.automountServiceAccountToken, false, `${name}: no API token`);
      assert.ok(byName(objs, 'ServiceAccount', pod.serviceAccountName), `${name}: its ServiceAccount is rendered`);
      assert.equal(d.spec.template.metadata.annotations['prometheus.io/scrape'], 'true', `${name}: scraped`);
      for (const c of pod.containers) {
        const grpcPort = c.ports.find((p: Obj) => p.name === 'grpc').containerPort;
        assert.ok(c.ports.find((p: Obj) => p.name === 'metrics'), `${name}: named metrics port`);
        assert.equal(c.readinessProbe.grpc.port, grpcPort, `${name}: readiness asks grpc.health.v1 on the gRPC port`);
        assert.equal(c.startupProbe.grpc.port, grpcPort, `${name}: start-up probe on the gRPC port`);
        assert.deepEqual(c.livenessProbe.httpGet, { path: '/livez', port: 'metrics' }, `${name}: liveness on /livez`);
        assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, `${name}: cpu/memory requests and a memory limit`);
        const sc = c.securityContext;
        assert.equal(sc.runAsNonRoot, true, `${name}: runAsNonRoot`);
        assert.equal(sc.readOnlyRootFilesystem, true, `${name}: read-only root filesystem`);
        assert.equal(sc.allowPrivilegeEscalation, false, `${name}: no privilege escalation`);
        assert.deepEqual(sc.capabilities.drop, ['ALL'], `${name}: no capabilities`);
        assert.ok(!sc.capabilities.add, `${name}: none added`);
        assert.equal(c.env.find((e: Obj) => e.name === 'TAMPERTRACE_GRPC_PORT').value, String(grpcPort));
        for (const e of c.env.filter((e: Obj) => SECRET_VARS.includes(e.name))) {
          assert.ok(e.valueFrom?.secretKeyRef && e.value === undefined, `${name}: ${e.name} comes from a Secret`);
        }
      }
      const selects = (o: Obj) => component({ metadata: { labels: o.spec.selector?.matchLabels ?? o.spec.podSelector?.matchLabels ?? o.spec.selector } }) === component(d);
      assert.ok(ofKind(objs, 'PodDisruptionBudget').some(selects), `${name}: PodDisruptionBudget`);
      assert.ok(ofKind(objs, 'NetworkPolicy').some(selects), `${name}: NetworkPolicy`);
      assert.ok(ofKind(objs, 'Service').some((s) => s.spec.selector['app.kubernetes.io/component'] === component(d)), `${name}: Service`);
    }
    assert.equal(ofKind(objs, 'Secret').length, 0, 'the chart renders no Secret: secrets are the user’s');
  });
}

test('the vision-language explainer: off by default; with explainer.kind openai only explanation-generation gets its settings, its key from the Secret, and egress to it', { skip }, () => {
  const envOf = (objs: Obj[]) => new Map(ofKind(objs, 'Deployment').map((d) => [component(d), d.spec.template.spec.containers[0].env as Obj[]]));
  for (const env of envOf(render()).values()) assert.ok(!env.some((e) => e.name.startsWith('TAMPERTRACE_EXPLAINER')));
  const prod = render('gpu-keda-values.yaml');
  for (const [name, env] of envOf(prod)) {
    const vars = new Map(env.map((e) => [e.name, e]));
    if (name !== 'explanation-generation') {
      assert.ok(![...vars.keys()].some((k) => k.startsWith('TAMPERTRACE_EXPLAINER')), name);
      continue;
    }
    assert.equal(vars.get('TAMPERTRACE_EXPLAINER').value, 'openai');
    assert.equal(vars.get('TAMPERTRACE_EXPLAINER_URL').value, 'http://vllm.models:8000/v1');
    assert.deepEqual(vars.get('TAMPERTRACE_EXPLAINER_API_KEY').valueFrom.secretKeyRef, { name: 'tampertrace-prod', key: 'explainer-api-key' });
  }
  const policy = ofKind(prod, 'NetworkPolicy').find((p) => p.spec.podSelector.matchLabels['app.kubernetes.io/component'] === 'explanation-generation');
  assert.ok(policy.spec.egress.some((r: Obj) => r.ports.some((p: Obj) => p.port === 8000)), 'egress to the endpoint');
});

test('default values: CPU only, a CPU HPA per component and no ScaledObject', { skip }, () => {
  const objs = render();
  for (const d of ofKind(objs, 'Deployment')) {
    const c = d.spec.template.spec.containers[0];
    assert.ok(!c.resources.limits['nvidia.com/gpu'] && !c.resources.requests['nvidia.com/gpu'], `${d.metadata.name} asks for no GPU`);
    assert.doesNotMatch(c.image, /-gpu$/);
  }
  assert.equal(ofKind(objs, 'ScaledObject').length, 0);
  const hpas = ofKind(objs, 'HorizontalPodAutoscaler');
  assert.equal(hpas.length, SERVICES.length);
  for (const h of hpas) {
    assert.ok(byName(objs, 'Deployment', h.spec.scaleTargetRef.name), `${h.metadata.name} targets a rendered Deployment`);
    assert.equal(h.spec.metrics[0].resource.name, 'cpu');
    assert.ok(h.spec.maxReplicas <= 12, 'capped by the 12 partitions');
  }
});

test('GPU + KEDA values: the model stages request a GPU and run the CUDA image; the others do not', { skip }, () => {
  const objs = render('gpu-keda-values.yaml');
  for (const d of ofKind(objs, 'Deployment')) {
    const c = d.spec.template.spec.containers[0];
    const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value]));
    if (GPU_COMPONENTS.includes(component(d))) {
      assert.equal(c.resources.limits['nvidia.com/gpu'], 1, `${d.metadata.name}: GPU limit`);
      assert.equal(c.resources.requests['nvidia.com/gpu'], 1, `${d.metadata.name}: GPU request`);
      assert.match(c.image, /:0\.1\.0-gpu$/);
      assert.equal(env.TAMPERTRACE_EXECUTION_PROVIDERS, 'cuda');
      assert.ok(d.spec.template.spec.tolerations.some((t: Obj) => t.key === 'nvidia.com/gpu'), 'tolerates the GPU taint');
      assert.equal(d.spec.template.spec.nodeSelector['nvidia.com/gpu.present'], 'true');
    } else {
      assert.ok(!c.resources.limits?.['nvidia.com/gpu'], `${d.metadata.name}: no GPU`);
      assert.equal(env.TAMPERTRACE_EXECUTION_PROVIDERS, undefined);
    }
    assert.equal(env.TAMPERTRACE_KAFKA_BROKERS, 'kafka-0.kafka.data:9092,kafka-1.kafka.data:9092,kafka-2.kafka.data:9092');
    assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector.observability:4318');
    assert.equal(env.OTEL_SERVICE_NAME, component(d));
  }
});

test('GPU + KEDA values: each stage’s ScaledObject scales its Deployment on its own consumer group and input topic, capped by the partitions', { skip }, () => {
  const objs = render('gpu-keda-values.yaml');
  const prefix = 'prod';
  const partitions = 8;
  for (const [stage, { group, topic }] of Object.entries(STAGES)) {
    const so = ofKind(objs, 'ScaledObject').find((o) => component(o) === stage);
    assert.ok(so, `${stage}: ScaledObject`);
    assert.ok(byName(objs, 'Deployment', so.spec.scaleTargetRef.name), `${stage}: targets a rendered Deployment`);
    assert.equal(component(byName(objs, 'Deployment', so.spec.scaleTargetRef.name)), stage);
    const kafka = so.spec.triggers.filter((t: Obj) => t.type === 'kafka');
    assert.equal(kafka.length, 1);
    assert.equal(kafka[0].metadata.consumerGroup, withPrefix(prefix, group));
    assert.equal(kafka[0].metadata.topic, withPrefix(prefix, topic));
    assert.match(kafka[0].metadata.lagThreshold, /^[1-9]\d*$/);
    assert.ok(so.spec.maxReplicaCount <= partitions, `${stage}: at most ${partitions} replicas (got ${so.spec.maxReplicaCount})`);
  }
  // face-detection asks for 16 replicas at most; the topics have 8 partitions.
  assert.equal(ofKind(objs, 'ScaledObject').find((o) => component(o) === 'face-detection').spec.maxReplicaCount, 8);
  const audit = ofKind(objs, 'ScaledObject').find((o) => component(o) === 'audit');
  assert.equal(audit.spec.triggers[0].metadata.consumerGroup, withPrefix(prefix, ConsumerGroup.audit));
  // KEDA owns the HPA of what it scales: a second HPA would fight it. Ingest consumes no stage topic: CPU HPA.
  const hpas = ofKind(objs, 'HorizontalPodAutoscaler');
  assert.deepEqual(hpas.map(component), ['ingest']);
});

test('the topic Job creates the topics with the configured partitions and replication', { skip }, () => {
  const objs = render('gpu-keda-values.yaml');
  const [job] = ofKind(objs, 'Job');
  const c = job.spec.template.spec.containers[0];
  assert.deepEqual(c.args, ['topics', 'create']);
  const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value]));
  assert.equal(env.TAMPERTRACE_TOPIC_PARTITIONS, '8');
  assert.equal(env.TAMPERTRACE_TOPIC_REPLICATION, '3');
  assert.equal(env.TAMPERTRACE_TOPIC_PREFIX, 'prod');
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
});

test('NetworkPolicies: ingest may reach public HTTPS, the stages only their dependencies', { skip }, () => {
  const objs = render('gpu-keda-values.yaml');
  const policy = (comp: string) => ofKind(objs, 'NetworkPolicy').find((o) => component(o) === comp);
  const egressPorts = (comp: string) => policy(comp).spec.egress.flatMap((r: Obj) => r.ports.map((p: Obj) => p.port)).sort((a: number, b: number) => a - b);
  assert.deepEqual(egressPorts('ingest'), [53, 53, 443, 443, 4317, 4318, 5432, 9000, 9092]);
  assert.deepEqual(egressPorts('face-detection'), [53, 53, 443, 4317, 4318, 9000, 9092]);
  assert.deepEqual(egressPorts('audit'), [53, 53, 4317, 4318, 5432, 9092]);
  assert.deepEqual(egressPorts('provenance'), [53, 53, 443, 4317, 4318, 5432, 9000, 9092], 'provenance: Kafka, S3 (originals) and PostgreSQL (its hashes)');
  const internet = policy('ingest').spec.egress.find((r: Obj) => r.to?.some((p: Obj) => p.ipBlock));
  assert.ok(internet.to[0].ipBlock.except.includes('169.254.0.0/16'), 'no cloud metadata address');
  // The audit service serves health only: no ingress to its gRPC port.
  assert.ok(!policy('audit').spec.ingress.some((r: Obj) => r.ports.some((p: Obj) => p.port === 'grpc')));
});
