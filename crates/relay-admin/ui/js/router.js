// Hash routing: `#/events?type=message.received&cursor=…` names the page and its state, so every
// view reloads to itself and the browser's Back and Forward work. Each navigation aborts the
// previous page's work (its `signal`: fetches, polls) before the next page renders.

import { h, errorNotice, replace } from './dom.js';

const routes = [];
let current = null;
let beforeRender = () => null;

/** Registers `pattern` (`/deliveries/:id`) for `render(ctx)`; ctx is `{main, params, query, signal}`. */
export function route(pattern, render, { title } = {}) {
  const names = [];
  const regex = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, name) => (names.push(name), '([^/]+)'))}$`);
  routes.push({ regex, names, render, title });
}

/** Runs before every render with the path; answering `{render, title}` shows that page instead
 * (the sign-in page, while nobody is signed in), null lets the route render. */
export function setGuard(guard) {
  beforeRender = guard;
}

/** The current hash as `{path, query}`. */
export function location_() {
  const hash = window.location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = hash.split('?');
  return { path: path || '/', query: Object.fromEntries(new URLSearchParams(search)) };
}

/** `#/path?query` with empty values left out. */
export function href(path, query = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, value);
  }
  const search = params.toString();
  return `#${path}${search ? `?${search}` : ''}`;
}

export function navigate(path, query) {
  const target = href(path, query);
  if (window.location.hash === target) render();
  else window.location.hash = target;
}

/** Renders the page of the current hash into `#main`. */
export async function render() {
  const { path, query } = location_();
  const main = document.getElementById('main');
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  const match = beforeRender(path) || find(path);
  markNav(path);
  replace(main, h('p', { class: 'muted loading' }, 'Loading…'));
  if (!match) {
    document.title = 'Not found · wap-relay';
    replace(main, h('div', { class: 'page' }, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'There is no page at this address. ', h('a', { href: '#/' }, 'Go to the overview'))));
    return;
  }
  document.title = `${match.title || 'wap-relay'} · wap-relay`;
  const container = h('div', { class: 'page' });
  try {
    await match.render({ main: container, params: match.params, query, signal: controller.signal });
    if (controller.signal.aborted) return;
    replace(main, container);
  } catch (error) {
    if (controller.signal.aborted || error.name === 'AbortError') return;
    if (error.status === 401) return; // The session ended; the sign-in page is showing.
    replace(main, h('div', { class: 'page' }, h('h1', { tabindex: '-1' }, error.status === 404 ? 'Not found' : 'Something went wrong'), errorNotice(error), h('p', {}, h('a', { href: '#/' }, 'Go to the overview'))));
  }
}

function find(path) {
  for (const r of routes) {
    const m = r.regex.exec(path);
    if (m) {
      const params = Object.fromEntries(r.names.map((name, i) => [name, decodeURIComponent(m[i + 1])]));
      return { render: r.render, title: r.title, params };
    }
  }
  return null;
}

// Marks the nav link of the section the path is in.
function markNav(path) {
  for (const link of document.querySelectorAll('[data-nav]')) {
    const base = link.dataset.nav;
    const active = base === '/' ? path === '/' : path === base || path.startsWith(`${base}/`);
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

export function start() {
  window.addEventListener('hashchange', (event) => {
    // In-page anchors (the skip link) are not routes.
    if (!window.location.hash.startsWith('#/') && window.location.hash !== '') return;
    render().then(() => focusMain(event));
  });
  render();
}

// After a navigation, focus moves to the new page's heading, as a screen reader user expects.
function focusMain() {
  const heading = document.querySelector('#main h1');
  if (heading) heading.focus({ preventScroll: false });
}
