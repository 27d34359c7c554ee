// The one table renderer: a list of rows as an accessible table (each cell carries its column's
// label, so on a narrow screen the rows become stacked cards), and `pagedTable()`, the same with
// the API's cursor pagination: one page of `limit` rows at a time, "Next" to the older page and
// "Back to newest", the cursor kept in the hash so a reload shows the same page.

import { h } from './dom.js';
import { api } from './api.js';
import { href } from './router.js';

export const PAGE_SIZE = 50;

/**
 * `columns`: `[{label, cell: (row) => node|string, class?}]`. `empty`: what to show without rows.
 * `caption`: a visually hidden description of the table.
 */
export function table(rows, columns, { empty = 'Nothing here yet.', caption } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'table' },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
      h('tbody', {}, rows.map((row) => h('tr', {}, columns.map((c) => h('td', { class: c.class, 'data-label': c.label }, c.cell(row)))))),
    ),
  );
}

/**
 * Fetches one page of `path` (with `filters` and the hash's `cursor`) and renders it with pager
 * links. `route`/`query`: the page's own hash route and query, to build the pager links from;
 * `operator`: call with the operator token. Answers the element; throws the API error (the
 * router shows it).
 */
export async function pagedTable({ path, filters = {}, route, query, columns, signal, empty, caption, limit = PAGE_SIZE, operator = false }) {
  const cursor = query.cursor || undefined;
  const page = await api('GET', path, { query: { ...filters, limit, cursor }, signal, operator });
  return h('div', { class: 'paged' }, table(page.data, columns, { empty: cursor ? 'No older entries.' : empty, caption }), pager({ route, query, cursor, next: page.next_cursor, shown: page.data.length }));
}

function pager({ route, query, cursor, next, shown }) {
  if (!cursor && !next) return null;
  const rest = { ...query };
  delete rest.cursor;
  return h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    h('span', { class: 'muted' }, cursor ? `${shown} older entries` : `Newest ${shown}`),
    h('span', { class: 'pager-links' },
      cursor ? h('a', { class: 'button', href: href(route, rest) }, 'Back to newest') : null,
      next ? h('a', { class: 'button', href: href(route, { ...rest, cursor: next }), rel: 'next' }, 'Next') : null,
    ),
  );
}
