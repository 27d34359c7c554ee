// One destination: its settings and state, enable/disable, pause/resume (PATCH `paused`: while
// paused its deliveries collect, pending and unattempted, their retry window not running out; on
// resume they flow in the order they were accepted), the signing secret (revealed on request,
// rotated with a grace period), a test event with its attempt as it happens, a replay of
// a time range (with the count queued), a preview of what it would receive for a WAPing event
// (POST /v1/destinations/{id}/preview: the body, in its format, and its X-Hub-Signature-256),
// editing and deletion.

import { get, post, patch, del, seg } from '../api.js';
import { h, mount, replace, badge, time, duration, statusCode, age, copyButton, facts, pageHeader, section, confirmButton, notice, errorNotice, idLink, rfc3339, stateBadge, jsonBlock } from '../dom.js';
import { form } from '../form.js';
import { navigate, href } from '../router.js';
import { followDelivery } from '../poll.js';
import { destinationForm, FORMATS, ORDERINGS } from './destinations.js';

export async function destinationPage({ main, params, query, signal }) {
  const d = await get(`/v1/destinations/${seg(params.id)}`, {}, signal);
  const path = `/v1/destinations/${seg(d.id)}`;
  const reload = () => navigate(`/destinations/${d.id}`);
  const testArea = h('div', { class: 'test-result', 'aria-live': 'polite' });
  mount(main, 
    pageHeader(d.description || d.url, toggleButton(d, path, reload), pauseButton(d, path, reload), testButton(d, path, testArea, signal),
      h('a', { class: 'button', href: href('/deliveries', { destination_id: d.id }) }, 'Deliveries')),
    query.created ? notice('ok', 'Destination created. Its signing secret is below: your endpoint verifies deliveries with it.') : null,
    !d.enabled ? notice('warn', h('strong', {}, 'Disabled'), d.disabled_at ? [' since ', time(d.disabled_at)] : null, d.disabled_reason ? ` — ${d.disabled_reason}` : null, '. Its deliveries wait until it is enabled again.') : null,
    d.paused ? notice('paused', h('strong', {}, 'Paused'), d.paused_at ? [' since ', time(d.paused_at)] : null, ' — nothing is attempted: its deliveries collect as pending (their retry window does not run out) and go out in the order they were accepted when you resume it. ', h('a', { href: href('/deliveries', { destination_id: d.id, status: 'pending' }) }, 'See pending deliveries')) : null,
    d.enabled && d.failing_since ? notice('warn', h('strong', {}, 'Failing'), ' — every attempt has failed since ', time(d.failing_since), '.') : null,
    testArea,
    section('Details', facts([
      ['Id', idLink(d.id, { full: true })],
      ['State', stateBadge(d)],
      ['URL', h('span', { class: 'with-copy' }, h('code', { class: 'url' }, d.url), copyButton(d.url))],
      ['Event types', d.event_types.join(', ')],
      ['Sources', d.source_ids?.length ? d.source_ids.map((id) => idLink(id)) : 'all'],
      ['Devices', d.device_ids?.length ? d.device_ids.join(', ') : 'all'],
      ['Format', formatLabel(d.format)],
      d.format === 'meta_cloud_api' ? ['Meta context', metaFacts(d.meta)] : null,
      ['Ordering', orderingLabel(d.ordering)],
      ['Replay on recovery', d.replay_on_recovery ? 'yes: the failed deliveries of a failing streak are queued again once it answers' : 'no'],
      ['Custom headers', Object.keys(d.headers).length ? h('ul', { class: 'plain' }, Object.entries(d.headers).map(([k, v]) => h('li', {}, h('code', {}, `${k}: ${v}`)))) : 'none'],
      ['Timeout', `${d.timeout_ms} ms`],
      ['Max in flight', String(d.max_in_flight)],
      ['Rate limit', d.rate_limit_per_second ? `${d.rate_limit_per_second} / s` : 'the plan\u2019s'],
      ['Retry', `first after ${wait(d.retry_policy.initial_delay_ms)}, then doubling up to ${wait(d.retry_policy.max_delay_ms)} apart, for ${age(d.retry_policy.window_seconds)}`],
      ['Created', time(d.created_at)],
      ['Updated', time(d.updated_at)],
    ])),
    section('Signing secret', secretPanel(path, Boolean(query.created))),
    section('Preview', previewPanel(d, path, signal)),
    section('Replay', h('p', { class: 'muted' }, 'Queue this destination\u2019s deliveries created in a time range again (trigger replay).'), replayForm(d, path).el),
    section('Edit', destinationForm(d, async (body) => {
      await patch(path, body);
      reload();
    }).el),
    section('Delete', h('p', { class: 'muted' }, 'Pending deliveries to it fail with "the destination was deleted".'),
      confirmButton('Delete destination', 'Yes, delete it', async () => {
        await del(path);
        navigate('/destinations');
      })),
  );
}

const formatLabel = (format) => FORMATS.find(([value]) => value === format)?.[1] || format;
const orderingLabel = (ordering) => ORDERINGS.find(([value]) => value === ordering)?.[1] || ordering;

function metaFacts(meta) {
  const set = Object.entries(meta || {}).filter(([, v]) => v);
  if (!set.length) return h('span', { class: 'muted' }, 'none: taken from each event');
  return h('ul', { class: 'plain' }, set.map(([k, v]) => h('li', {}, `${k}: `, h('code', {}, v))));
}

// A WAPing `message.received` event, to start the preview from.
const SAMPLE_EVENT = {
  eventId: 'evt_preview_1',
  type: 'message.received',
  timestamp: '2026-04-03T12:00:00Z',
  deviceId: 'dev_1',
  message: { id: 'm_preview_1', from: '+15550001234', fromName: 'Ada', body: 'Hello from the preview' },
};

// "Preview": what this destination would receive for the event in the textarea (nothing is sent).
function previewPanel(d, path, signal) {
  const out = h('div', { class: 'preview-result', 'aria-live': 'polite' });
  const f = form({
    submit: 'Preview',
    fields: [{ name: 'event', label: 'WAPing event (JSON)', type: 'textarea', rows: 10, wide: true, value: JSON.stringify(SAMPLE_EVENT, null, 2) }],
    onSubmit: async (values) => {
      replace(out);
      let event;
      try {
        event = JSON.parse(values.event);
      } catch (error) {
        throw Object.assign(new Error(`The event is not valid JSON: ${error.message}`), { title: 'Check the event' });
      }
      const p = await post(`${path}/preview`, event, signal);
      if (!p.fanned_out) {
        replace(out, notice('warn', h('strong', {}, 'Not sent to this destination'), ' — ', h('code', {}, p.reason || 'unknown'), p.field ? [' (field ', h('code', {}, p.field), ')'] : null, '.'));
        return;
      }
      replace(out,
        p.x_hub_signature_256 ? h('p', { class: 'with-copy' }, 'X-Hub-Signature-256: ', h('code', { class: 'signature' }, p.x_hub_signature_256), copyButton(p.x_hub_signature_256)) : null,
        jsonBlock(p.body, 'Preview body'));
    },
  });
  return h('div', {}, h('p', { class: 'muted' }, d.format === 'meta_cloud_api'
    ? 'What this destination would receive for a WAPing event: the Meta webhook body and its signature. Nothing is sent; its filters are not applied.'
    : 'What this destination would receive for a WAPing event. Nothing is sent; its filters are not applied.'), f.el, out);
}

// A retry delay: `500 ms`, `5 s`, `1 h`.
const wait = (ms) => (ms < 1000 ? `${ms} ms` : age(ms / 1000));

function toggleButton(d, path, reload) {
  return patchButton(d.enabled ? 'Disable' : 'Enable', path, { enabled: !d.enabled }, reload);
}

// Pause holds the deliveries (they collect, nothing is attempted); Resume lets them flow again.
function pauseButton(d, path, reload) {
  return patchButton(d.paused ? 'Resume' : 'Pause', path, { paused: !d.paused }, reload,
    d.paused ? 'Deliver what collected while paused, in the order it was accepted' : 'Hold deliveries: they collect as pending and nothing is attempted until you resume');
}

// A button that PATCHes `body` to the destination, then reloads the page (an error shows below).
function patchButton(label, path, body, reload, title) {
  const button = h('button', { type: 'button', class: 'button', title }, label);
  let shown = null;
  button.addEventListener('click', async () => {
    button.disabled = true;
    shown?.remove();
    try {
      await patch(path, body);
      reload();
    } catch (error) {
      button.disabled = false;
      shown = errorNotice(error);
      button.after(shown);
    }
  });
  return button;
}

// "Send test event": POST /v1/destinations/{id}/test queues a `relay.test` event to this
// destination only; its delivery is then followed until its attempt is recorded.
function testButton(d, path, area, signal) {
  const button = h('button', { type: 'button', class: 'button primary' }, 'Send test event');
  button.addEventListener('click', async () => {
    button.disabled = true;
    replace(area, notice('info', 'Sending a test event…'));
    try {
      const sent = await post(`${path}/test`, {}, signal);
      const link = h('a', { href: `#/deliveries/${seg(sent.delivery_id)}` }, 'See its delivery');
      await followDelivery(sent.delivery_id, {
        signal,
        onUpdate: (delivery) => replace(area, testNotice(delivery, link, d.paused)),
      });
    } catch (error) {
      if (error.name !== 'AbortError' && error.status !== 401) replace(area, errorNotice(error));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function testNotice(delivery, link, paused) {
  const last = delivery.attempt_log?.[0];
  if (!last && paused) return notice('info', 'Test event queued. The destination is paused: it is attempted when you resume it. ', link);
  if (!last) return notice('info', 'Test event queued; waiting for its attempt… ', link);
  const ok = last.outcome === 'success';
  return notice(ok ? 'ok' : 'error', h('strong', {}, ok ? 'Test event delivered' : 'Test event failed'), ' — ', badge(last.outcome), ' ', statusCode(last.status_code), ` in ${duration(last.duration_ms)}`, last.error ? ` (${last.error})` : '', '. ', link);
}

function secretPanel(path, reveal) {
  const box = h('div', { class: 'secret-box' });
  const show = async () => {
    try {
      const s = await get(`${path}/secret`);
      replace(box,
        h('p', { class: 'with-copy' }, h('code', { class: 'secret' }, s.signing_secret), copyButton(s.signing_secret), hideButton()),
        s.previous_signing_secret ? h('p', { class: 'muted small' }, 'Previous secret, still signing until ', time(s.previous_expires_at), ': ', h('code', { class: 'secret' }, s.previous_signing_secret)) : null);
    } catch (error) {
      replace(box, errorNotice(error));
    }
  };
  const hidden = () => {
    const button = h('button', { type: 'button', class: 'button' }, 'Reveal secret');
    button.addEventListener('click', show);
    replace(box, h('p', {}, h('code', { class: 'secret' }, 'whsec_••••••••••••••••'), ' ', button));
  };
  const hideButton = () => h('button', { type: 'button', class: 'button small', onclick: hidden }, 'Hide');
  if (reveal) show();
  else hidden();
  const rotate = form({
    submit: 'Rotate signing secret',
    fields: [{ name: 'previous_valid_seconds', label: 'Keep signing with the previous secret for (seconds)', type: 'number', min: 0, max: 604800, value: 86400, hint: 'Deliveries carry both signatures meanwhile: 0 to 604800 (7 days).' }],
    onSubmit: async (values, f) => {
      await post(`${path}/secret/rotate`, { previous_valid_seconds: values.previous_valid_seconds });
      await show();
      f.showMessage('Signing secret rotated.');
    },
  });
  return h('div', {}, h('p', { class: 'muted' }, 'Deliveries are signed with this whsec_ secret (Standard Webhooks).'), box, rotate.el);
}

function replayForm(d, path) {
  const dayAgo = rfc3339(new Date(Date.now() - 86400 * 1000));
  return form({
    submit: 'Replay',
    className: 'inline-form',
    fields: [
      { name: 'since', label: 'Created since', type: 'datetime', required: true, value: dayAgo },
      { name: 'until', label: 'Until (empty: now)', type: 'datetime' },
      { name: 'status', label: 'Deliveries', type: 'select', value: 'failed', options: [['failed', 'Failed only'], ['all', 'All']] },
    ],
    onSubmit: async (values, f) => {
      const body = { since: values.since, status: values.status };
      if (values.until) body.until = values.until;
      const { queued } = await post(`${path}/replay`, body);
      f.showMessage(h('strong', {}, `${queued.toLocaleString('en-US')} ${queued === 1 ? 'delivery' : 'deliveries'} queued`), d.paused ? ' for replay; they wait until you resume the destination. ' : ' for replay. ', h('a', { href: href('/deliveries', { destination_id: d.id, status: 'pending' }) }, 'See pending deliveries'));
    },
  });
}
