// The Grafana dashboard and the Prometheus config in deploy/observability must name what the
// services really export: a renamed metric would otherwise leave an empty panel nobody notices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './config.ts';
import { collectProcessMetrics, registry } from './metrics.ts';

const dashboard = JSON.parse(readFileSync(path.join(REPO_ROOT, 'deploy/observability/grafana/dashboards/tampertrace.json'), 'utf8')) as {
  panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
};

test('every metric a dashboard panel queries is one the services export, with the labels it groups by', async () => {
  collectProcessMetrics();
  const exported = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, m]));
  const suffixes = ['_bucket', '_sum', '_count'];
  const labelsOf = (name: string) => new Set([...((registry.getSingleMetric(name) as unknown as { labelNames?: string[] })?.labelNames ?? []), 'le', 'job', 'instance']);
  for (const p of dashboard.panels) {
    assert.ok(p.targets.length > 0, p.title);
    for (const { expr } of p.targets) {
      const names = [...expr.matchAll(/\b((?:tampertrace|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]);
      assert.ok(names.length > 0, `${p.title}: ${expr}`);
      for (const n of names) {
        const base = suffixes.reduce((b, s) => (b.endsWith(s) && exported.has(b.slice(0, -s.length)) ? b.slice(0, -s.length) : b), n);
        assert.ok(exported.has(base), `${p.title}: ${n} is not exported`);
        for (const by of expr.matchAll(/by \(([^)]*)\)/g)) {
          for (const l of by[1].split(',').map((x) => x.trim())) assert.ok(labelsOf(base).has(l), `${p.title}: ${base} has no label ${l}`);
        }
      }
    }
  }
  // The key panels the issue asks for are there.
  const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join('|');
  for (const want of ['throughput', 'p95 stage latency', 'lag', 'errors', 'dead letters']) assert.ok(titles.includes(want), want);
});

test('Prometheus scrapes every service on its ops port', () => {
  const prom = readFileSync(path.join(REPO_ROOT, 'deploy/observability/prometheus.yml'), 'utf8');
  for (const s of ['ingest', 'face-detection', 'forgery-localization', 'explanation-generation', 'audit']) assert.match(prom, new RegExp(`targets: \\["${s}:9464"\\]`));
});
