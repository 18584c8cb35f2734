// The review console: a hash router over three pages (submit, analyses list, analysis detail)
// and the API key form. The key lives in sessionStorage only, so it goes with the tab.
import './style.css';
import { apiKey } from './api.ts';
import { h, replace } from './dom.ts';
import { renderDetail } from './detail.ts';
import { renderList } from './list.ts';
import { renderSubmit } from './submit.ts';

const main = document.getElementById('main')!;
const keyInput = document.getElementById('api-key') as HTMLInputElement;
/** Aborts the current page's streams and requests when the route changes. */
let page = new AbortController();

function keyNotice(): HTMLElement | undefined {
  if (apiKey.get()) return undefined;
  return h(
    'p',
    { class: 'notice', role: 'note' },
    'Enter your API key above to use the console. With ',
    h('code', {}, 'make run'),
    ', the default tenant\'s key is in ',
    h('code', {}, '.tampertrace/api-key'),
    ' (',
    h('code', {}, 'cat .tampertrace/api-key'),
    ').',
  );
}

function route(): void {
  page.abort();
  page = new AbortController();
  const hash = location.hash.replace(/^#/, '') || '/submit';
  const [path, query = ''] = hash.split('?');
  const detail = /^\/analyses\/([^/]+)$/.exec(path);
  const section = detail ? 'analyses' : path === '/analyses' ? 'analyses' : 'submit';
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a[data-nav]')) {
    if (a.dataset.nav === section && !detail) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const content = h('div', { class: 'page' });
  replace(main, keyNotice(), content);
  const signal = page.signal;
  if (detail) renderDetail(content, decodeURIComponent(detail[1]), signal);
  else if (path === '/analyses') renderList(content, new URLSearchParams(query), signal);
  else renderSubmit(content, signal);
  // Move focus to the new page for keyboard and screen-reader users, except on first load.
  if (document.activeElement && document.activeElement !== document.body && document.activeElement.closest('nav')) main.focus();
}

document.getElementById('key-form')!.addEventListener('submit', (e) => {
  e.preventDefault();
  if (!keyInput.value.trim()) return;
  apiKey.set(keyInput.value);
  keyInput.value = '';
  keyInput.placeholder = 'key set for this tab';
  route();
});
document.getElementById('key-forget')!.addEventListener('click', () => {
  apiKey.clear();
  keyInput.placeholder = 'tt_…';
  route();
});
// The skip link targets #main, which the hash router would read as a route.
document.querySelector('.skip')!.addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
if (apiKey.get()) keyInput.placeholder = 'key set for this tab';
window.addEventListener('hashchange', route);
route();
