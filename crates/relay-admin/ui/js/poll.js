// Following work after it was queued (a redelivery, a test event): poll the API every second
// (GET /v1/deliveries/{id}, say) until what the user waits for is there (a new attempt), or 60 s
// have passed, or the page was left (its signal aborted).

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
 * Calls `load()` every second and `onUpdate(value)` with each answer, until `done(value)` or the
 * timeout; resolves with the last value.
 */
export async function pollUntil(load, done, { signal, onUpdate }) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const value = await load();
    onUpdate?.(value);
    if (done(value) || Date.now() > deadline) return value;
    await sleep(INTERVAL_MS, signal);
  }
}

/** Follows a delivery until it has more than `afterAttempts` attempts. */
export function followDelivery(id, { afterAttempts = 0, signal, onUpdate }) {
  return pollUntil(() => get(`/v1/deliveries/${seg(id)}`, {}, signal), (d) => d.attempts > afterAttempts, { signal, onUpdate });
}
