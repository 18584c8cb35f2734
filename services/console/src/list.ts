// Analyses list: the tenant's analyses newest first (ListAnalyses), filtered by status, verdict
// and minimum score, a page at a time. Filters live in the URL, so a filtered view can be shared.
import { api, type Analysis } from './api.ts';
import { h, replace } from './dom.ts';
import { score, statusLabel, verdictLabel, when } from './format.ts';

const STATUSES = ['PENDING', 'COMPLETED', 'NO_FACE', 'REJECTED', 'FAILED'];
const VERDICTS = ['LIKELY_FORGED', 'UNCERTAIN', 'LIKELY_AUTHENTIC'];
const PAGE_SIZE = 20;

export function renderList(root: HTMLElement, q: URLSearchParams, signal: AbortSignal): void {
  const select = (id: string, label: string, values: string[], label0: (v: string) => string) =>
    h(
      'div',
      { class: 'field' },
      h('label', { for: id }, label),
      h('select', { id, name: id }, h('option', { value: '' }, 'any'), ...values.map((v) => h('option', { value: v, selected: q.get(id) === v }, label0(v)))),
    );
  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Filters' },
    select('status', 'Status', STATUSES, (v) => statusLabel(`ANALYSIS_STATUS_${v}`)),
    select('verdict', 'Verdict', VERDICTS, (v) => verdictLabel(`VERDICT_${v}`)),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'min-score' }, 'Minimum score'),
      h('input', { id: 'min-score', name: 'minForgeryScore', type: 'number', min: 0, max: 1, step: 0.05, value: q.get('minForgeryScore') ?? '' }),
    ),
    h('button', { type: 'submit' }, 'Apply'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, String(v));
    location.hash = `#/analyses?${next}`;
  });

  const body = h('div', { 'aria-live': 'polite' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  replace(root, h('h1', {}, 'Analyses'), form, body, pager);

  /** Tokens of the pages before the current one, for "Newer". */
  const tokens: string[] = [];
  const load = async (token: string) => {
    replace(body, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const page = await api.list({
        status: q.get('status') ?? undefined,
        verdict: q.get('verdict') ?? undefined,
        minForgeryScore: Number(q.get('minForgeryScore') ?? 0) || undefined,
        pageSize: PAGE_SIZE,
        pageToken: token || undefined,
      });
      if (signal.aborted) return;
      const rows = page.analyses ?? [];
      replace(body, rows.length ? table(rows) : h('p', {}, 'No analyses match.'));
      const newer = h('button', { type: 'button', disabled: tokens.length === 0 }, '← Newer');
      const older = h('button', { type: 'button', disabled: !page.nextPageToken }, 'Older →');
      newer.addEventListener('click', () => void load(tokens.pop()!.replace(/^-$/, '')));
      older.addEventListener('click', () => {
        tokens.push(token || '-');
        void load(page.nextPageToken!);
      });
      replace(pager, newer, h('span', { class: 'muted' }, `page ${tokens.length + 1}`), older);
    } catch (err) {
      if (!signal.aborted) replace(body, h('p', { class: 'error', role: 'alert' }, `Could not list analyses: ${(err as Error).message}`));
    }
  };
  void load('');
}

function table(rows: Analysis[]): HTMLElement {
  return h(
    'table',
    { class: 'analyses' },
    h('caption', { class: 'sr-only' }, 'Analyses, newest first'),
    h('thead', {}, h('tr', {}, ...['Submitted', 'Image', 'Status', 'Verdict', 'Score', 'Faces'].map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      {},
      ...rows.map((a) =>
        h(
          'tr',
          { 'data-analysis-id': a.analysisId },
          h('td', {}, when(a.submittedAt)),
          h('td', {}, h('a', { href: `#/analyses/${a.analysisId}` }, a.sourceName || a.analysisId)),
          h('td', {}, statusLabel(a.status)),
          h('td', {}, h('span', { class: `verdict ${a.verdict}` }, verdictLabel(a.verdict) || '–')),
          h('td', { class: 'num' }, a.status === 'ANALYSIS_STATUS_COMPLETED' ? score(a.maxForgeryScore) : '–'),
          h('td', { class: 'num' }, a.faces.length),
        ),
      ),
    ),
  );
}
