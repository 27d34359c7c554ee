// The overview: delivery rate and latency over the last hour or day (charts from
// GET /v1/stats/series), success rate, backlog and oldest pending delivery (GET /v1/stats), and
// the destinations that need attention (failing, disabled or paused, from the first page of
// GET /v1/destinations) with each destination's figures for the window.

import { get } from '../api.js';
import { h, mount, count, percent, age, duration, time, idLink, pageHeader, section, rfc3339, notice, stateBadge } from '../dom.js';
import { table } from '../table.js';
import { href } from '../router.js';
import { chart, fillBuckets } from '../charts.js';

const RANGES = {
  hour: { label: 'Last hour', seconds: 3600, bucket: 60 },
  day: { label: 'Last 24 hours', seconds: 86400, bucket: 900 },
};

export async function overviewPage({ main, query, signal }) {
  const range = RANGES[query.range] ? query.range : 'hour';
  const { seconds, bucket } = RANGES[range];
  const now = Date.now() / 1000;
  const since = rfc3339(new Date(Math.floor((now - seconds) / bucket) * bucket * 1000));
  const [stats, series, destinations] = await Promise.all([
    get('/v1/stats', { since }, signal),
    get('/v1/stats/series', { since, bucket_seconds: bucket }, signal),
    get('/v1/destinations', { limit: 50 }, signal),
  ]);
  const byId = new Map(destinations.data.map((d) => [d.id, d]));
  const rateBox = h('div', { class: 'chart', role: 'img', 'aria-label': `Attempts per minute, ${RANGES[range].label.toLowerCase()}` });
  const latencyBox = h('div', { class: 'chart', role: 'img', 'aria-label': `Attempt latency p50 and p99, ${RANGES[range].label.toLowerCase()}` });
  const attempts = series.buckets.reduce((n, b) => n + b.attempts, 0);
  mount(main, 
    pageHeader('Overview', rangeSwitch(range)),
    tiles(stats),
    h('div', { class: 'grid-2' },
      section('Delivery rate', h('p', { class: 'muted small' }, `${count(attempts)} attempts, ${RANGES[range].label.toLowerCase()}`), rateBox),
      section('Latency', h('p', { class: 'muted small' }, 'Attempt duration, median and 99th percentile'), latencyBox),
    ),
    attention(destinations),
    section('Destinations in this window', destinationTable(stats, byId)),
  );
  // Charts need the boxes on screen to know their width: draw once the page is in the document.
  const data = fillBuckets(series);
  requestAnimationFrame(() => {
    chart(rateBox, 'rate', data, signal).catch((e) => rateBox.append(notice('error', e.message)));
    chart(latencyBox, 'latency', data, signal).catch((e) => latencyBox.append(notice('error', e.message)));
  });
}

function rangeSwitch(active) {
  return h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time range' },
    Object.entries(RANGES).map(([key, r]) => h('a', { class: `button ${key === active ? 'selected' : ''}`, href: href('/', key === 'hour' ? {} : { range: key }), 'aria-current': key === active ? 'true' : null }, r.label)));
}

function tile(label, value, note, tone) {
  return h('div', { class: `tile ${tone ? `tile-${tone}` : ''}` }, h('div', { class: 'tile-label' }, label), h('div', { class: 'tile-value' }, value), note ? h('div', { class: 'tile-note' }, note) : null);
}

function tiles(stats) {
  const d = stats.deliveries;
  const rate = stats.success_rate;
  const rateTone = rate === null ? null : rate >= 0.99 ? 'ok' : rate >= 0.9 ? 'warn' : 'bad';
  const oldest = stats.oldest_pending_age_seconds;
  return h('div', { class: 'tiles' },
    tile('Success rate', percent(rate), 'of attempts in the window', rateTone),
    tile('Deliveries', count(d.succeeded + d.failed + d.pending), h('span', {}, h('span', { class: 'text-ok' }, `${count(d.succeeded)} succeeded`), ' · ', h('span', { class: 'text-bad' }, `${count(d.failed)} failed`), ' · ', h('span', { class: 'text-warn' }, `${count(d.pending)} pending`))),
    tile('Backlog', count(stats.backlog), 'pending deliveries now', stats.backlog > 0 ? 'warn' : null),
    tile('Oldest pending', oldest === null ? 'none' : age(oldest), oldest === null ? 'nothing is waiting' : 'since the delivery was created', oldest !== null && oldest > 300 ? 'warn' : null),
  );
}

function attention(destinations) {
  const troubled = destinations.data.filter((d) => !d.enabled || d.paused || d.failing_since);
  const more = destinations.next_cursor ? h('p', { class: 'muted small' }, 'Showing the newest 50 destinations. ', h('a', { href: '#/destinations' }, 'See all destinations')) : null;
  if (!destinations.data.length) {
    return section('Destinations', h('p', { class: 'empty' }, 'No destinations yet. ', h('a', { href: '#/destinations/new' }, 'Add a destination'), ' to start delivering events.'));
  }
  if (!troubled.length) return section('Destinations needing attention', h('p', { class: 'empty ok' }, 'Every destination is enabled and delivering.'), more);
  return section('Destinations needing attention',
    table(troubled, [
      { label: 'Destination', cell: (d) => h('a', { href: `#/destinations/${encodeURIComponent(d.id)}` }, d.description || d.url) },
      { label: 'State', cell: stateBadge },
      { label: 'Since', cell: (d) => time(!d.enabled ? d.disabled_at : d.paused ? d.paused_at : d.failing_since) },
      { label: 'Reason', cell: reason },
    ], { caption: 'Destinations failing, disabled or paused' }),
    more);
}

// Why a destination is listed: disabled first (nothing flows until it is enabled), then paused.
function reason(d) {
  const paused = 'Paused: its deliveries collect until it is resumed';
  if (!d.enabled) return [d.disabled_reason || 'Disabled', d.paused ? h('div', { class: 'muted small' }, paused) : null];
  if (d.paused) return [paused, d.failing_since ? h('div', { class: 'muted small' }, 'Every attempt failed before it was paused') : null];
  return 'Every attempt fails since then';
}

function destinationTable(stats, byId) {
  return table(stats.destinations, [
    { label: 'Destination', cell: (s) => (byId.has(s.destination_id) ? h('a', { href: `#/destinations/${encodeURIComponent(s.destination_id)}` }, byId.get(s.destination_id).description || byId.get(s.destination_id).url) : idLink(s.destination_id)) },
    { label: 'Attempts', class: 'num', cell: (s) => count(s.attempts) },
    { label: 'Success rate', class: 'num', cell: (s) => percent(s.success_rate) },
    { label: 'Succeeded', class: 'num', cell: (s) => count(s.deliveries.succeeded) },
    { label: 'Failed', class: 'num', cell: (s) => count(s.deliveries.failed) },
    { label: 'Pending', class: 'num', cell: (s) => count(s.deliveries.pending) },
    { label: 'p50', class: 'num', cell: (s) => duration(s.latency_ms.p50) },
    { label: 'p99', class: 'num', cell: (s) => duration(s.latency_ms.p99) },
  ], { empty: 'No deliveries in this window.', caption: 'Per-destination figures' });
}
