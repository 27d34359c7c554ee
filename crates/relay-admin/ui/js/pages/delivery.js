// One delivery: its state, "Redeliver" (a new attempt now, trigger manual; the page then polls
// every second and shows the attempt when it comes), and its attempts as a timeline, newest
// first (trigger, outcome, status code, duration, response headers and body), 50 at a time. A
// pending delivery due within a minute is followed the same way until it is attempted.

import { get, post, seg } from '../api.js';
import { h, mount, replace, badge, time, duration, statusCode, idLink, facts, pageHeader, section, notice, errorNotice } from '../dom.js';
import { href } from '../router.js';
import { pollUntil } from '../poll.js';
import { PAGE_SIZE } from '../table.js';

// A pending delivery whose next attempt is this close is followed live.
const FOLLOW_WITHIN_MS = 60000;
const dueSoon = (d) => d.status === 'pending' && (!d.next_attempt_at || Date.parse(d.next_attempt_at) - Date.now() < FOLLOW_WITHIN_MS);

export async function deliveryPage({ main, params, query, signal }) {
  const path = `/v1/deliveries/${seg(params.id)}`;
  const cursor = query.cursor || undefined;
  const load = (c) => Promise.all([get(path, {}, signal), get(`${path}/attempts`, { limit: PAGE_SIZE, cursor: c }, signal)]);
  const [delivery, attempts] = await load(cursor);
  const summary = h('div', {}, summaryOf(delivery));
  const timelineBox = h('div', {}, timeline(attempts, delivery, cursor));
  const show = ([d, page]) => {
    replace(summary, summaryOf(d));
    replace(timelineBox, timeline(page, d, undefined));
  };
  // Polls the newest attempts until `done(delivery)`; a new follow replaces the previous one.
  let following = null;
  const follow = (done) => {
    following?.abort();
    following = new AbortController();
    const stop = AbortSignal.any([signal, following.signal]);
    return pollUntil(() => load(undefined), ([d]) => done(d), { signal: stop, onUpdate: show }).catch((error) => {
      if (error.name !== 'AbortError') throw error;
      return null;
    });
  };
  const status = h('div', { 'aria-live': 'polite' });
  const button = h('button', { type: 'button', class: 'button primary' }, 'Redeliver');
  button.addEventListener('click', async () => {
    button.disabled = true;
    replace(status, notice('info', 'Redelivery queued; waiting for the new attempt…'));
    try {
      const queued = await post(`${path}/redeliver`, {}, signal);
      replace(summary, summaryOf(queued));
      const last = await follow((d) => d.attempts > queued.attempts);
      if (!last) return;
      const [d, page] = last;
      const attempt = page.data[0];
      replace(status, d.attempts > queued.attempts && attempt
        ? notice(attempt.outcome === 'success' ? 'ok' : 'error', h('strong', {}, `Attempt ${attempt.number}: `), badge(attempt.outcome), ' ', statusCode(attempt.status_code), ` in ${duration(attempt.duration_ms)}.`)
        : notice('warn', 'The new attempt has not happened yet: it is queued (rate limits, or a disabled or paused destination, can delay it). Reload to check again.'));
    } catch (error) {
      if (error.name !== 'AbortError' && error.status !== 401) replace(status, errorNotice(error));
    } finally {
      button.disabled = false;
    }
  });
  mount(main, 
    pageHeader(h('span', {}, 'Delivery ', h('code', { class: 'id' }, delivery.id)), button),
    status,
    summary,
    section('Attempts', timelineBox),
  );
  // On the newest page, a delivery about to be attempted updates by itself.
  if (!cursor && dueSoon(delivery)) follow((d) => !dueSoon(d)).catch(() => {});
}

function summaryOf(d) {
  return section(null, h('div', { class: 'summary-line' }, badge(d.status), d.last_status_code ? statusCode(d.last_status_code) : null, h('span', { class: 'muted' }, `${d.attempts} ${d.attempts === 1 ? 'attempt' : 'attempts'}`)), facts([
    ['Event', idLink(d.event_id)],
    ['Destination', idLink(d.destination_id)],
    ['Created', time(d.created_at)],
    ['Completed', d.completed_at ? time(d.completed_at) : undefined],
    ['Next attempt', d.status === 'pending' ? h('span', {}, time(d.next_attempt_at), ' ', badge(d.next_trigger)) : undefined],
    ['Last error', d.last_error || undefined],
  ]));
}

function timeline(page, delivery, cursor) {
  if (!page.data.length) {
    return h('p', { class: 'empty' }, delivery.status === 'pending' ? 'No attempt yet: the first one is queued.' : 'No attempts.');
  }
  const route = `/deliveries/${delivery.id}`;
  return h('div', {},
    h('ol', { class: 'timeline', 'aria-label': 'Attempts, newest first' }, page.data.map((a, i) => attemptItem(a, !cursor && i === 0))),
    cursor || page.next_cursor
      ? h('nav', { class: 'pager', 'aria-label': 'Attempt pages' }, h('span', {}),
          h('span', { class: 'pager-links' },
            cursor ? h('a', { class: 'button', href: href(route) }, 'Back to newest') : null,
            page.next_cursor ? h('a', { class: 'button', href: href(route, { cursor: page.next_cursor }) }, 'Older attempts') : null))
      : null);
}

function attemptItem(a, open) {
  const ok = a.outcome === 'success';
  const headers = Object.entries(a.response_headers || {});
  return h('li', { class: `attempt ${ok ? 'attempt-ok' : 'attempt-bad'}` },
    h('div', { class: 'attempt-head' },
      h('strong', {}, `Attempt ${a.number}`),
      badge(a.outcome),
      statusCode(a.status_code),
      h('span', { class: 'trigger' }, 'trigger ', badge(a.trigger)),
      h('span', { class: 'muted' }, duration(a.duration_ms)),
      h('span', { class: 'muted' }, time(a.started_at))),
    h('div', { class: 'attempt-url' }, h('code', { class: 'url' }, a.url)),
    a.error ? h('p', { class: 'attempt-error' }, a.error) : null,
    headers.length
      ? h('details', { open }, h('summary', {}, `Response headers (${headers.length})`),
          h('table', { class: 'kv' }, h('tbody', {}, headers.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v))))))
      : null,
    a.response_body !== null && a.response_body !== undefined && a.response_body !== ''
      ? h('div', { class: 'attempt-body' }, h('div', { class: 'label' }, 'Response body'), h('pre', { tabindex: '0' }, a.response_body))
      : h('p', { class: 'muted small' }, a.status_code ? 'Empty response body.' : 'No response.'),
    a.next_attempt_at ? h('p', { class: 'muted small' }, 'Next attempt scheduled for ', time(a.next_attempt_at)) : null,
  );
}
