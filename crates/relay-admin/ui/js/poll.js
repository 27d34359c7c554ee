// Following a delivery after it was queued (a redelivery, a test event): poll
// GET /v1/deliveries/{id} every second until a new attempt is recorded, or 60 s have passed, or
// the page was left (its signal aborted).

import { get, seg } from './api.js';

const INTERVAL_MS = 1000;
const TIMEOUT_MS = 60000;

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new DOMException('Aborted', 'AbortError'));
    }, { once: true });
  });
}

/**
 * Calls `onUpdate(delivery)` after every poll; resolves with the last delivery once it has more
 * than `afterAttempts` attempts (or on timeout).
 */
export async function followDelivery(id, { afterAttempts = 0, signal, onUpdate }) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const delivery = await get(`/v1/deliveries/${seg(id)}`, {}, signal);
    onUpdate?.(delivery);
    const done = delivery.attempts > afterAttempts;
    if (done || Date.now() > deadline) return delivery;
    await sleep(INTERVAL_MS, signal);
  }
}
