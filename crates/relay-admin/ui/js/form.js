// The one form helper: `form()` builds a labelled form from field specs, reads typed values back
// (numbers, lists, headers, local date-times as RFC 3339), tells which fields the user changed
// (so a PATCH sends only those), keeps the submit button busy while the request runs, and shows
// the API's error detail (or a success message) inside the form, announced to screen readers.

import { h, replace, errorNotice, notice, toLocalInput, fromLocalInput } from './dom.js';

let counter = 0;

/**
 * A field: `{name, label, type, value, hint, required, placeholder, options, rows, min, max,
 * autocomplete, showIf(values)}`. Types: text, password, url, number, textarea, select, checkbox,
 * datetime (a local date-time, read as RFC 3339 UTC), list (comma- or line-separated words, read
 * as an array), headers (`Name: value` lines, read as an object). `{group, fields}` is a fieldset.
 */
export function form({ fields, submit, onSubmit, actions = [], className = '', method = 'post' }) {
  const id = `f${++counter}`;
  const inputs = new Map();
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'button primary' }, submit);
  const el = h('form', { class: `form ${className}`, novalidate: method === 'get' ? true : null }, fields.map(render), status, h('div', { class: 'form-actions' }, button, actions));

  function render(spec) {
    if (spec.group) {
      return h('fieldset', { class: 'group' }, h('legend', {}, spec.group), spec.hint ? h('p', { class: 'hint' }, spec.hint) : null, h('div', { class: 'group-fields' }, spec.fields.map(render)));
    }
    const inputId = `${id}-${spec.name}`;
    const hintId = spec.hint ? `${inputId}-hint` : null;
    const input = control(spec, inputId, hintId);
    const wrap = spec.type === 'checkbox'
      ? h('div', { class: 'field checkbox' }, input, h('label', { for: inputId }, spec.label), hint(spec, hintId))
      : h('div', { class: `field ${spec.wide ? 'wide' : ''}` }, h('div', { class: 'label-row' }, h('label', { for: inputId }, spec.label), spec.required ? h('span', { class: 'required', 'aria-hidden': 'true' }, '*') : null), input, hint(spec, hintId));
    inputs.set(spec.name, { spec, input, wrap, initial: undefined });
    return wrap;
  }

  // Initial values, as the user would read them back (so "changed" ignores formatting).
  for (const entry of inputs.values()) entry.initial = JSON.stringify(read(entry));

  function visible() {
    const values = valuesOf(false);
    for (const { spec, wrap } of inputs.values()) if (spec.showIf) wrap.hidden = !spec.showIf(values);
  }

  function valuesOf(onlyVisible = true) {
    const out = {};
    for (const entry of inputs.values()) {
      if (onlyVisible && entry.wrap.hidden) continue;
      out[entry.spec.name] = read(entry);
    }
    return out;
  }

  const api = {
    el,
    values: () => valuesOf(true),
    /** The visible fields whose value differs from the one the form opened with. */
    changed() {
      const out = {};
      for (const entry of inputs.values()) {
        if (entry.wrap.hidden) continue;
        const value = read(entry);
        if (JSON.stringify(value) !== entry.initial) out[entry.spec.name] = value;
      }
      return out;
    },
    input: (name) => inputs.get(name)?.input,
    showError: (error) => replace(status, errorNotice(error)),
    showMessage: (...children) => replace(status, notice('ok', ...children)),
    clearStatus: () => replace(status),
    /** Empties secret inputs (done after every successful submit, so no secret stays in the page). */
    clearSecrets() {
      for (const { spec, input } of inputs.values()) if (spec.type === 'password') input.value = '';
    },
  };

  el.addEventListener('input', visible);
  el.addEventListener('change', visible);
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    if (method !== 'get' && !el.reportValidity()) return;
    let values;
    try {
      values = api.values();
    } catch (error) {
      api.showError(error);
      return;
    }
    const label = button.textContent;
    button.disabled = true;
    button.textContent = `${label}…`;
    api.clearStatus();
    try {
      await onSubmit(values, api);
      api.clearSecrets();
    } catch (error) {
      if (error.name !== 'AbortError' && error.status !== 401) api.showError(error);
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  });
  visible();
  return api;
}

function hint(spec, hintId) {
  return spec.hint ? h('p', { class: 'hint', id: hintId }, spec.hint) : null;
}

function control(spec, inputId, hintId) {
  const common = { id: inputId, name: spec.name, required: spec.required, placeholder: spec.placeholder, pattern: spec.pattern, 'aria-describedby': hintId, autocomplete: spec.autocomplete || 'off' };
  switch (spec.type) {
    case 'select':
      return h('select', common, spec.options.map(([value, label]) => h('option', { value, selected: String(spec.value ?? '') === String(value) }, label)));
    case 'checkbox':
      return h('input', { ...common, type: 'checkbox', checked: Boolean(spec.value), autocomplete: null, placeholder: null });
    case 'textarea':
    case 'headers':
      return h('textarea', { ...common, rows: spec.rows || 3, spellcheck: 'false', value: format(spec) });
    case 'number':
      return h('input', { ...common, type: 'number', inputmode: 'numeric', min: spec.min, max: spec.max, step: spec.step || 1, value: format(spec) });
    case 'datetime':
      return h('input', { ...common, type: 'datetime-local', step: 1, value: format(spec) });
    default:
      return h('input', { ...common, type: spec.type === 'list' ? 'text' : spec.type || 'text', spellcheck: 'false', value: format(spec) });
  }
}

// A spec's value as the input shows it.
function format(spec) {
  const v = spec.value;
  if (v === null || v === undefined) return '';
  if (spec.type === 'list') return v.join(', ');
  if (spec.type === 'headers') return Object.entries(v).map(([k, val]) => `${k}: ${val}`).join('\n');
  if (spec.type === 'datetime') return toLocalInput(v);
  return String(v);
}

// An input's value as the API wants it.
function read({ spec, input }) {
  const raw = spec.type === 'checkbox' ? input.checked : input.value;
  switch (spec.type) {
    case 'checkbox':
      return raw;
    case 'number':
      return raw.trim() === '' ? null : Number(raw);
    case 'list':
      return raw.split(/[\s,]+/).filter(Boolean);
    case 'datetime':
      return fromLocalInput(raw);
    case 'headers':
      return parseHeaders(raw, spec.label);
    case 'password':
      return raw;
    default:
      return raw.trim();
  }
}

function parseHeaders(text, label) {
  const out = {};
  for (const [i, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    const colon = line.indexOf(':');
    if (colon < 1) throw Object.assign(new Error(`${label}, line ${i + 1}: write each header as "Name: value".`), { title: 'Check the form' });
    out[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return out;
}

/**
 * A filter bar for a list page: the fields' values come from the hash query, and applying them
 * navigates to `route` with the new filters (and no cursor: back to the newest page).
 */
export function filterForm({ route, query, fields, navigate }) {
  const specs = fields.map((f) => ({ ...f, value: query[f.name] ?? f.value }));
  const active = fields.some((f) => query[f.name]);
  const count = fields.filter((f) => query[f.name]).length;
  const clear = active ? h('a', { class: 'button', href: `#${route}` }, 'Clear filters') : null;
  const el = form({
    submit: 'Apply filters',
    className: 'filters',
    method: 'get',
    fields: specs,
    actions: [clear],
    onSubmit: async (values) => navigate(route, values),
  }).el;
  // Open on a wide screen, or while filters are set; on a phone a tap opens it.
  const open = active || window.matchMedia('(min-width: 761px)').matches;
  return h('details', { class: 'filter-box', open }, h('summary', {}, count ? `Filters (${count} set)` : 'Filters'), el);
}
