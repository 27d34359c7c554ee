// Helpers of the dashboard's browser test: the settings scripts/ui-test passes in the
// environment, a local receiver standing in for a destination (its answer switchable), WAPing-style
// signed ingest, admin API calls from node (for the second tenant), polls with a deadline, and
// the step runner that counts passes and failures.

import crypto from 'node:crypto';
import http from 'node:http';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through scripts/ui-test`);
  return value;
}

export const settings = {
  base: required('UI_BASE_URL'),
  tenantToken: required('UI_TENANT_TOKEN'),
  operatorToken: required('UI_OPERATOR_TOKEN'),
  screenshots: process.env.UI_SCREENSHOTS || 'target/ui-screenshots',
};

/** A destination on 127.0.0.1: answers `status` with `body`; records what it was sent. */
export async function startReceiver() {
  const state = { status: 200, body: 'ok', received: [] };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      state.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(state.status, { 'content-type': 'text/plain', 'x-receiver': 'ui-test' });
      res.end(state.body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${server.address().port}/hook`;
  state.close = () => new Promise((resolve) => server.close(resolve));
  state.answer = (status, body) => Object.assign(state, { status, body });
  return state;
}

/** POSTs `event` to an ingest URL as WAPing does: `X-Wap-Signature: sha256=<hex HMAC>`. */
export async function ingest(ingestUrl, event, secret) {
  const body = JSON.stringify(event);
  const signature = crypto.createHmac('sha256', secret).update(body).digest('hex');
  const response = await fetch(ingestUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'x-wap-signature': `sha256=${signature}` }, body });
  return { status: response.status, body: await response.json().catch(() => null) };
}

export function wapEvent(eventId, text) {
  return { eventId, type: 'message.received', timestamp: '2026-04-03T12:00:00Z', deviceId: 'dev_1', message: { id: `m_${eventId}`, from: '+15550001', body: text } };
}

/** An admin API call from node; throws on an error answer. */
export async function api(token, method, path, body) {
  const response = await fetch(`${settings.base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

/** Polls `check` (every 100 ms) until it answers something truthy, or fails after `ms`. */
export async function waitUntil(what, check, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Runs named steps in order; the first failure stops the run (later steps depend on it). */
export function stepper({ onFailure }) {
  const results = { passed: 0, failed: 0 };
  async function step(name, body) {
    const started = Date.now();
    try {
      await body();
      results.passed += 1;
      console.log(`ok ${results.passed} - ${name} (${Date.now() - started} ms)`);
    } catch (error) {
      results.failed += 1;
      console.log(`not ok - ${name}\n  ${String(error.stack || error).split('\n').join('\n  ')}`);
      await onFailure(name).catch(() => {});
      throw Object.assign(new Error(`step failed: ${name}`), { reported: true });
    }
  }
  return { step, results };
}
