// Analysis detail: the image with face boxes, the mask and heatmap as toggled overlays with an
// opacity slider, a zoomed view of one face beside it, region chips and the kind of edit per
// face, the explanation (each region word, plurals and synonyms included, highlights its
// regions), models, stage timings, downloads, and the audit trail with its chain verification.
import { ApiError, api, type Analysis, type AuditRecord, type Face } from './api.ts';
import { h, replace } from './dom.ts';
import { editKinds, segments } from './explain.ts';
import { percent, score, stageLabel, statusLabel, verdictLabel, when } from './format.ts';
import { regionShape, type PolygonShape, type RegionShape } from './regions.ts';

export function renderDetail(root: HTMLElement, id: string, signal: AbortSignal): void {
  replace(root, h('p', { class: 'muted' }, 'Loading…'));
  void (async () => {
    try {
      let a = await api.get(id);
      if (a.status === 'ANALYSIS_STATUS_PENDING') {
        replace(root, h('h1', {}, a.sourceName || 'Analysis'), h('p', { role: 'status' }, 'Running… this page fills in when the analysis is done.'));
        a = (await api.watch(id, () => {}, signal)) ?? a;
      }
      if (signal.aborted) return;
      await show(root, a, signal);
    } catch (err) {
      if (signal.aborted) return;
      const notFound = err instanceof ApiError && (err.status === 404 || err.status === 401);
      replace(
        root,
        h('h1', {}, 'Analysis'),
        h('p', { class: 'error', role: 'alert' }, notFound ? `No analysis ${id} for this API key.` : `Could not load the analysis: ${(err as Error).message}`),
      );
    }
  })();
}

/** Object URLs made for this page, released when it goes. */
function blobUrl(blob: Blob, signal: AbortSignal): string {
  const url = URL.createObjectURL(blob);
  signal.addEventListener('abort', () => URL.revokeObjectURL(url), { once: true });
  return url;
}

async function show(root: HTMLElement, a: Analysis, signal: AbortSignal): Promise<void> {
  const art = a.artifacts ?? ({} as NonNullable<Analysis['artifacts']>);
  const has = (k: 'original' | 'mask' | 'heatmap') => !!art[k]?.key;
  const [original, mask, heatmap] = await Promise.all(
    (['original', 'mask', 'heatmap'] as const).map((k) => (has(k) ? api.artifact(a.analysisId, k).catch(() => undefined) : undefined)),
  );
  if (signal.aborted) return;
  const name = a.sourceName || a.analysisId;
  const base = name.replace(/^.*[\\/]/, '').replace(/\.[a-z0-9]+$/i, '') || a.analysisId;

  const viewer = original && a.image ? await imageViewer(a, original, mask, heatmap, signal) : undefined;
  const summary = h(
    'dl',
    { class: 'summary' },
    h('dt', {}, 'Status'),
    h('dd', { id: 'status' }, statusLabel(a.status)),
    a.status === 'ANALYSIS_STATUS_COMPLETED' && [h('dt', {}, 'Verdict'), h('dd', {}, h('span', { class: `verdict ${a.verdict}` }, verdictLabel(a.verdict)))],
    a.status === 'ANALYSIS_STATUS_COMPLETED' && [h('dt', {}, 'Highest face score'), h('dd', {}, score(a.maxForgeryScore))],
    h('dt', {}, 'Faces'),
    h('dd', {}, a.faces.length),
    a.error && [h('dt', {}, 'Error'), h('dd', { class: 'bad' }, `${a.error.code.replace('ERROR_CODE_', '')}: ${a.error.message}`)],
    h('dt', {}, 'Submitted'),
    h('dd', {}, when(a.submittedAt)),
    a.image && [h('dt', {}, 'Image'), h('dd', {}, `${a.image.format} ${a.image.width}×${a.image.height}`)],
    h('dt', {}, 'Analysis id'),
    h('dd', {}, h('code', {}, a.analysisId)),
  );

  const downloads = h(
    'ul',
    { class: 'downloads' },
    mask && h('li', {}, h('a', { href: blobUrl(mask, signal), download: `${base}.mask.png` }, 'Mask PNG')),
    heatmap && h('li', {}, h('a', { href: blobUrl(heatmap, signal), download: `${base}.heatmap.png` }, 'Heatmap PNG')),
    original && h('li', {}, h('a', { href: blobUrl(original, signal), download: name.replace(/^.*[\\/]/, '') || 'original' }, 'Original')),
    h('li', {}, h('a', { href: blobUrl(new Blob([JSON.stringify(a, null, 2)], { type: 'application/json' }), signal), download: `${base}.json` }, 'Analysis JSON')),
  );

  const audit = h('section', { class: 'audit', 'aria-labelledby': 'audit-h' }, h('h2', { id: 'audit-h' }, 'Audit trail'), h('p', { class: 'muted' }, 'Loading…'));
  replace(
    root,
    h('h1', {}, name),
    h('div', { class: 'detail' }, h('div', { class: 'left' }, viewer?.element ?? h('p', { class: 'muted' }, 'No image to show.')), h('div', { class: 'right' }, summary, provenanceSection(a), regionsSection(a, viewer), explanationSection(a, viewer))),
    h('div', { class: 'columns' }, modelsSection(a), timingsSection(a), h('section', { 'aria-labelledby': 'dl-h' }, h('h2', { id: 'dl-h' }, 'Downloads'), downloads)),
    audit,
  );
  void auditSection(audit, a.analysisId, signal);
}

interface Viewer {
  element: HTMLElement;
  /** Highlights the named regions of one face (on the image and in the zoomed view, which turns to that face). */
  highlight(face: Face, regions: string[]): void;
  clear(): void;
}

/** Side of the zoomed face view, canvas pixels. */
const ZOOM = 280;

/** The original with face boxes, the mask and heatmap layers, and a region highlight layer. */
async function imageViewer(a: Analysis, original: Blob, mask: Blob | undefined, heatmap: Blob | undefined, signal: AbortSignal): Promise<Viewer> {
  const { width: W, height: H } = a.image!;
  const pct = (v: number, of: number) => `${(100 * v) / of}%`;
  const stage = h('div', { class: 'stage', id: 'stage' }, h('img', { src: blobUrl(original, signal), alt: `The submitted image, ${W}×${H} pixels`, class: 'original' }));
  const layers: Record<string, HTMLCanvasElement> = {};
  if (mask) layers.mask = await layer(mask, W, H, (v) => (v >= 128 ? [255, 32, 32, 255] : [0, 0, 0, 0]));
  // Heatmap: probability as colour, yellow to red, transparent where it is near 0.
  if (heatmap) layers.heatmap = await layer(heatmap, W, H, (v) => [255, Math.round(255 * (1 - v / 255)), 0, Math.round(Math.min(1, (v / 255) * 1.6) * 255)]);
  for (const [k, c] of Object.entries(layers)) {
    c.className = `layer ${k}-layer`;
    c.id = `${k}-layer`;
    stage.append(c);
  }
  const boxes = a.faces.map((f) =>
    f.box ? h('div', { class: 'face-box' }, h('span', {}, `face ${f.index + 1}`)) : undefined,
  );
  a.faces.forEach((f, i) => {
    const el = boxes[i];
    if (!el || !f.box) return;
    // Positioned through the CSSOM (the CSP forbids inline style attributes).
    Object.assign(el.style, { left: pct(f.box.x, W), top: pct(f.box.y, H), width: pct(f.box.width, W), height: pct(f.box.height, H) });
    stage.append(el);
  });
  const highlightCanvas = h('canvas', { class: 'layer region-layer', id: 'region-layer', hidden: true });
  stage.append(highlightCanvas);

  // The zoomed view: the localizer's crop of one face (box x1.5, square), redrawn from the same
  // image and layers whenever they change. Faces are small in most photos.
  const photo = stage.querySelector('img.original') as HTMLImageElement;
  const zoomCanvas = h('canvas', { width: ZOOM, height: ZOOM, id: 'zoom', class: 'zoom-canvas', role: 'img' });
  const zoomCaption = h('figcaption', { id: 'zoom-caption' });
  const judged = [...a.faces].filter((f) => f.box).sort((x, y) => y.forgeryScore - x.forgeryScore);
  let zoomFace: Face | undefined = judged[0];
  const drawZoom = () => {
    const f = zoomFace;
    if (!f?.box || !photo.complete || photo.naturalWidth === 0) return;
    const side = Math.max(f.box.width, f.box.height) * 1.5;
    const sx = f.box.x + f.box.width / 2 - side / 2;
    const sy = f.box.y + f.box.height / 2 - side / 2;
    const k = ZOOM / side;
    const ctx = zoomCanvas.getContext('2d')!;
    ctx.globalAlpha = 1;
    ctx.fillStyle = '#111';
    ctx.fillRect(0, 0, ZOOM, ZOOM);
    // Image pixels -> canvas: the original's natural size may differ from the analysis's (it is the same image).
    const sImg = photo.naturalWidth / W;
    ctx.drawImage(photo, sx * sImg, sy * sImg, side * sImg, side * sImg, 0, 0, ZOOM, ZOOM);
    for (const c of Object.values(layers)) {
      if (c.hidden) continue;
      ctx.globalAlpha = Number(opacity.value) / 100;
      ctx.drawImage(c, sx, sy, side, side, 0, 0, ZOOM, ZOOM);
    }
    ctx.globalAlpha = 1;
    const win = highlightWindow;
    if (!highlightCanvas.hidden && win && highlightCanvas.dataset.face === String(f.index)) {
      ctx.drawImage(highlightCanvas, 0, 0, highlightCanvas.width, highlightCanvas.height, (win.x - sx) * k, (win.y - sy) * k, win.width * k, win.height * k);
    }
    zoomCanvas.dataset.face = String(f.index);
    zoomCanvas.dataset.region = highlightCanvas.hidden ? '' : (highlightCanvas.dataset.region ?? '');
    zoomCanvas.setAttribute('aria-label', `Face ${f.index + 1}, enlarged${zoomCanvas.dataset.region ? `, ${zoomCanvas.dataset.region} highlighted` : ''}`);
    zoomCaption.textContent = `Face ${f.index + 1} (score ${score(f.forgeryScore)})${f.quality === 'FACE_QUALITY_TOO_SMALL' ? ': too small to judge' : f.quality === 'FACE_QUALITY_TOO_DEGRADED' ? ': too degraded to judge' : ''}`;
  };
  let highlightWindow: { x: number; y: number; width: number; height: number } | undefined;
  const pickers = judged.length > 1
    ? h('div', { class: 'zoom-faces', role: 'group', 'aria-label': 'Face to enlarge' }, ...judged.map((f) => {
        const b = h('button', { type: 'button', class: 'toggle', 'data-face': f.index }, `Face ${f.index + 1}`);
        b.addEventListener('click', () => ((zoomFace = f), drawZoom()));
        return b;
      }))
    : undefined;
  const zoom = zoomFace ? h('figure', { class: 'zoom' }, zoomCanvas, zoomCaption, pickers) : undefined;
  if (!photo.complete) photo.addEventListener('load', drawZoom, { once: true });

  const opacity = h('input', { type: 'range', id: 'opacity', min: 0, max: 100, value: 60 });
  const opacityOut = h('output', { for: 'opacity' }, '60%');
  const applyOpacity = () => {
    for (const c of Object.values(layers)) c.style.opacity = String(Number(opacity.value) / 100);
    opacityOut.textContent = `${opacity.value}%`;
  };
  opacity.addEventListener('input', applyOpacity);
  opacity.addEventListener('input', drawZoom);
  applyOpacity();

  const toggle = (label: string, target: HTMLElement[], on: boolean, id: string) => {
    const b = h('button', { type: 'button', class: 'toggle', id, 'aria-pressed': String(on) }, label);
    const set = (v: boolean) => {
      b.setAttribute('aria-pressed', String(v));
      for (const t of target) t.hidden = !v;
    };
    set(on);
    b.addEventListener('click', () => (set(b.getAttribute('aria-pressed') !== 'true'), drawZoom()));
    return b;
  };
  const controls = h(
    'div',
    { class: 'controls', role: 'group', 'aria-label': 'Layers' },
    layers.mask && toggle('Mask', [layers.mask], true, 'toggle-mask'),
    layers.heatmap && toggle('Heatmap', [layers.heatmap], false, 'toggle-heatmap'),
    boxes.some(Boolean) && toggle('Face boxes', boxes.filter((b): b is HTMLDivElement => !!b), true, 'toggle-boxes'),
    (layers.mask || layers.heatmap) && h('span', { class: 'opacity' }, h('label', { for: 'opacity' }, 'Overlay opacity'), opacity, opacityOut),
  );

  drawZoom();
  return {
    element: h('div', { class: 'views' }, h('figure', { class: 'viewer' }, stage, controls), zoom),
    highlight(face, regions) {
      // The union of the regions' shapes (stored polygons, or keypoint grids on older analyses).
      const shapes = regions.map((r) => regionShape(face, r, W, H)).filter((x): x is RegionShape => !!x);
      if (!shapes.length) return;
      const shape = { window: unionWindow(shapes.map((x) => x.window)) };
      drawShapes(highlightCanvas, shapes, shape.window);
      highlightCanvas.dataset.shape = shapes[0].kind;
      Object.assign(highlightCanvas.style, { left: pct(shape.window.x, W), top: pct(shape.window.y, H), width: pct(shape.window.width, W), height: pct(shape.window.height, H) });
      highlightCanvas.dataset.region = regions.join(', ');
      highlightCanvas.dataset.face = String(face.index);
      highlightCanvas.hidden = false;
      highlightWindow = shape.window;
      zoomFace = face;
      drawZoom();
    },
    clear() {
      highlightCanvas.hidden = true;
      delete highlightCanvas.dataset.region;
      delete highlightCanvas.dataset.shape;
      drawZoom();
    },
  };
}

type Window = { x: number; y: number; width: number; height: number };

/** The smallest window holding all of them. */
function unionWindow(ws: Window[]): Window {
  const x = Math.min(...ws.map((w) => w.x));
  const y = Math.min(...ws.map((w) => w.y));
  return { x, y, width: Math.max(...ws.map((w) => w.x + w.width)) - x, height: Math.max(...ws.map((w) => w.y + w.height)) - y };
}

/**
 * Draws region shapes over `w` into the highlight canvas (at most 1024 px a side): each region
 * on its own with its holes cut out, then laid over the others, so one region's holes never cut
 * another region ("both eyes" is two eyes).
 */
function drawShapes(c: HTMLCanvasElement, shapes: RegionShape[], w: Window): void {
  const k = Math.min(1, 1024 / Math.max(w.width, w.height));
  c.width = Math.max(1, Math.round(w.width * k));
  c.height = Math.max(1, Math.round(w.height * k));
  const ctx = c.getContext('2d')!;
  ctx.clearRect(0, 0, c.width, c.height);
  for (const shape of shapes) {
    const one = h('canvas', { width: c.width, height: c.height });
    if (shape.kind === 'polygons') drawPolygons(one, shape, w, k);
    else {
      const grid = h('canvas', { width: shape.gw, height: shape.gh });
      const g = grid.getContext('2d')!;
      const img = g.createImageData(shape.gw, shape.gh);
      for (let i = 0; i < shape.grid.length; i++) if (shape.grid[i]) img.data.set([0, 200, 255, 150], i * 4);
      g.putImageData(img, 0, 0);
      const o = one.getContext('2d')!;
      o.imageSmoothingEnabled = false;
      o.drawImage(grid, (shape.window.x - w.x) * k, (shape.window.y - w.y) * k, shape.window.width * k, shape.window.height * k);
    }
    ctx.drawImage(one, 0, 0);
  }
}

/** One region's polygons (image pixels) on a canvas covering `w` at scale `k`, holes cut out. */
function drawPolygons(c: HTMLCanvasElement, shape: PolygonShape, w: Window, k: number): void {
  const ctx = c.getContext('2d')!;
  const path = (pts: { x: number; y: number }[]) => {
    ctx.beginPath();
    pts.forEach((p, i) => (i === 0 ? ctx.moveTo : ctx.lineTo).call(ctx, (p.x - w.x) * k, (p.y - w.y) * k));
    ctx.closePath();
  };
  ctx.fillStyle = 'rgba(0, 200, 255, 0.6)';
  for (const p of shape.polygons.filter((q) => !q.hole)) {
    path(p.points);
    ctx.fill('evenodd');
  }
  ctx.globalCompositeOperation = 'destination-out';
  ctx.fillStyle = '#000';
  for (const p of shape.polygons.filter((q) => q.hole)) {
    path(p.points);
    ctx.fill('evenodd');
  }
  ctx.globalCompositeOperation = 'source-over';
}

/** A PNG drawn into a canvas of the image's size, each pixel's grey level mapped to RGBA. */
async function layer(png: Blob, W: number, H: number, colour: (grey: number) => number[]): Promise<HTMLCanvasElement> {
  const bitmap = await createImageBitmap(png);
  const c = h('canvas', { width: W, height: H });
  const ctx = c.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0, W, H);
  const img = ctx.getImageData(0, 0, W, H);
  const d = img.data;
  for (let i = 0; i < d.length; i += 4) d.set(colour(d[i]), i);
  ctx.putImageData(img, 0, 0);
  return c;
}

/** Hover and keyboard focus both highlight; leaving either clears. */
function highlights(el: HTMLElement, viewer: Viewer | undefined, face: Face | undefined, regions: string[]): HTMLElement {
  if (!viewer || !face) return el;
  const on = () => viewer.highlight(face, regions);
  const off = () => viewer.clear();
  el.addEventListener('mouseenter', on);
  el.addEventListener('focus', on);
  el.addEventListener('mouseleave', off);
  el.addEventListener('blur', off);
  return el;
}

/** The kinds of edit the localizer gives a face, those the explanation names marked, and whether it could be judged. */
function faceKinds(a: Analysis, f: Face): HTMLElement | undefined {
  const named = (a.explanation?.editKinds ?? []).filter((k) => (k.faceIndex ?? 0) === f.index);
  // Older localizers have no type output: then the kinds the explanation names, with their probability.
  const kinds = editKinds(f.manipulations?.length ? f.manipulations : named, named);
  const quality = f.quality === 'FACE_QUALITY_TOO_SMALL' ? 'Too small in the image to judge.' : f.quality === 'FACE_QUALITY_TOO_DEGRADED' ? 'Too degraded to judge.' : undefined;
  if (!kinds.length && !quality) return undefined;
  return h(
    'div',
    { class: 'face-kinds', 'data-face': f.index },
    quality && h('p', { class: 'quality' }, quality),
    kinds.length > 0 && h(
      'p',
      { class: 'edit-kinds', 'aria-label': `Kind of edit on face ${f.index + 1}` },
      'Kind of edit: ',
      ...kinds.flatMap((k, i) => [
        i > 0 ? ', ' : '',
        h('span', { class: `edit-kind${k.named ? ' named' : ''}`, title: k.named ? 'named in the explanation' : 'below the model\'s type threshold' }, `${k.label} ${score(k.probability)}`),
      ]),
    ),
  );
}

function regionsSection(a: Analysis, viewer: Viewer | undefined): HTMLElement | undefined {
  if (!a.faces.some((f) => f.regions.length || f.manipulations?.length || f.quality === 'FACE_QUALITY_TOO_SMALL' || f.quality === 'FACE_QUALITY_TOO_DEGRADED')) return undefined;
  return h(
    'section',
    { 'aria-labelledby': 'regions-h' },
    h('h2', { id: 'regions-h' }, 'Regions'),
    h('p', { class: 'muted' }, 'Mean forgery probability per facial region; hover or focus a region to see it on the image.'),
    ...a.faces.map((f) =>
      h(
        'div',
        { class: 'face-regions' },
        a.faces.length > 1 && h('h3', {}, `Face ${f.index + 1} (score ${score(f.forgeryScore)})`),
        faceKinds(a, f),
        h(
          'ul',
          { class: 'chips', 'aria-label': `Regions of face ${f.index + 1}` },
          ...f.regions.map((r) =>
            h(
              'li',
              {},
              highlights(
                h(
                  'button',
                  { type: 'button', class: `chip ${r.coverage >= 0.15 ? 'flagged' : ''}`, 'data-region': r.name, 'aria-label': `${r.name}: score ${score(r.score)}, ${percent(r.coverage)} masked` },
                  h('span', { class: 'chip-name' }, r.name),
                  h('span', { class: 'chip-score' }, score(r.score)),
                ),
                viewer,
                f,
                [r.name],
              ),
            ),
          ),
        ),
      ),
    ),
  );
}

function explanationSection(a: Analysis, viewer: Viewer | undefined): HTMLElement | undefined {
  const ex = a.explanation;
  if (!ex?.text) return undefined;
  const regionsOf = (face: number) => a.faces.find((f) => f.index === face)?.regions.map((r) => r.name) ?? [];
  const text = h(
    'p',
    { class: 'explanation', id: 'explanation' },
    ...segments(ex.text, regionsOf).map((s) =>
      s.regions
        ? highlights(h('button', { type: 'button', class: 'region-word', 'data-region': s.regions.join(', '), 'data-face': s.face ?? 0 }, s.text), viewer, a.faces.find((f) => f.index === s.face), s.regions)
        : s.text,
    ),
  );
  return h(
    'section',
    { 'aria-labelledby': 'explanation-h' },
    h('h2', { id: 'explanation-h' }, 'Explanation'),
    text,
    ex.generator && h(
      'p',
      { class: 'muted', id: 'explanation-by' },
      `Written by ${ex.generator.name} ${ex.generator.version}`,
      ex.fallbackReason ? ` (the language model's text was not used: ${ex.fallbackReason})` : '',
      '.',
    ),
    ex.facts.length + (ex.editKinds?.length ?? 0) > 0 && h('h3', {}, 'Measured facts'),
    ex.facts.length + (ex.editKinds?.length ?? 0) > 0 && h(
      'ul',
      { class: 'facts' },
      ...ex.facts.map((f) => h('li', {}, f.statement || `${f.region}: ${f.value} ${f.unit}`)),
      ...(ex.editKinds ?? []).map((k) => h('li', {}, k.statement || `${k.type}: ${score(k.probability)}`)),
    ),
  );
}

/** "Seen before": the tenant's earlier analyses of the same picture, each a link, and what the file's header says of its origin. */
function provenanceSection(a: Analysis): HTMLElement | undefined {
  const p = a.provenance;
  if (!p) return undefined;
  const judged = (r: (typeof p.related)[number]) =>
    r.status === 'ANALYSIS_STATUS_COMPLETED' && verdictLabel(r.verdict) ? `judged ${verdictLabel(r.verdict)} (score ${score(r.maxForgeryScore)})` : statusLabel(r.status);
  return h(
    'section',
    { class: 'provenance', 'aria-labelledby': 'provenance-h' },
    h('h2', { id: 'provenance-h' }, 'Seen before'),
    p.related.length
      ? h(
          'ul',
          { class: 'related' },
          ...p.related.map((r) =>
            h(
              'li',
              {},
              h('a', { href: `#/analyses/${r.analysisId}` }, r.sourceName || r.analysisId),
              `: ${judged(r)}, ${when(r.submittedAt)}; ${r.hammingDistance} of 64 bits apart${r.mirrored ? ', mirrored' : ''}`,
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'Not seen before by this tenant.'),
    h(
      'p',
      { class: 'muted' },
      p.editingSoftware.length ? `Header names editing software: ${p.editingSoftware.join(', ')}. ` : 'Header names no editing software. ',
      p.c2paManifestPresent ? 'Carries content credentials (C2PA manifest, not verified).' : 'No content credentials (C2PA).',
    ),
  );
}

function modelsSection(a: Analysis): HTMLElement {
  const models = [...a.models, ...(a.explanation?.generator && !a.models.some((m) => m.name === a.explanation!.generator!.name) ? [a.explanation.generator] : [])];
  return h(
    'section',
    { 'aria-labelledby': 'models-h' },
    h('h2', { id: 'models-h' }, 'Models'),
    models.length ? h('ul', { class: 'models' }, ...models.map((m) => h('li', {}, h('strong', {}, m.name), ` ${m.version}`, m.sha256 && h('span', { class: 'hash', title: m.sha256 }, ` sha256 ${m.sha256.slice(0, 12)}…`)))) : h('p', { class: 'muted' }, 'None.'),
  );
}

function timingsSection(a: Analysis): HTMLElement {
  return h(
    'section',
    { 'aria-labelledby': 'timings-h' },
    h('h2', { id: 'timings-h' }, 'Timings'),
    a.timings.length
      ? h(
          'table',
          { class: 'timings' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Stage'), h('th', { scope: 'col' }, 'ms'))),
          h('tbody', {}, ...a.timings.map((t) => h('tr', {}, h('td', {}, stageLabel(t.stage)), h('td', { class: 'num' }, t.durationMs.toFixed(1))))),
        )
      : h('p', { class: 'muted' }, 'None recorded.'),
  );
}

async function auditSection(section: HTMLElement, id: string, signal: AbortSignal): Promise<void> {
  const heading = section.firstElementChild!;
  try {
    const records = (await api.trail(id)).records ?? [];
    if (signal.aborted) return;
    if (!records.length) {
      replace(section, heading, h('p', {}, 'No audit records for this analysis.'));
      return;
    }
    const seqs = records.map((r) => BigInt(r.sequence));
    const from = seqs.reduce((x, y) => (y < x ? y : x)).toString();
    const to = seqs.reduce((x, y) => (y > x ? y : x)).toString();
    const verdict = h('p', { class: 'chain', role: 'status', id: 'chain' }, 'Verifying the hash chain…');
    replace(section, heading, verdict, trailTable(records));
    const v = await api.verify(from, to);
    if (signal.aborted) return;
    verdict.classList.add(v.ok ? 'ok' : 'broken');
    verdict.textContent = v.ok
      ? `✔ Chain verified: records #${from} to #${to} of this tenant's hash chain are intact (${v.count} records checked), so this trail has not been changed.`
      : `✘ Chain verification FAILED at record #${v.failedSequence}: ${v.reason}. This trail may have been tampered with.`;
  } catch (err) {
    if (!signal.aborted) replace(section, heading, h('p', { class: 'error', role: 'alert' }, `Could not load the audit trail: ${(err as Error).message}`));
  }
}

function trailTable(records: AuditRecord[]): HTMLElement {
  return h(
    'table',
    { class: 'trail', id: 'trail' },
    h('caption', { class: 'sr-only' }, 'Audit records of this analysis, oldest first'),
    h('thead', {}, h('tr', {}, ...['#', 'Event time', 'Stage', 'Status', 'Verdict', 'Score', 'Models', 'Record hash'].map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      {},
      ...records.map((r) =>
        h(
          'tr',
          {},
          h('td', { class: 'num' }, r.sequence),
          h('td', {}, when(r.eventTime)),
          h('td', {}, stageLabel(r.stage)),
          h('td', {}, statusLabel(r.status), r.error?.code && r.error.code !== 'ERROR_CODE_UNSPECIFIED' ? ` (${r.error.code.replace('ERROR_CODE_', '')})` : ''),
          h('td', {}, verdictLabel(r.verdict) || '–'),
          h('td', { class: 'num' }, r.maxForgeryScore ? score(r.maxForgeryScore) : '–'),
          h('td', {}, (r.models ?? []).map((m) => `${m.name} ${m.version}`).join(', ') || '–'),
          h('td', {}, h('code', { class: 'hash', title: r.recordHash }, r.recordHash.slice(0, 12) + '…')),
        ),
      ),
    ),
  );
}
