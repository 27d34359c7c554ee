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

/** Appends children to an element as `h()` does (null, false and undefined are skipped). */
export function mount(el, ...children) {
  append(el, children);
  return el;
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

/** `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`, `1 d` (the two largest units, zeros left out). */
export function age(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const parts = s < 3600 ? [[Math.floor(s / 60), 'min'], [s % 60, 's']]
    : s < 86400 ? [[Math.floor(s / 3600), 'h'], [Math.floor((s % 3600) / 60), 'min']]
    : [[Math.floor(s / 86400), 'd'], [Math.floor((s % 86400) / 3600), 'h']];
  return parts.filter(([n], i) => i === 0 || n > 0).map(([n, unit]) => `${n} ${unit}`).join(' ');
}

export const percent = (ratio) => (ratio === null || ratio === undefined ? '—' : `${(ratio * 100).toFixed(ratio >= 0.999 || ratio === 0 ? 0 : 1)} %`);
export const count = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));

// Status words to badge colours: green for success, red for failure, amber for waiting, violet
// for a destination the tenant paused (held on purpose, not broken).
const TONES = {
  succeeded: 'ok', success: 'ok', enabled: 'ok', active: 'ok', verified: 'ok',
  failed: 'bad', http_error: 'bad', timeout: 'bad', connect_error: 'bad', tls_error: 'bad', blocked: 'bad', disabled: 'bad', suspended: 'bad', unverified: 'warn',
  pending: 'warn', failing: 'warn', paused: 'paused',
  manual: 'info', replay: 'info', auto: 'neutral',
};

/** A coloured label for a status, outcome or trigger (`http_error` reads `http error`). */
export function badge(word, label) {
  const tone = TONES[word] || 'neutral';
  return h('span', { class: `badge badge-${tone}` }, label ?? String(word).replace(/_/g, ' '));
}

/**
 * A destination's state as badges: `disabled` (the tenant or the relay turned it off), `paused`
 * (held by the tenant: its deliveries collect, nothing is attempted), `failing` (enabled, every
 * attempt fails); `enabled` when none of these. Disabled and paused can both hold.
 */
export function stateBadge(d) {
  const badges = [
    !d.enabled ? badge('disabled') : null,
    d.paused ? badge('paused') : null,
    d.enabled && d.failing_since ? badge('failing') : null,
  ].filter(Boolean);
  return badges.length ? h('span', { class: 'badges' }, badges) : badge('enabled');
}

/** An HTTP status code, coloured by class. */
export function statusCode(code) {
  if (code === null || code === undefined) return h('span', { class: 'muted' }, '—');
  const tone = code >= 200 && code < 300 ? 'ok' : code >= 500 ? 'bad' : 'warn';
  return h('span', { class: `code code-${tone}` }, String(code));
}

// The source id of the relay's own test events (`POST /v1/destinations/{id}/test`).
const RELAY_SOURCE = `src_${'0'.repeat(32)}`;

// Routes by id prefix: each id links to its page.
const ID_ROUTES = { evt: 'events', dlv: 'deliveries', dst: 'destinations', src: 'sources' };

/** A monospace link to an id's page (shortened on screen; the full id is in the title). */
export function idLink(id, { full = false } = {}) {
  if (!id) return h('span', { class: 'muted' }, '—');
  if (id === RELAY_SOURCE) return h('span', { class: 'muted', title: id }, 'relay (test event)');
  const route = ID_ROUTES[String(id).split('_')[0]];
  const text = full ? id : shortId(id);
  if (!route) return h('code', { class: 'id', title: id }, text);
  return h('a', { class: 'id', href: `#/${route}/${encodeURIComponent(id)}`, title: id }, text);
}

/** `dlv_…9c41a1b2`: the prefix and the end of the hex (its start is a timestamp, the same for
 * ids made around the same time; the end is random). */
export function shortId(id) {
  const [prefix, hex] = String(id).split('_');
  if (!hex || hex.length < 16) return id;
  return `${prefix}_…${hex.slice(-8)}`;
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

/** A notice: `kind` is `info`, `ok`, `warn`, `error` or `paused`. Errors and warnings are announced. */
export function notice(kind, ...children) {
  const role = kind === 'error' || kind === 'warn' ? 'alert' : 'status';
  return h('div', { class: `notice notice-${kind}`, role }, ...children);
}

/** An API error as the user should see it: "Not found" for 404s, else the problem's detail. */
export function errorNotice(error) {
  if (error && error.status === 404) {
    return notice('error', error.detail || 'It does not exist, or it belongs to another tenant.', ' ', h('code', {}, error.code));
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
