// Events: the list with the filters of CONTRACT §5 (source, type, device, WAPing event id, time
// range), newest first, 50 at a time; and one event with its payload as formatted JSON, its
// deliveries, and "Redeliver" (to every destination that matches now), whose new attempts show
// as they come.

import { get, post, seg } from '../api.js';
import { h, mount, replace, badge, time, idLink, facts, pageHeader, section, jsonBlock, notice, errorNotice } from '../dom.js';
import { filterForm } from '../form.js';
import { pagedTable, table } from '../table.js';
import { navigate } from '../router.js';
import { pollUntil } from '../poll.js';
import { lastResponse } from './deliveries.js';

const FILTERS = ['source_id', 'type', 'device_id', 'wap_event_id', 'since', 'until'];

export async function eventsPage({ main, query, signal }) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, query[k]]));
  mount(main, 
    pageHeader('Events'),
    filterForm({
      route: '/events',
      query,
      navigate,
      fields: [
        { name: 'type', label: 'Type', placeholder: 'message.received' },
        { name: 'wap_event_id', label: 'WAPing event id', placeholder: 'evt_123' },
        { name: 'device_id', label: 'Device id', placeholder: 'dev_123' },
        { name: 'source_id', label: 'Source id', placeholder: 'src_…' },
        { name: 'since', label: 'Received since', type: 'datetime' },
        { name: 'until', label: 'Received before', type: 'datetime' },
      ],
    }),
    section(null, await pagedTable({
      path: '/v1/events',
      filters,
      route: '/events',
      query,
      signal,
      caption: 'Events, newest first',
      empty: FILTERS.some((k) => query[k]) ? 'No event matches these filters.' : 'No events yet. Events appear here as soon as a source accepts them.',
      columns: [
        { label: 'Received', cell: (e) => h('a', { href: `#/events/${seg(e.id)}` }, time(e.received_at)) },
        { label: 'Type', cell: (e) => h('code', {}, e.type) },
        { label: 'WAPing event id', cell: (e) => h('code', {}, e.wap_event_id) },
        { label: 'Device', cell: (e) => e.device_id || h('span', { class: 'muted' }, '—') },
        { label: 'Source', cell: (e) => idLink(e.source_id) },
        { label: 'Event', cell: (e) => idLink(e.id) },
      ],
    })),
  );
}

export async function eventPage({ main, params, signal }) {
  const event = await get(`/v1/events/${seg(params.id)}`, {}, signal);
  const path = `/v1/events/${seg(event.id)}`;
  const deliveriesBox = h('div', {}, deliveriesTable(event.deliveries || []));
  const status = h('div', { 'aria-live': 'polite' });
  const button = h('button', { type: 'button', class: 'button primary' }, 'Redeliver');
  button.addEventListener('click', async () => {
    button.disabled = true;
    replace(status);
    try {
      const before = new Map((event.deliveries || []).map((d) => [d.id, d.attempts]));
      const { queued } = await post(`${path}/redeliver`, {}, signal);
      replace(status, notice('ok', h('strong', {}, `${queued} ${queued === 1 ? 'delivery' : 'deliveries'} queued`), ' — new attempts appear below as they happen.'));
      // Done once every delivery has a new attempt (new deliveries: their first).
      await pollUntil(() => get(path, {}, signal), (e) => (e.deliveries || []).length > 0 && e.deliveries.every((d) => d.attempts > (before.get(d.id) ?? 0)), {
        signal,
        onUpdate: (e) => replace(deliveriesBox, deliveriesTable(e.deliveries || [])),
      });
    } catch (error) {
      if (error.name !== 'AbortError' && error.status !== 401) replace(status, errorNotice(error));
    } finally {
      button.disabled = false;
    }
  });
  // Deliveries still pending update by themselves (every second, for a minute at most).
  const settled = (e) => (e.deliveries || []).every((d) => d.status !== 'pending');
  if (!settled(event)) {
    pollUntil(() => get(path, {}, signal), settled, { signal, onUpdate: (e) => replace(deliveriesBox, deliveriesTable(e.deliveries || [])) }).catch(() => {});
  }
  mount(main, 
    pageHeader(h('span', {}, 'Event ', h('code', {}, event.wap_event_id)), button),
    status,
    section('Details', facts([
      ['Type', h('code', {}, event.type)],
      ['Relay id', idLink(event.id, { full: true })],
      ['WAPing event id', h('code', {}, event.wap_event_id)],
      ['Device', event.device_id || undefined],
      ['Source', idLink(event.source_id)],
      ['Timestamp', time(event.timestamp)],
      ['Received', time(event.received_at)],
    ])),
    section('Deliveries', h('p', { class: 'muted small' }, 'Redeliver queues the event again to every enabled destination whose filters match it now.'), deliveriesBox),
    section('Payload', jsonBlock(event.payload, 'Event payload')),
  );
}

export function deliveriesTable(deliveries) {
  return table(deliveries, [
    { label: 'Delivery', cell: (d) => idLink(d.id) },
    { label: 'Destination', cell: (d) => idLink(d.destination_id) },
    { label: 'Status', cell: (d) => badge(d.status) },
    { label: 'Attempts', class: 'num', cell: (d) => String(d.attempts) },
    { label: 'Last response', cell: lastResponse },
    { label: 'Created', cell: (d) => time(d.created_at) },
  ], { empty: 'No deliveries: no destination matched this event.', caption: 'Deliveries of this event' });
}
