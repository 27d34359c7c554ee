// Time-series charts with the vendored uPlot (loaded on first use, from this origin): attempts
// per minute (succeeded and failed) and attempt latency (p50, p99) from GET /v1/stats/series.
// (Its stylesheet is linked by index.html, before app.css, so the page's styles win.)
// Buckets without attempts are absent from the API's answer; here they count as zero attempts
// and as gaps in the latency lines.

import { h } from './dom.js';

let loading = null;

/** Loads uPlot's script once; resolves to the `uPlot` constructor. */
export function loadUplot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = h('script', { src: './vendor/uPlot.iife.min.js' });
      script.addEventListener('load', () => resolve(window.uPlot));
      script.addEventListener('error', () => {
        loading = null;
        reject(new Error('The chart library could not be loaded.'));
      });
      document.head.append(script);
    });
  }
  return loading;
}

/** Every bucket start of the window (seconds), with the API's buckets filled in. */
export function fillBuckets(series) {
  const step = series.bucket_seconds;
  const byStart = new Map(series.buckets.map((b) => [Math.floor(Date.parse(b.start) / 1000), b]));
  const first = Math.floor(Date.parse(series.since) / 1000 / step) * step;
  const last = Math.floor(Date.parse(series.until) / 1000 / step) * step;
  const xs = [];
  const ok = [];
  const failed = [];
  const p50 = [];
  const p99 = [];
  const perMinute = 60 / step;
  for (let t = first; t <= last; t += step) {
    const b = byStart.get(t);
    xs.push(t);
    ok.push(b ? b.succeeded * perMinute : 0);
    failed.push(b ? b.failed * perMinute : 0);
    p50.push(b && b.p50_ms !== null ? b.p50_ms : null);
    p99.push(b && b.p99_ms !== null ? b.p99_ms : null);
  }
  return { xs, ok, failed, p50, p99 };
}

const COLORS = { ok: '#15803d', failed: '#dc2626', p50: '#2563eb', p99: '#7c3aed' };

function axes(unit) {
  const grid = { stroke: '#e5e7eb', width: 1 };
  return [
    { grid, ticks: grid, stroke: '#6b7280', space: 72 },
    { grid, ticks: grid, stroke: '#6b7280', size: 56, label: unit, labelSize: 18, values: (_, ticks) => ticks.map((v) => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : String(+v.toFixed(2)))) },
  ];
}

/**
 * Draws a chart into `container` and keeps it as wide as the container. `kind`: `rate` or
 * `latency`. Answers a function that removes it.
 */
export async function chart(container, kind, data, signal) {
  const UPlot = await loadUplot();
  if (signal?.aborted) return () => {};
  const rate = kind === 'rate';
  const opts = {
    width: Math.max(container.clientWidth, 280),
    height: 220,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: true }, y: { range: (_, min, max) => [0, Math.max(max * 1.1, rate ? 1 : 10)] } },
    axes: axes(rate ? 'attempts / min' : 'ms'),
    series: rate
      ? [
          {},
          { label: 'Succeeded', stroke: COLORS.ok, fill: 'rgba(21,128,61,0.12)', width: 2, value: (_, v) => (v === null ? '—' : +v.toFixed(2)) },
          { label: 'Failed', stroke: COLORS.failed, fill: 'rgba(220,38,38,0.12)', width: 2, value: (_, v) => (v === null ? '—' : +v.toFixed(2)) },
        ]
      : [
          {},
          { label: 'p50', stroke: COLORS.p50, width: 2, spanGaps: false, points: { show: true, size: 5, fill: COLORS.p50 }, value: (_, v) => (v === null ? '—' : `${v.toFixed(1)} ms`) },
          { label: 'p99', stroke: COLORS.p99, width: 2, spanGaps: false, points: { show: true, size: 5, fill: COLORS.p99 }, value: (_, v) => (v === null ? '—' : `${v.toFixed(1)} ms`) },
        ],
  };
  const values = rate ? [data.xs, data.ok, data.failed] : [data.xs, data.p50, data.p99];
  const plot = new UPlot(opts, values, container);
  const observer = new ResizeObserver(() => {
    const width = Math.max(container.clientWidth, 280);
    if (Math.abs(width - plot.width) > 1) plot.setSize({ width, height: opts.height });
  });
  observer.observe(container);
  const remove = () => {
    observer.disconnect();
    plot.destroy();
  };
  signal?.addEventListener('abort', remove, { once: true });
  return remove;
}
