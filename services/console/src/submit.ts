// Submit page: files (picker or drag and drop) and URLs; each submission shows up at once and
// follows its analysis stage by stage over the events stream.
import { ApiError, api, type Accepted, type Analysis } from './api.ts';
import { h, replace } from './dom.ts';
import { STAGES, score, stageLabel, statusLabel, verdictLabel } from './format.ts';

export function renderSubmit(root: HTMLElement, signal: AbortSignal): void {
  const results = h('ul', { class: 'submissions', 'aria-live': 'polite', 'aria-label': 'Submissions' });
  const reanalyze = h('input', { type: 'checkbox', id: 'reanalyze' });
  const fileInput = h('input', { type: 'file', id: 'files', multiple: true, accept: 'image/jpeg,image/png,image/webp,image/gif' });
  const drop = h(
    'div',
    { class: 'dropzone' },
    h('label', { for: 'files' }, h('strong', {}, 'Choose images'), ' or drop them here'),
    fileInput,
    h('p', { class: 'muted' }, 'JPEG, PNG, WebP or GIF; several at once.'),
  );
  const urlInput = h('input', { type: 'url', id: 'image-url', name: 'url', placeholder: 'https://example.com/photo.jpg', required: true });
  const urlForm = h(
    'form',
    { class: 'url-form' },
    h('label', { for: 'image-url' }, 'Image URL'),
    urlInput,
    h('button', { type: 'submit' }, 'Submit URL'),
  );

  const submitFiles = (files: Iterable<File>) => {
    for (const f of files) track(results, f.name, URL.createObjectURL(f), () => api.submitFile(f, reanalyze.checked), signal);
  };
  fileInput.addEventListener('change', () => {
    submitFiles(fileInput.files ?? []);
    fileInput.value = '';
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    submitFiles([...(e.dataTransfer?.files ?? [])].filter((f) => f.type.startsWith('image/') || f.type === ''));
  });
  urlForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const url = urlInput.value.trim();
    if (!url) return;
    track(results, url, undefined, () => api.submitUrl(url, reanalyze.checked), signal);
    urlInput.value = '';
  });

  replace(
    root,
    h('h1', {}, 'Submit images'),
    drop,
    urlForm,
    h('p', { class: 'check' }, reanalyze, h('label', { for: 'reanalyze' }, 'Analyse again even if the same image was analysed before')),
    h('h2', {}, 'This session\'s submissions'),
    results,
  );
}

/** One submission's card: shown at once, then updated per finished stage until the final state. */
function track(list: HTMLElement, name: string, preview: string | undefined, submit: () => Promise<Accepted>, signal: AbortSignal): void {
  const steps = STAGES.map((s) => h('li', { class: 'step', 'data-stage': s }, stageLabel(s)));
  const state = h('p', { class: 'state' }, 'Uploading…');
  const card = h(
    'li',
    { class: 'submission' },
    preview ? h('img', { src: preview, alt: '', class: 'thumb' }) : h('div', { class: 'thumb url-thumb', 'aria-hidden': 'true' }, 'URL'),
    h('div', {}, h('p', { class: 'name' }, name), h('ol', { class: 'steps', 'aria-label': 'Stages' }, ...steps), state),
  );
  card.dataset.status = 'uploading';
  list.prepend(card);

  const showStep = (stage: string, a: Analysis) => {
    const at = STAGES.indexOf(stage);
    const final = a.status !== 'ANALYSIS_STATUS_PENDING';
    steps.forEach((li, i) => {
      const failed = final && a.error && a.error.stage === STAGES[i];
      li.className = `step ${failed ? 'failed' : i <= at || (final && a.status === 'ANALYSIS_STATUS_COMPLETED') ? 'done' : ''}`;
      li.setAttribute('aria-label', `${stageLabel(STAGES[i])}: ${failed ? 'failed' : li.classList.contains('done') ? 'done' : 'waiting'}`);
    });
    card.dataset.status = final ? statusLabel(a.status) : 'pending';
    const link = h('a', { href: `#/analyses/${a.analysisId}` }, 'Open analysis');
    if (!final) replace(state, `Running: ${stageLabel(stage)} done. `, link);
    else if (a.status === 'ANALYSIS_STATUS_COMPLETED') replace(state, h('span', { class: `verdict ${a.verdict}` }, verdictLabel(a.verdict)), ` · score ${score(a.maxForgeryScore)} · `, link);
    else replace(state, h('span', { class: 'bad' }, statusLabel(a.status)), a.error ? ` (${a.error.code.replace('ERROR_CODE_', '')}: ${a.error.message}) · ` : ' · ', link);
  };

  void (async () => {
    try {
      const r = await submit();
      card.dataset.analysisId = r.analysisId;
      replace(state, r.deduplicated ? 'Seen before: showing the earlier analysis…' : 'Accepted, waiting for the stages…');
      await api.watch(r.analysisId, showStep, signal);
    } catch (err) {
      if (signal.aborted) return;
      card.dataset.status = 'error';
      const e = err as ApiError;
      replace(
        state,
        h('span', { class: 'bad' }, e.code ? e.code.replace('ERROR_CODE_', '') : 'error'),
        `: ${e.message}`,
        e.analysisId ? h('span', {}, ' · ', h('a', { href: `#/analyses/${e.analysisId}` }, 'Open analysis')) : null,
      );
    }
  })();
}
