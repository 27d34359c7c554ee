// Destinations: the list, a new destination, and the form both creating and editing use (URL,
// filters, custom headers, format and its Meta context, ordering, limits, retry policy, replay on recovery). Editing sends only the fields the user
// changed, so masked credential headers are sent back only when the user rewrote them.

import { post, seg } from '../api.js';
import { h, mount, time, pageHeader, section, stateBadge } from '../dom.js';
import { form } from '../form.js';
import { pagedTable } from '../table.js';
import { navigate } from '../router.js';

export async function destinationsPage({ main, query, signal }) {
  mount(main, 
    pageHeader('Destinations', h('a', { class: 'button primary', href: '#/destinations/new' }, 'New destination')),
    h('p', { class: 'muted' }, 'Every event that matches a destination\u2019s filters is delivered to it, signed with Standard Webhooks headers.'),
    section(null, await pagedTable({
      path: '/v1/destinations',
      route: '/destinations',
      query,
      signal,
      caption: 'Destinations',
      empty: 'No destinations yet.',
      columns: [
        { label: 'Destination', cell: (d) => h('div', {}, h('a', { href: `#/destinations/${seg(d.id)}` }, d.description || d.url), d.description ? h('div', { class: 'muted small url' }, d.url) : null) },
        { label: 'State', cell: stateBadge },
        { label: 'Event types', cell: (d) => d.event_types.join(', ') },
        { label: 'Timeout', class: 'num', cell: (d) => `${d.timeout_ms} ms` },
        { label: 'Created', cell: (d) => time(d.created_at) },
      ],
    })),
  );
}

export function newDestinationPage({ main }) {
  const f = destinationForm(null, async (body) => {
    const created = await post('/v1/destinations', body);
    navigate(`/destinations/${created.id}`, { created: '1' });
  });
  mount(main, pageHeader('New destination'), section(null, f.el));
}

const list = (hint) => ({ type: 'list', wide: true, hint });

/** The create (`d` null) or edit form; `save(body)` gets the request body. */
export function destinationForm(d, save) {
  const editing = Boolean(d);
  const retry = d?.retry_policy || {};
  const meta = d?.meta || {};
  return form({
    submit: editing ? 'Save changes' : 'Create destination',
    className: 'destination-form',
    fields: [
      { name: 'url', label: 'URL', type: 'url', required: true, wide: true, value: d?.url, placeholder: 'https://example.com/webhooks/wap', hint: 'Where events are POSTed: https:// (or http://) on an address the relay may reach.' },
      { name: 'description', label: 'Description', wide: true, value: d?.description, placeholder: 'Production CRM' },
      editing ? null : { name: 'enabled', label: 'Enabled: start delivering at once', type: 'checkbox', value: true },
      { group: 'Filters', hint: 'Leave a filter empty to match everything. Separate values with commas.', fields: [
        { name: 'event_types', label: 'Event types', value: d && !(d.event_types.length === 1 && d.event_types[0] === '*') ? d.event_types : null, placeholder: 'message.received, session.*', ...list('Exact types, prefix.* or *. The relay\u2019s own events (relay.destination.disabled, relay.source.silent, \u2026) come only to relay.* or their exact type, never to *.') },
        { name: 'source_ids', label: 'Source ids', value: d?.source_ids, placeholder: 'src_…', ...list() },
        { name: 'device_ids', label: 'Device ids', value: d?.device_ids, placeholder: 'dev_…', ...list() },
      ] },
      { name: 'headers', label: 'Custom headers', type: 'headers', wide: true, rows: 3, value: d?.headers, placeholder: 'X-Team: payments', hint: editing ? 'One "Name: value" per line. Credential-like values show masked (…abcd): to change the headers, type every credential in full again.' : 'One "Name: value" per line. Credential-like values are stored encrypted and shown masked afterwards.' },
      { group: 'Format', hint: 'WAPing: the event as WAPing sent it. Meta Cloud API: rewritten as Meta\u2019s WhatsApp Cloud API messages webhook, signed with X-Hub-Signature-256; events with no Meta equivalent are not sent.', fields: [
        { name: 'format', label: 'Format', type: 'select', value: d?.format || 'waping', options: FORMATS },
        { name: 'meta_waba_id', label: 'WABA id', value: meta.waba_id, placeholder: '102290129340398', showIf: isMeta, hint: 'entry[0].id' },
        { name: 'meta_phone_number_id', label: 'Phone number id', value: meta.phone_number_id, placeholder: '106540352242922', showIf: isMeta, hint: 'metadata.phone_number_id' },
        { name: 'meta_display_phone_number', label: 'Display phone number', value: meta.display_phone_number, placeholder: '15550001234', pattern: '[0-9]*', showIf: isMeta, hint: 'Digits only, no +. Empty: from the event.' },
      ] },
      { group: 'Ordering', hint: 'Per device: the deliveries of one deviceId are sent one at a time, in the order the relay accepted the events; one being retried holds back that device\u2019s later ones. Other devices, and events without a deviceId, are not held.', fields: [
        { name: 'ordering', label: 'Ordering', type: 'select', value: d?.ordering || 'none', options: ORDERINGS },
      ] },
      { group: 'Limits', fields: [
        { name: 'timeout_ms', label: 'Timeout (ms)', type: 'number', min: 1, max: 30000, value: d?.timeout_ms, placeholder: '10000', required: editing },
        { name: 'max_in_flight', label: 'Max in flight', type: 'number', min: 1, value: d?.max_in_flight, placeholder: '16', required: editing, hint: 'Concurrent requests at most.' },
        { name: 'rate_limit_per_second', label: 'Rate limit (per second)', type: 'number', min: 1, value: d?.rate_limit_per_second, placeholder: 'plan limit', hint: 'Empty: only the plan\u2019s limit.' },
      ] },
      { group: 'Retry policy', hint: 'The wait doubles after each failed attempt, up to the longest wait, for as long as the retry window lasts.', fields: [
        { name: 'initial_delay_ms', label: 'First retry after (ms)', type: 'number', min: 0, value: retry.initial_delay_ms, placeholder: '5000', required: editing },
        { name: 'max_delay_ms', label: 'Longest wait (ms)', type: 'number', min: 0, value: retry.max_delay_ms, placeholder: '3600000', required: editing },
        { name: 'window_seconds', label: 'Retry window (s)', type: 'number', min: 0, value: retry.window_seconds, placeholder: '86400', required: editing, hint: 'At most the plan\u2019s retry window.' },
      ] },
      { name: 'replay_on_recovery', label: 'Replay on recovery: when it answers again after a failing streak, queue the deliveries that failed during the streak once more', type: 'checkbox', value: d?.replay_on_recovery },
    ].filter(Boolean),
    onSubmit: async (_, f) => {
      const body = editing ? patchBody(f.changed(), f.values()) : createBody(f.values());
      if (editing && !Object.keys(body).length) return f.showMessage('Nothing changed.');
      await save(body, f);
    },
  });
}

const RETRY = ['initial_delay_ms', 'max_delay_ms', 'window_seconds'];
export const FORMATS = [['waping', 'WAPing (events as received)'], ['meta_cloud_api', 'Meta WhatsApp Cloud API']];
export const ORDERINGS = [['none', 'None (any order, many at once)'], ['per_device', 'Per device (one at a time, in acceptance order)']];
const META = ['waba_id', 'phone_number_id', 'display_phone_number'];
const isMeta = (v) => v.format === 'meta_cloud_api';

// The Meta context from the visible meta fields (empty ones left out), or null when none is set.
function metaBody(v) {
  const meta = Object.fromEntries(META.filter((k) => v[`meta_${k}`]).map((k) => [k, v[`meta_${k}`]]));
  return Object.keys(meta).length ? meta : null;
}

function createBody(v) {
  const body = { url: v.url, enabled: v.enabled, format: v.format, ordering: v.ordering, replay_on_recovery: v.replay_on_recovery };
  if (isMeta(v) && metaBody(v)) body.meta = metaBody(v);
  if (v.description) body.description = v.description;
  for (const key of ['event_types', 'source_ids', 'device_ids']) if (v[key].length) body[key] = v[key];
  if (Object.keys(v.headers).length) body.headers = v.headers;
  for (const key of ['timeout_ms', 'max_in_flight', 'rate_limit_per_second']) if (v[key] !== null) body[key] = v[key];
  const retry = Object.fromEntries(RETRY.filter((k) => v[k] !== null).map((k) => [k, v[k]]));
  if (Object.keys(retry).length) body.retry_policy = retry;
  return body;
}

// Only what changed; an emptied filter means "everything" again.
// The Meta context is replaced whole, so any changed meta field sends all three.
function patchBody(changed, values) {
  const body = {};
  for (const [key, value] of Object.entries(changed)) {
    if (key.startsWith('meta_')) body.meta = metaBody(values);
    else if (RETRY.includes(key)) {
      if (value !== null) (body.retry_policy ||= {})[key] = value;
    } else if (key === 'event_types') body.event_types = value.length ? value : ['*'];
    else if (key === 'source_ids' || key === 'device_ids') body[key] = value.length ? value : null;
    else if (key === 'description') body.description = value || null;
    else if (key === 'timeout_ms' || key === 'max_in_flight') {
      if (value !== null) body[key] = value;
    } else body[key] = value;
  }
  return body;
}
