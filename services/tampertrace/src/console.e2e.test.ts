// The review console in a real browser (Debian's chromium driven by playwright-core) against
// the embedded pipeline's HTTP side: a forged and a real image submitted through the page, the
// list, the detail page's mask overlay (checked against the mask PNG pixel by pixel), region
// highlights drawn from the stored polygons (checked against them pixel by pixel), region
// chips and explanation, the audit trail and its verification, and another tenant's key. The
// ListAnalyses API itself is checked over HTTP and gRPC with the same two tenants.
// Screenshots go to out/console-e2e/ (ignored by git; CI keeps them as artefacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import sharp from 'sharp';
import { chromium, type Browser, type Page } from 'playwright-core';
import { insideRegion } from '@tampertrace/shared/face-regions';
import { build } from 'vite';
import { FsObjectStore, InMemoryBus, PIPELINE, REPO_ROOT, decodeRgb, grpc, loadConfig, serviceClient, unary } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { astronautPng, cameraPng, grpcError } from '@tampertrace/shared/testing';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { IngestService, ListAnalysesRequestSchema, type ListAnalysesResponse } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { makeSelfBlended, toPng } from '@tampertrace/forgery-localization/sbi';
import { serveIngest } from '@tampertrace/ingest/service';
import type { Explainer } from '@tampertrace/explanation-generation/explainer';
import { loadModels, startPipeline, type Embedded } from './embedded.ts';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SHOTS = path.join(REPO_ROOT, 'out', 'console-e2e');
const CONSOLE = path.join(REPO_ROOT, 'services', 'console');
// Locally the browser tests may be skipped without chromium; under CI its absence is a failure.
const noBrowser = !existsSync(CHROMIUM) && process.env.CI !== 'true' ? `${CHROMIUM} is missing (apt-get install chromium); browser tests skipped` : false;

/**
 * A fixed explanation over the face's real regions, so that the page's word highlighting is
 * tested on known words (a plural, a pair, a side-less region) and a kind of edit, whatever the
 * bundled localizer's levels let the template say about this forgery.
 */
const fixedExplainer: Explainer = {
  name: 'console-test',
  version: '1',
  async explain(input) {
    const f = input.faces[0];
    const has = (n: string) => f.regions.find((r) => r.name === n)?.name;
    const lips = has('lips') ?? has('lip')!;
    const fact = (region: string, cue: 'blur' | 'colour' | 'sharpening') => ({ faceIndex: f.faceIndex, region, cue, value: 1, unit: 'u', statement: `${region} ${cue}` });
    return {
      text: 'The lips are smoother than the rest of the face. Both eyes have a colour that does not match the rest of the face; the nose is sharper and grainier than the surrounding skin. The edit looks recoloured (type confidence 0.83).',
      facts: [fact(lips, 'blur'), fact('right eye', 'colour'), fact('left eye', 'colour'), fact('nose', 'sharpening')],
      editKinds: [{ faceIndex: f.faceIndex, type: 'RECOLOUR', probability: 0.83, threshold: 0.5, statement: 'recolouring 0.83' }],
      generator: { name: this.name, version: this.version },
    };
  },
};

const A = 'tenant-a';
const B = 'tenant-b';
const keys: Record<string, string> = {};
let pipeline: Embedded;
let servers: Awaited<ReturnType<typeof serveIngest>>;
let base: string;
let grpcAddr: string;
let browser: Browser | undefined;
let files: { forged: string; real: string };
/** Requests the page made to anywhere but the console's own origin. */
const foreign: string[] = [];
/** Console errors (CSP violations among them). */
const pageErrors: string[] = [];
/** Analysis ids of tenant A, by file name, once submitted through the page. */
const ids: Record<string, string> = {};

before(async () => {
  // The page under test is the current source: build it as `make install` does.
  await build({ root: CONSOLE, configFile: path.join(CONSOLE, 'vite.config.ts'), logLevel: 'warn' });
  const home = await mkdtemp(path.join(os.tmpdir(), 'tt-console-'));
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home, TAMPERTRACE_GRPC_PORT: '0', TAMPERTRACE_HTTP_PORT: '0', TAMPERTRACE_MAX_INPUT_BYTES: '4000000' });
  // A self-blended forgery of the astronaut (nose, mouth, lip recoloured and blurred), so that
  // the mask and region scores have something to show.
  const src = await decodeRgb(astronautPng(), { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 });
  const models = await loadModels(cfg);
  const [face] = await models.detector.detect(src);
  await Promise.all([models.detector.close(), models.model.close()]);
  const forged = await toPng((await makeSelfBlended(src, face, { regions: ['nose', 'mouth', 'lip'], transform: 'colour+blur', seed: 11 })).rgb);
  files = { forged: path.join(home, 'forged.png'), real: path.join(home, 'camera.png') };
  await writeFile(files.forged, forged);
  await writeFile(files.real, cameraPng());

  const bus = new InMemoryBus();
  const sql = await openPglite(path.join(home, 'db'));
  pipeline = await startPipeline(cfg, pino({ level: 'silent' }), { bus, store: new FsObjectStore(path.join(home, 'objects')), sql, idle: () => bus.idle() }, { pepper: 'console-e2e-test-pepper-0123456789', explainer: fixedExplainer });
  for (const t of [A, B]) keys[t] = (await pipeline.ingest.tenants.create(t)).apiKey;
  servers = await serveIngest(pipeline.ingest, cfg);
  base = `http://127.0.0.1:${servers.httpPort}`;
  grpcAddr = `127.0.0.1:${servers.grpcPort}`;
  // Tenant B owns an analysis too, which A must never see.
  const rb = await pipeline.ingest.submission.submit(astronautPng(), { tenantId: B, sourceName: 'b-astronaut.png' });
  await pipeline.ingest.results.wait(B, rb.analysisId);
  await mkdir(SHOTS, { recursive: true });
  if (!noBrowser) browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
});

after(async () => {
  await browser?.close();
  await servers?.stop();
  await pipeline?.close();
});

/** A fresh browser context (its own sessionStorage) at 1280x1400 with the console open. */
async function openConsole(hash = ''): Promise<Page> {
  // Tall enough that the explanation and the zoomed face view are on screen together: taking the
  // zoom's screenshot must not scroll the hovered region word away.
  const context = await browser!.newContext({ viewport: { width: 1280, height: 1400 } });
  const page = await context.newPage();
  page.on('request', (r) => {
    if (!r.url().startsWith(base) && !/^(blob|data):/.test(r.url())) foreign.push(r.url());
  });
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(`${base}/console/${hash}`);
  return page;
}

async function useKey(page: Page, key: string): Promise<void> {
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Use key' }).click();
}

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

test('the console is served under /console/ with a strict CSP, without a key; other paths still need one', async () => {
  const res = await fetch(`${base}/console/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/html/);
  assert.match(res.headers.get('content-security-policy')!, /default-src 'self'/);
  const html = await res.text();
  const js = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)![1];
  const asset = await fetch(base + js);
  assert.equal(asset.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.match(asset.headers.get('cache-control')!, /immutable/);
  // Sent as written (fetch would normalise the dots away): nothing outside dist/ comes back.
  for (const p of ['/console/../package.json', '/console/%2e%2e/%2e%2e/package.json', '/console/..%2fvite.config.ts', '/console/assets/..%2f..%2fpackage.json', '/console/.env', '/console/assets/']) {
    const status = await new Promise<number>((resolve, reject) => http.get({ host: '127.0.0.1', port: servers.httpPort, path: p }, (res) => resolve(res.resume().statusCode!)).on('error', reject));
    assert.ok([401, 404].includes(status), `${p}: ${status}`);
  }
  assert.equal((await fetch(`${base}/console`, { redirect: 'manual' })).headers.get('location'), '/console/');
  assert.equal((await fetch(`${base}/v1/analyses`)).status, 401);
});

test('ListAnalyses over HTTP and gRPC lists only the caller\'s analyses, newest first, with filters and pages', async () => {
  const mine = [];
  for (const name of ['one', 'two', 'three']) {
    const noise = await sharp({ create: { width: 64 + mine.length, height: 64, channels: 3, background: { r: 40 * mine.length, g: 90, b: 30 } } }).png().toBuffer();
    const r = await pipeline.ingest.submission.submit(noise, { tenantId: A, sourceName: `${name}.png` });
    await pipeline.ingest.results.wait(A, r.analysisId);
    mine.unshift(r.analysisId);
  }
  const get = async (q: string, key = keys[A]) => {
    const res = await fetch(`${base}/v1/analyses?${q}`, { headers: { authorization: `Bearer ${key}` } });
    return { status: res.status, body: await res.json() };
  };
  const first = await get('pageSize=2');
  assert.equal(first.status, 200);
  assert.deepEqual(first.body.analyses.map((a: { analysisId: string }) => a.analysisId), mine.slice(0, 2));
  const second = await get(`pageSize=2&pageToken=${first.body.nextPageToken}`);
  assert.deepEqual(second.body.analyses.map((a: { analysisId: string }) => a.analysisId), mine.slice(2));
  assert.equal(second.body.nextPageToken, '');
  assert.equal((await get('status=NO_FACE')).body.analyses.length, 3);
  assert.equal((await get('status=COMPLETED')).body.analyses.length, 0);
  assert.equal((await get('verdict=LIKELY_FORGED&minForgeryScore=0.5')).body.analyses.length, 0);
  // Tenant B sees its own analysis only.
  const b = await get('', keys[B]);
  assert.deepEqual(b.body.analyses.map((a: { sourceName: string }) => a.sourceName), ['b-astronaut.png']);
  assert.equal((await get('pageToken=bm9uc2Vuc2U')).status, 422);
  assert.equal((await get('minForgeryScore=2')).status, 422);
  assert.equal((await get('status=SIDEWAYS')).status, 422);

  const client = serviceClient(IngestService, grpcAddr, { apiKey: keys[A] });
  try {
    const res = await unary<ListAnalysesResponse>(client, 'listAnalyses', create(ListAnalysesRequestSchema, { status: AnalysisStatus.NO_FACE }));
    assert.deepEqual(res.analyses.map((a) => a.analysisId), mine);
    assert.ok(res.analyses.every((a) => a.tenantId === A));
    const bad = await grpcError(unary(client, 'listAnalyses', create(ListAnalysesRequestSchema, { pageToken: 'x' })));
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
  } finally {
    client.close();
  }
});

test('a forged and a real image submitted through the page complete, each with its stages shown', { skip: noBrowser, timeout: 180_000 }, async () => {
  const page = await openConsole();
  await page.getByRole('note').filter({ hasText: 'API key' }).waitFor();
  await useKey(page, keys[A]);
  await page.locator('#files').setInputFiles([files.forged, files.real]);
  const cards = page.locator('.submission');
  await assert.doesNotReject(cards.nth(1).waitFor({ timeout: 5000 }), 'both submissions show at once');
  for (const name of ['forged.png', 'camera.png']) {
    const card = page.locator('.submission[data-status="completed"]', { hasText: name });
    await card.waitFor({ timeout: 120_000 });
    // One step for ingest and one per stage of the list (shared/src/pipeline.ts).
    assert.equal(await card.locator('.step.done').count(), 1 + PIPELINE.length, `${name}: every stage done`);
    assert.match((await card.locator('.state').textContent())!, /score \d\.\d\d/);
    ids[name] = (await card.getAttribute('data-analysis-id'))!;
  }
  await shot(page, '1-submit');

  // The list: newest first, as the API says, and its filters.
  await page.getByRole('link', { name: 'Analyses' }).click();
  const rows = page.locator('table.analyses tbody tr');
  await rows.first().waitFor();
  const listed = await rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.analysisId));
  const api = await (await fetch(`${base}/v1/analyses?pageSize=20`, { headers: { authorization: `Bearer ${keys[A]}` } })).json();
  assert.deepEqual(listed, api.analyses.map((a: { analysisId: string }) => a.analysisId));
  assert.ok(listed.includes(ids['forged.png']) && listed.includes(ids['camera.png']));
  await page.getByLabel('Status').selectOption('COMPLETED');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => location.hash.includes('status=COMPLETED'));
  await page.locator('table.analyses tbody tr').first().waitFor();
  assert.deepEqual((await rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.analysisId))).sort(), [ids['forged.png'], ids['camera.png']].sort());
  await shot(page, '2-analyses');
  await page.context().close();
});

test('the detail page draws the mask where the mask is, with region chips, explanation and a verified audit trail', { skip: noBrowser, timeout: 120_000 }, async () => {
  const id = ids['forged.png'];
  assert.ok(id, 'the submission test ran');
  const a = await (await fetch(`${base}/v1/analyses/${id}`, { headers: { authorization: `Bearer ${keys[A]}` } })).json();
  const page = await openConsole();
  await useKey(page, keys[A]);
  await page.goto(`${base}/console/#/analyses/${id}`);
  await page.locator('#mask-layer').waitFor({ state: 'attached' });
  const stage = page.locator('#stage');

  // Overlay: the stage with the mask at full opacity against the stage without it. The changed
  // pixels must be the mask's pixels (scaled to the displayed size).
  await page.locator('#opacity').fill('100');
  await page.getByRole('button', { name: 'Face boxes', exact: true }).click();
  assert.equal(await page.getByRole('button', { name: 'Mask', exact: true }).getAttribute('aria-pressed'), 'true');
  const withMask = await stage.screenshot();
  await page.getByRole('button', { name: 'Mask', exact: true }).click();
  const without = await stage.screenshot();
  const { data: on, info } = await sharp(withMask).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const { data: off } = await sharp(without).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const maskPng = Buffer.from(await (await fetch(`${base}/v1/analyses/${id}/mask`, { headers: { authorization: `Bearer ${keys[A]}` } })).arrayBuffer());
  const mask = await sharp(maskPng).greyscale().resize(info.width, info.height, { kernel: 'nearest', fit: 'fill' }).raw().toBuffer();
  let inMask = 0, inMaskRed = 0, outside = 0, outsideChanged = 0;
  for (let i = 0; i < mask.length; i++) {
    const [r, g, b] = [on[i * 3], on[i * 3 + 1], on[i * 3 + 2]];
    const changed = Math.abs(r - off[i * 3]) + Math.abs(g - off[i * 3 + 1]) + Math.abs(b - off[i * 3 + 2]) > 24;
    if (mask[i] >= 128) {
      inMask++;
      if (r > 200 && g < 80 && b < 80) inMaskRed++;
    } else {
      outside++;
      if (changed) outsideChanged++;
    }
  }
  assert.ok(inMask > 100, `the forgery's mask is not empty (${inMask} px)`);
  assert.ok(inMaskRed / inMask > 0.9, `mask pixels are drawn red: ${inMaskRed}/${inMask}`);
  assert.ok(outsideChanged / outside < 0.02, `pixels outside the mask are left alone: ${outsideChanged}/${outside}`);
  await page.getByRole('button', { name: 'Mask', exact: true }).click();
  await page.getByRole('button', { name: 'Face boxes', exact: true }).click();
  await page.locator('#opacity').fill('60');

  // Region chips: one per scored region of the face, with its score; focus highlights it.
  const chips = page.locator('.chip');
  assert.equal(await chips.count(), a.faces[0].regions.length);
  const top = a.faces[0].regions[0];
  assert.match((await chips.first().getAttribute('aria-label'))!, new RegExp(`^${top.name}: score ${top.score.toFixed(2)}`));
  await chips.first().focus();
  assert.equal(await page.locator('#region-layer').getAttribute('data-region'), top.name);
  assert.ok(await page.locator('#region-layer').isVisible());
  // It is drawn from the polygons stored with the analysis, holes cut out: the painted canvas
  // pixels are those whose centres the stored polygons hold (up to anti-aliased edges).
  assert.ok(top.polygons?.length > 0, 'regions carry their polygons');
  assert.equal(await page.locator('#region-layer').getAttribute('data-shape'), 'polygons');
  const painted = await page.locator('#region-layer').evaluate((c) => {
    const canvas = c as HTMLCanvasElement;
    const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    // fill alpha is 0.6: 153 where a pixel is covered whole, less on anti-aliased edges
    const on: number[] = [];
    const solid: number[] = [];
    for (let i = 0; i < d.length / 4; i++) {
      if (d[i * 4 + 3] > 0) on.push(i);
      if (d[i * 4 + 3] >= 145) solid.push(i);
    }
    return { width: canvas.width, height: canvas.height, on, solid };
  });
  const polygons = top.polygons.map((p: { points: { x?: number; y?: number }[]; hole?: boolean }) => ({ points: p.points.map((q) => ({ x: q.x ?? 0, y: q.y ?? 0 })), hole: p.hole ?? false }));
  const solid = polygons.filter((p: { hole: boolean }) => !p.hole).flatMap((p: { points: { x: number; y: number }[] }) => p.points);
  const x0 = Math.max(0, Math.floor(Math.min(...solid.map((p: { x: number }) => p.x))));
  const y0 = Math.max(0, Math.floor(Math.min(...solid.map((p: { y: number }) => p.y))));
  const k = painted.width / (Math.min(a.image.width, Math.ceil(Math.max(...solid.map((p: { x: number }) => p.x)))) - x0);
  const inside = new Set<number>();
  for (let j = 0; j < painted.height; j++) for (let i = 0; i < painted.width; i++) if (insideRegion(polygons, x0 + (i + 0.5) / k, y0 + (j + 0.5) / k)) inside.add(j * painted.width + i);
  const touched = painted.on.filter((i) => inside.has(i)).length;
  const solidInside = painted.solid.filter((i) => inside.has(i)).length;
  assert.ok(inside.size > 20, `the region has pixels (${inside.size})`);
  assert.ok(touched / inside.size > 0.98, `every pixel inside the polygons is painted: ${touched}/${inside.size}`);
  assert.ok(solidInside / painted.solid.length > 0.98 && painted.solid.length > 0.5 * inside.size, `fully painted pixels lie inside: ${solidInside}/${painted.solid.length} (inside ${inside.size})`);

  // The explanation as the API has it; every region word, plural or pair included, highlights
  // its regions on the image and in the zoomed face view.
  assert.equal((await page.locator('#explanation').textContent())!.trim(), a.explanation.text.trim());
  const lips = a.faces[0].regions.some((r: { name: string }) => r.name === 'lips') ? 'lips' : 'lip';
  const words = page.locator('#explanation .region-word');
  assert.deepEqual(await words.evaluateAll((ws) => ws.map((w) => [w.textContent, ((w as HTMLElement).dataset.region ?? '').split(', ').sort().join(', ')])), [
    ['lips', lips], ['Both eyes', 'left eye, right eye'], ['nose', 'nose'],
  ]);
  const zoom = page.locator('#zoom');
  assert.ok(await zoom.isVisible(), 'a zoomed view of the face beside the image');
  assert.equal(await zoom.getAttribute('data-face'), '0');
  const zoomBefore = await sharp(await zoom.screenshot()).removeAlpha().raw().toBuffer();
  for (let i = 0; i < 3; i++) {
    const word = words.nth(i);
    const regions = (await word.getAttribute('data-region'))!;
    await page.locator('#region-layer').evaluate((c) => ((c as HTMLElement).hidden = true));
    await word.hover();
    assert.equal(await page.locator('#region-layer').getAttribute('data-region'), regions);
    assert.ok(await page.locator('#region-layer').isVisible());
    assert.equal(await zoom.getAttribute('data-region'), regions, 'the zoomed view shows the same regions');
  }
  // The zoomed view is the face itself (not blank) and shows the highlight (cyan added somewhere).
  await words.first().hover();
  const zoomLit = await sharp(await zoom.screenshot()).removeAlpha().raw().toBuffer();
  const distinct = new Set<number>();
  for (let i = 0; i < zoomBefore.length; i += 3 * 97) distinct.add(zoomBefore[i] >> 4);
  assert.ok(distinct.size > 4, `the zoomed view shows an image (${distinct.size} grey levels)`);
  let cyanner = 0;
  for (let i = 0; i < zoomLit.length; i += 3) if (zoomLit[i + 2] - zoomBefore[i + 2] > 30 && zoomLit[i] <= zoomBefore[i] + 5) cyanner++;
  assert.ok(cyanner > 50, `the highlight is drawn in the zoomed view (${cyanner} px)`);
  // The kind of edit, by face.
  assert.match((await page.locator('.edit-kinds').first().textContent())!, /Kind of edit: recolouring 0\.83/);
  assert.equal(await page.locator('.edit-kind.named').count(), 1);
  assert.equal((await page.locator('#explanation-by').textContent())!.trim(), 'Written by console-test 1.');
  assert.ok((await page.locator('.facts').textContent())!.includes('recolouring 0.83'), 'the kind-of-edit fact is listed');

  // Models, timings and downloads.
  for (const m of a.models) assert.ok((await page.locator('.models').textContent())!.includes(`${m.name} ${m.version}`));
  assert.equal(await page.locator('table.timings tbody tr').count(), a.timings.length);
  for (const name of ['Mask PNG', 'Heatmap PNG', 'Analysis JSON']) assert.ok(await page.getByRole('link', { name }).getAttribute('download'));

  // The audit trail: the API's records, and the chain verified.
  const trail = await (await fetch(`${base}/v1/audit/trail?analysisId=${id}`, { headers: { authorization: `Bearer ${keys[A]}` } })).json();
  assert.ok(trail.records.length >= 4);
  await page.locator('#chain.ok').waitFor();
  assert.equal(await page.locator('#trail tbody tr').count(), trail.records.length);
  assert.match((await page.locator('#chain').textContent())!, /Chain verified/);

  // Laptop screen: nothing wider than the window.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
  await page.getByRole('button', { name: 'Heatmap', exact: true }).click();
  await shot(page, '3-detail-forged');
  await page.getByRole('button', { name: 'Heatmap', exact: true }).click();
  await page.goto(`${base}/console/#/analyses/${ids['camera.png']}`);
  await page.locator('#chain.ok').waitFor();
  await shot(page, '4-detail-real');
  await page.context().close();
});

test('another tenant\'s key cannot open the analysis URL', { skip: noBrowser }, async () => {
  const id = ids['forged.png'];
  assert.ok(id, 'the submission test ran');
  const page = await openConsole(`#/analyses/${id}`);
  await useKey(page, keys[B]);
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match((await alert.textContent())!, /No analysis .* for this API key/);
  assert.equal(await page.locator('#stage, #trail, .chip').count(), 0);
  await shot(page, '5-other-tenant');
  await page.context().close();
});

test('the page loaded nothing from elsewhere and broke no rule of its CSP', { skip: noBrowser }, () => {
  assert.deepEqual(foreign, []);
  assert.deepEqual(pageErrors.filter((e) => !/status of 40[14]/.test(e)), []);
});
