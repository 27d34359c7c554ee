// Building blocks for the pages: `h()` creates elements (text is always set as text, never as
// HTML, so nothing from the API can inject markup), plus the small shared pieces every page uses:
// time and number formats, status badges, id links, copy buttons, notices and error panels.

/**
 * `h('a', {href, class, onclick}, child, ...)`: attributes by name (`class`, `for`, `aria-*`,
 * `data-*`), `on<event>` for listeners, `text` for text content; children are nodes or strings
 * (null, false and undefined are skipped; arrays are flattened).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'text') el.textContent = value;
    else if (key === 'value' && 'value' in el) el.value = value;
    else if (key === 'checked' || key === 'selected') el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const pad = (n, width = 2) => String(n).padStart(width, '0');

/** `2026-12-03 11:00:05` in the browser's time zone; the UTC instant is in the tooltip. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h('time', { datetime: iso, title: iso }, text);
}

/** A datetime-local input's value for an RFC 3339 instant, and back. */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : rfc3339(d);
}

/** RFC 3339 in UTC, to the second. */
export const rfc3339 = (date) => date.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** `850 ms`, `12.3 s`. */
export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

/** `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`. */
export function age(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
}

export const percent = (ratio) => (ratio === null || ratio === undefined ? '—' : `${(ratio * 100).toFixed(ratio >= 0.999 || ratio === 0 ? 0 : 1)} %`);
export const count = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));

// Status words to badge colours: green for success, red for failure, amber for waiting.
const TONES = {
  succeeded: 'ok', success: 'ok', enabled: 'ok', active: 'ok', verified: 'ok',
  failed: 'bad', http_error: 'bad', timeout: 'bad', connect_error: 'bad', tls_error: 'bad', blocked: 'bad', disabled: 'bad', suspended: 'bad', unverified: 'warn',
  pending: 'warn', failing: 'warn',
  manual: 'info', replay: 'info', auto: 'neutral',
};

/** A coloured label for a status, outcome or trigger (`http_error` reads `http error`). */
export function badge(word, label) {
  const tone = TONES[word] || 'neutral';
  return h('span', { class: `badge badge-${tone}` }, label ?? String(word).replace(/_/g, ' '));
}

/** An HTTP status code, coloured by class. */
export function statusCode(code) {
  if (code === null || code === undefined) return h('span', { class: 'muted' }, '—');
  const tone = code >= 200 && code < 300 ? 'ok' : code >= 500 ? 'bad' : 'warn';
  return h('span', { class: `code code-${tone}` }, String(code));
}

// Routes by id prefix: each id links to its page.
const ID_ROUTES = { evt: 'events', dlv: 'deliveries', dst: 'destinations', src: 'sources' };

/** A monospace link to an id's page (shortened on screen; the full id is in the title). */
export function idLink(id, { full = false } = {}) {
  if (!id) return h('span', { class: 'muted' }, '—');
  const route = ID_ROUTES[String(id).split('_')[0]];
  const text = full ? id : shortId(id);
  if (!route) return h('code', { class: 'id', title: id }, text);
  return h('a', { class: 'id', href: `#/${route}/${encodeURIComponent(id)}`, title: id }, text);
}

/** `dlv_0190…a1b2`: prefix, the start and the end of the hex. */
export function shortId(id) {
  const [prefix, hex] = String(id).split('_');
  if (!hex || hex.length < 16) return id;
  return `${prefix}_${hex.slice(0, 8)}…${hex.slice(-4)}`;
}

/** A button that copies `text` to the clipboard and says so. */
export function copyButton(text, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'button small', 'aria-label': `${label}: ${text}` }, label);
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Copy failed: select the text';
    }
    setTimeout(() => (button.textContent = label), 2000);
  });
  return button;
}

/** A notice: `kind` is `info`, `ok`, `warn` or `error`. Errors and warnings are announced. */
export function notice(kind, ...children) {
  const role = kind === 'error' || kind === 'warn' ? 'alert' : 'status';
  return h('div', { class: `notice notice-${kind}`, role }, ...children);
}

/** An API error as the user should see it: "Not found" for 404s, else the problem's detail. */
export function errorNotice(error) {
  if (error && error.status === 404) {
    return notice('error', h('strong', {}, 'Not found'), ` — ${error.detail || 'there is nothing here, or it belongs to another tenant'} `, h('code', {}, error.code));
  }
  const heading = error && error.title ? error.title : 'Something went wrong';
  const detail = error && (error.detail || error.message);
  return notice('error', h('strong', {}, heading), detail ? ` — ${detail} ` : ' ', error && error.code ? h('code', {}, error.code) : null);
}

/** Formatted JSON in a scrollable block. */
export function jsonBlock(value, label) {
  return h('pre', { class: 'json', tabindex: '0', 'aria-label': label || 'JSON' }, JSON.stringify(value, null, 2));
}

/** A definition list from `[label, value]` pairs (pairs with an undefined value are skipped). */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter((p) => p && p[1] !== undefined).map(([label, value]) => [h('dt', {}, label), h('dd', {}, value ?? h('span', { class: 'muted' }, '—'))]));
}

/** A page heading with an optional line of actions on the right. */
export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' }, h('h1', { tabindex: '-1' }, title), actions.length ? h('div', { class: 'actions' }, actions) : null);
}

/** A titled section (a card). */
export function section(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', {}, title) : null, ...children);
}

/**
 * A button that asks before acting: the first press shows "Confirm" and "Cancel" in its place.
 * `action()` may throw; its error is shown next to the buttons.
 */
export function confirmButton(label, confirmLabel, action) {
  const box = h('span', { class: 'confirm' });
  const start = h('button', { type: 'button', class: 'button danger' }, label);
  const yes = h('button', { type: 'button', class: 'button danger' }, confirmLabel);
  const no = h('button', { type: 'button', class: 'button' }, 'Cancel');
  const message = h('span', { class: 'confirm-message', role: 'alert' });
  const show = (asking) => {
    replace(box, asking ? [yes, no] : start, message);
    (asking ? no : start).focus();
  };
  start.addEventListener('click', () => show(true));
  no.addEventListener('click', () => show(false));
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    try {
      await action();
    } catch (error) {
      yes.disabled = false;
      replace(message, error.detail || error.message);
    }
  });
  replace(box, start, message);
  return box;
}
