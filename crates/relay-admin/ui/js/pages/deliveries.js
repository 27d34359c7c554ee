// Deliveries: the list (filters: status, destination, event, time range), newest first, 50 at a
// time; each row links to the delivery's attempt timeline.

import { h, mount, badge, time, statusCode, idLink, pageHeader, section } from '../dom.js';
import { filterForm } from '../form.js';
import { pagedTable } from '../table.js';
import { navigate } from '../router.js';

const FILTERS = ['status', 'destination_id', 'event_id', 'since', 'until'];

export async function deliveriesPage({ main, query, signal }) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, query[k]]));
  mount(main, 
    pageHeader('Deliveries'),
    filterForm({
      route: '/deliveries',
      query,
      navigate,
      fields: [
        { name: 'status', label: 'Status', type: 'select', options: [['', 'Any'], ['pending', 'Pending'], ['succeeded', 'Succeeded'], ['failed', 'Failed']] },
        { name: 'destination_id', label: 'Destination id', placeholder: 'dst_…' },
        { name: 'event_id', label: 'Event id', placeholder: 'evt_…' },
        { name: 'since', label: 'Created since', type: 'datetime' },
        { name: 'until', label: 'Created before', type: 'datetime' },
      ],
    }),
    section(null, await pagedTable({
      path: '/v1/deliveries',
      filters,
      route: '/deliveries',
      query,
      signal,
      caption: 'Deliveries, newest first',
      empty: FILTERS.some((k) => query[k]) ? 'No delivery matches these filters.' : 'No deliveries yet.',
      columns: [
        { label: 'Created', cell: (d) => h('a', { href: `#/deliveries/${encodeURIComponent(d.id)}` }, time(d.created_at)) },
        { label: 'Status', cell: (d) => h('div', {}, badge(d.status), d.status === 'pending' && d.next_attempt_at ? h('div', { class: 'small muted' }, 'next ', time(d.next_attempt_at)) : null) },
        { label: 'Attempts', class: 'num', cell: (d) => String(d.attempts) },
        { label: 'Last response', cell: lastResponse },
        { label: 'Destination', cell: (d) => idLink(d.destination_id) },
        { label: 'Event', cell: (d) => idLink(d.event_id) },
      ],
    })),
  );
}

/** The last attempt's status code, with its error under it. */
export function lastResponse(d) {
  if (d.last_status_code === null && !d.last_error) return h('span', { class: 'muted' }, '—');
  return h('div', {}, statusCode(d.last_status_code), d.last_error ? h('div', { class: 'small muted' }, d.last_error) : null);
}
