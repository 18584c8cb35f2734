// The speed benchmark's plot as SVG text (no plotting library): achieved throughput and latency
// (p50 solid, p99 dashed, log scale) against offered load (as really submitted), one line per pipeline mode, with the
// raw loop's throughput for reference.
//
// speed.ts writes it with the JSON; to draw it again from a JSON file:
// `node --import tsx bench/plot.ts bench/results/speed.json` (writes speed.svg beside it).
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface Point {
  offeredPerSecond: number;
  /** What really went out (the x axis): embedded mode's pipeline can slow its own load generator. */
  submittedPerSecond: number;
  achievedPerSecond: number;
  afterOverload?: boolean;
  latencyMs: { p50: number; p99: number };
}

export interface PlotInput {
  date: string;
  machine: string;
  machineDetail: { loadAverageAtStart: number[]; loadAverageAtEnd: number[] };
  workload: string;
  raw: { imagesPerSecond: number };
  embedded: { sweep: Point[] };
  distributed: { sweep: Point[] } | null;
}

const W = 900;
const H = 450;
const PANEL = { w: 360, h: 280, top: 80 };
const LEFT = [70, 510];
const COLOURS = { embedded: '#1f77b4', distributed: '#d62728', raw: '#555' };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** Rounded-up axis end and tick step for a linear axis from 0. */
function niceMax(x: number): { max: number; step: number } {
  const raw = x / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  return { max: Math.ceil(x / step) * step, step };
}

export function speedSvg(r: PlotInput): string {
  // The recovery level (offered again after the overload) is in the JSON and the table, not in the lines.
  const bySent = (pts: Point[]) => pts.filter((p) => !p.afterOverload).sort((a, b) => a.submittedPerSecond - b.submittedPerSecond);
  const modes = [
    ['embedded', bySent(r.embedded.sweep)],
    ['distributed', bySent(r.distributed?.sweep ?? [])],
  ] as const;
  const all = modes.flatMap(([, pts]) => pts);
  const xAxis = niceMax(Math.max(...all.map((p) => p.submittedPerSecond), 0.1));
  const yThr = niceMax(Math.max(...all.map((p) => Math.max(p.achievedPerSecond, p.submittedPerSecond)), r.raw.imagesPerSecond, 0.1));
  const lats = all.flatMap((p) => [p.latencyMs.p50, p.latencyMs.p99]).filter((x) => x > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...lats, 100)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...lats, 1000)));
  const out: string[] = [];
  const px = (left: number, x: number) => left + (x / xAxis.max) * PANEL.w;
  const pyLin = (y: number) => PANEL.top + PANEL.h - (y / yThr.max) * PANEL.h;
  const pyLog = (y: number) => PANEL.top + PANEL.h - ((Math.log10(Math.max(y, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * PANEL.h;
  const text = (x: number, y: number, s: string, extra = '') => out.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${extra}>${esc(s)}</text>`);
  const line = (pts: [number, number][], colour: string, dash = '') =>
    out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''} points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`);
  const dots = (pts: [number, number][], colour: string) => pts.forEach(([x, y]) => out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${colour}"/>`));

  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  text(20, 22, `TamperTrace speed against offered load (${r.date.slice(0, 16).replace('T', ' ')} UTC)`, 'font-size="15" font-weight="bold"');
  text(20, 40, `${r.machine}; load average ${r.machineDetail.loadAverageAtStart[0]} at start, ${r.machineDetail.loadAverageAtEnd[0]} at end`);
  text(20, 56, r.workload.length > 140 ? r.workload.slice(0, 137) + '...' : r.workload, 'fill="#555"');

  for (const [i, left] of LEFT.entries()) {
    out.push(`<rect x="${left}" y="${PANEL.top}" width="${PANEL.w}" height="${PANEL.h}" fill="none" stroke="#999"/>`);
    for (let x = 0; x <= xAxis.max + 1e-9; x += xAxis.step) {
      out.push(`<line x1="${px(left, x)}" y1="${PANEL.top + PANEL.h}" x2="${px(left, x)}" y2="${PANEL.top + PANEL.h + 4}" stroke="#999"/>`);
      text(px(left, x) - 8, PANEL.top + PANEL.h + 16, fmt(x));
    }
    text(left + PANEL.w / 2 - 90, PANEL.top + PANEL.h + 34, 'offered load, as submitted (images/s)');
    if (i === 0) {
      for (let y = 0; y <= yThr.max + 1e-9; y += yThr.step) {
        out.push(`<line x1="${left}" y1="${pyLin(y)}" x2="${left + PANEL.w}" y2="${pyLin(y)}" stroke="#eee"/>`);
        text(left - 34, pyLin(y) + 4, fmt(y));
      }
      text(left, PANEL.top - 8, 'achieved throughput (images/s)', 'font-weight="bold"');
      // Offered = achieved, and the raw loop's rate, for reference.
      line([[px(left, 0), pyLin(0)], [px(left, Math.min(xAxis.max, yThr.max)), pyLin(Math.min(xAxis.max, yThr.max))]], '#ccc', '2,3');
      line([[left, pyLin(r.raw.imagesPerSecond)], [left + PANEL.w, pyLin(r.raw.imagesPerSecond)]], COLOURS.raw, '6,3');
      text(left + PANEL.w - 120, pyLin(r.raw.imagesPerSecond) - 5, `raw loop ${fmt(r.raw.imagesPerSecond)}/s`, `fill="${COLOURS.raw}"`);
      for (const [name, pts] of modes) {
        const xy = pts.map((p) => [px(left, p.submittedPerSecond), pyLin(p.achievedPerSecond)] as [number, number]);
        line(xy, COLOURS[name]);
        dots(xy, COLOURS[name]);
      }
    } else {
      for (let y = lo; y <= hi * 1.0001; y *= 10) {
        out.push(`<line x1="${left}" y1="${pyLog(y)}" x2="${left + PANEL.w}" y2="${pyLog(y)}" stroke="#eee"/>`);
        text(left - 44, pyLog(y) + 4, `${y >= 1000 ? `${y / 1000} s` : `${y} ms`}`);
      }
      text(left, PANEL.top - 8, 'latency, submit to result (p50 solid, p99 dashed)', 'font-weight="bold"');
      for (const [name, pts] of modes) {
        const p50 = pts.map((p) => [px(left, p.submittedPerSecond), pyLog(p.latencyMs.p50)] as [number, number]);
        const p99 = pts.map((p) => [px(left, p.submittedPerSecond), pyLog(p.latencyMs.p99)] as [number, number]);
        line(p50, COLOURS[name]);
        line(p99, COLOURS[name], '5,4');
        dots([...p50, ...p99], COLOURS[name]);
      }
    }
  }
  // Legend.
  const ly = H - 14;
  for (const [k, [name, colour]] of Object.entries({ embedded: COLOURS.embedded, distributed: COLOURS.distributed }).entries()) {
    out.push(`<line x1="${70 + k * 200}" y1="${ly - 4}" x2="${100 + k * 200}" y2="${ly - 4}" stroke="${colour}" stroke-width="2"/>`);
    text(106 + k * 200, ly, name === 'distributed' && !r.distributed ? 'distributed (not measured)' : `${name} pipeline`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2] ?? 'bench/results/speed.json';
  writeFileSync(file.replace(/\.json$/, '') + '.svg', speedSvg(JSON.parse(readFileSync(file, 'utf8')) as PlotInput));
}
