// Rejections: the ingest requests the relay refused (bad signature, invalid event, too large…),
// newest first, 50 at a time, with the reason, the status answered, and the first bytes of the
// body; the kept headers (credentials are never stored) open on request.

import { h, mount, badge, time, idLink, pageHeader, section } from '../dom.js';
import { filterForm } from '../form.js';
import { pagedTable } from '../table.js';
import { navigate } from '../router.js';

const FILTERS = ['source_id', 'reason', 'since'];
const BODY_PREVIEW = 160;

export async function rejectionsPage({ main, query, signal }) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, query[k]]));
  mount(main, 
    pageHeader('Rejections'),
    h('p', { class: 'muted' }, 'Requests to an ingest URL that the relay refused, so you can see why WAPing\u2019s events did not arrive.'),
    filterForm({
      route: '/rejections',
      query,
      navigate,
      fields: [
        { name: 'reason', label: 'Reason', placeholder: 'invalid_signature' },
        { name: 'source_id', label: 'Source id', placeholder: 'src_…' },
        { name: 'since', label: 'Received since', type: 'datetime' },
      ],
    }),
    section(null, await pagedTable({
      path: '/v1/rejections',
      filters,
      route: '/rejections',
      query,
      signal,
      caption: 'Rejections, newest first',
      empty: FILTERS.some((k) => query[k]) ? 'No rejection matches these filters.' : 'No rejections: every request was accepted.',
      columns: [
        { label: 'Received', cell: (r) => time(r.received_at) },
        { label: 'Reason', cell: (r) => h('div', {}, badge('failed', r.reason), r.detail ? h('div', { class: 'small muted' }, r.detail) : null) },
        { label: 'Status', class: 'num', cell: (r) => String(r.status) },
        { label: 'Source', cell: (r) => idLink(r.source_id) },
        { label: 'Body', cell: bodyCell },
        { label: 'Repeats', class: 'num', cell: (r) => (r.repeats ? `+${r.repeats}` : '—') },
      ],
    })),
  );
}

function bodyCell(r) {
  const preview = r.body.length > BODY_PREVIEW ? `${r.body.slice(0, BODY_PREVIEW)}…` : r.body;
  const headers = Object.entries(r.headers || {});
  return h('div', { class: 'rejection-body' },
    r.body ? h('code', { class: 'body-prefix' }, preview) : h('span', { class: 'muted' }, 'empty'),
    h('div', { class: 'small muted' }, `${r.body_bytes.toLocaleString('en-US')} bytes`),
    r.body.length > BODY_PREVIEW || headers.length
      ? h('details', {}, h('summary', {}, 'Full body prefix and headers'),
          h('pre', { tabindex: '0' }, r.body),
          headers.length ? h('table', { class: 'kv' }, h('tbody', {}, headers.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v))))) : null)
      : null);
}
