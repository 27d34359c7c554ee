// The dashboard's browser test (run by scripts/ui-test against a real relay): a tenant signs in,
// creates a source and a destination through the forms, watches events arrive and deliveries
// succeed and fail, redelivers, replays, pauses a destination (its delivery waits, unsent) and
// resumes it (the delivery goes out), reads a rejection, creates a Meta Cloud API destination and
// previews what it would receive; then signs out, an operator signs in
// and picks the tenant, and another tenant's delivery shows "not found". Every request the pages
// make must go to 127.0.0.1; every page is screenshotted into target/ui-screenshots/; the
// overview's weight and first paint are printed. Assertions are on what the page shows, with
// Playwright's auto-waiting and time-outs.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { settings, startReceiver, ingest, wapEvent, api, waitUntil, stepper } from './support.mjs';

const { base, tenantToken, operatorToken } = settings;
const UI = `${base}/ui/`;
const TIMEOUT = 20000;
const SECRET = `ui-source-secret-${Date.now()}`;
fs.mkdirSync(settings.screenshots, { recursive: true });

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});
const receiver = await startReceiver();
const requests = [];
const pageErrors = [];

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  context.setDefaultTimeout(TIMEOUT);
  context.on('request', (r) => requests.push(r.url()));
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) pageErrors.push(`console: ${m.text()}`);
  });
  return page;
}

// A full-page screenshot, taken from the top (so the sticky bar sits where it belongs).
async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(settings.screenshots, `${name}.png`), fullPage: true });
}
const see = (page, text) => page.getByText(text).first().waitFor();
const heading = (page, name) => page.getByRole('heading', { level: 1, name }).waitFor();
const nav = async (page, name) => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
  await heading(page, name);
};

let page = await newPage();
const { step, results } = stepper({ onFailure: (name) => shot(page, `failed-${name.replace(/\W+/g, '-').slice(0, 60)}`) });
let ingestUrl;
let destinationId;

try {
  await step('the sign-in page loads, with the relay\u2019s Content-Security-Policy', async () => {
    const response = await page.goto(UI);
    assert.match(response.headers()['content-security-policy'] || '', /default-src 'self'/);
    await heading(page, 'Sign in');
    await shot(page, 'signin');
  });

  await step('keyboard: the first Tab reaches the skip link, and it moves focus to the content', async () => {
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
  });

  await step('a tenant signs in with its token', async () => {
    await page.getByLabel('Admin API token').fill(tenantToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await heading(page, 'Overview');
    await see(page, 'UI · growth');
    assert.ok(!page.url().includes(tenantToken), 'the token is never in the URL');
  });

  await step('a source is created through the form and shows its ingest URL, never its secret', async () => {
    await nav(page, 'Sources');
    await see(page, 'No sources yet');
    await page.getByRole('link', { name: 'New source' }).click();
    await page.getByLabel('Name', { exact: true }).fill('WAPing main');
    await page.getByLabel('Signing secret').fill(SECRET);
    await page.getByRole('button', { name: 'Create source' }).click();
    await see(page, 'Source created');
    ingestUrl = (await page.locator('.big code').textContent()).trim();
    assert.ok(ingestUrl.startsWith(`${base}/v1/ingest/src_`), ingestUrl);
    await see(page, 'HMAC-SHA256');
    await shot(page, 'source');
    await nav(page, 'Sources');
    await see(page, 'WAPing main');
    await shot(page, 'sources');
    for (const route of ['#/sources', `#/sources/${ingestUrl.split('/').pop()}`]) {
      await page.goto(`${UI}${route}`);
      await see(page, 'WAPing main');
      assert.ok(!(await page.content()).includes(SECRET), `the source secret is on ${route}`);
      assert.ok(!(await page.evaluate((s) => [...document.querySelectorAll('input, textarea')].some((i) => i.value.includes(s)), SECRET)), 'a form still holds the secret');
    }
  });

  await step('a destination pointing at the local receiver is created through the form', async () => {
    await nav(page, 'Destinations');
    await page.getByRole('link', { name: 'New destination' }).click();
    await page.getByLabel('URL', { exact: true }).fill(receiver.url);
    await page.getByLabel('Description').fill('Local receiver');
    await page.getByLabel('First retry after (ms)').fill('60000');
    await shot(page, 'destination-form');
    await page.getByRole('button', { name: 'Create destination' }).click();
    await see(page, 'Destination created');
    destinationId = decodeURIComponent(new URL(page.url()).hash.split('/')[2].split('?')[0]);
    assert.match(destinationId, /^dst_/);
    await see(page, 'whsec_');
    await shot(page, 'destination');
    await nav(page, 'Destinations');
    await see(page, 'Local receiver');
    await shot(page, 'destinations');
  });

  await step('"Send test event" delivers a relay.test event and shows its attempt', async () => {
    await page.getByRole('link', { name: 'Local receiver' }).click();
    await page.getByRole('button', { name: 'Send test event' }).click();
    await see(page, 'Test event delivered');
    assert.ok(receiver.received.some((r) => r.body.includes('relay.test')));
  });

  await step('a signed event appears in the events list and its delivery succeeds', async () => {
    const answer = await ingest(ingestUrl, wapEvent('evt_ui_1', 'Hi'), SECRET);
    assert.deepEqual(answer, { status: 200, body: { received: true } });
    await nav(page, 'Events');
    const row = page.locator('tbody tr', { hasText: 'evt_ui_1' });
    await row.waitFor();
    await shot(page, 'events');
    await row.getByRole('link').first().click();
    await heading(page, /evt_ui_1/);
    await see(page, '"body": "Hi"');
    await page.locator('tbody tr', { hasText: 'succeeded' }).waitFor();
    await shot(page, 'event');
    await page.locator('tbody tr').first().getByRole('link').first().click();
    await heading(page, /Delivery/);
    await page.locator('.attempt', { hasText: 'Attempt 1' }).filter({ hasText: 'success' }).waitFor();
  });

  let failedDelivery;
  await step('a failed attempt shows its status code and response body in the timeline', async () => {
    receiver.answer(500, 'receiver exploded: database is down');
    const answer = await ingest(ingestUrl, wapEvent('evt_ui_2', 'Second'), SECRET);
    assert.equal(answer.status, 200);
    await nav(page, 'Events');
    await page.locator('tbody tr', { hasText: 'evt_ui_2' }).getByRole('link').first().click();
    await heading(page, /evt_ui_2/);
    await page.locator('tbody tr', { hasText: '500' }).waitFor();
    await page.locator('tbody tr').first().getByRole('link').first().click();
    await heading(page, /Delivery/);
    failedDelivery = page.url();
    const attempt = page.locator('.attempt', { hasText: 'Attempt 1' });
    await attempt.filter({ hasText: 'http error' }).filter({ hasText: '500' }).waitFor();
    await attempt.getByText('receiver exploded: database is down').waitFor();
    await shot(page, 'delivery-failed');
  });

  await step('one click redelivers, and the new attempt (trigger manual) appears', async () => {
    receiver.answer(200, 'ok');
    assert.equal(page.url(), failedDelivery);
    await page.getByRole('button', { name: 'Redeliver' }).click();
    await see(page, 'Attempt 2:');
    await page.locator('.attempt', { hasText: 'Attempt 2' }).filter({ hasText: 'manual' }).filter({ hasText: 'success' }).waitFor();
    await page.locator('.summary-line', { hasText: 'succeeded' }).waitFor();
    await shot(page, 'delivery');
  });

  await step('an event is redelivered in one click and its delivery gets a new attempt', async () => {
    await nav(page, 'Events');
    await page.locator('tbody tr', { hasText: 'evt_ui_1' }).getByRole('link').first().click();
    await heading(page, /evt_ui_1/);
    await page.getByRole('button', { name: 'Redeliver' }).click();
    await see(page, '1 delivery queued');
    await page.locator('tbody tr', { hasText: 'succeeded' }).filter({ has: page.locator('td[data-label="Attempts"]', { hasText: '2' }) }).waitFor();
  });

  await step('replaying the destination shows how many deliveries were queued', async () => {
    await page.goto(`${UI}#/destinations/${destinationId}`);
    await heading(page, 'Local receiver');
    await page.getByLabel('Deliveries', { exact: true }).selectOption('all');
    await page.getByRole('button', { name: 'Replay', exact: true }).click();
    const message = page.getByText(/\d+ deliver(y|ies) queued/);
    await message.waitFor();
    const queued = Number((await message.textContent()).match(/(\d+)/)[1]);
    assert.ok(queued >= 1, `queued ${queued}`);
    console.log(`  replay queued ${queued}`);
  });

  await step('the deliveries list filters by destination and status', async () => {
    await page.locator('.page-header').getByRole('link', { name: 'Deliveries' }).click();
    await heading(page, 'Deliveries');
    await page.getByLabel('Status').selectOption('succeeded');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await see(page, 'Filters (2 set)');
    await page.locator('tbody tr', { hasText: 'succeeded' }).first().waitFor();
    await shot(page, 'deliveries');
    await page.goto(`${UI}#/destinations/${destinationId}`);
    await heading(page, 'Local receiver');
  });

  await step('editing a destination saves the changed filter; it can be disabled and enabled', async () => {
    await page.getByLabel('Event types').fill('message.*, relay.*');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('.facts dd', { hasText: 'message.*, relay.*' }).waitFor();
    await page.getByRole('button', { name: 'Disable', exact: true }).click();
    await page.locator('.facts dd .badge', { hasText: 'disabled' }).waitFor();
    await page.getByRole('button', { name: 'Enable', exact: true }).click();
    await page.locator('.facts dd .badge', { hasText: 'enabled' }).waitFor();
  });

  await step('a paused destination holds its delivery (pending, nothing sent); resuming delivers it', async () => {
    // On the destination page (the step before leaves it there).
    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    await page.locator('.facts dd .badge', { hasText: 'paused' }).waitFor();
    await page.locator('.notice-paused', { hasText: 'Paused' }).waitFor();
    await page.getByRole('button', { name: 'Resume', exact: true }).waitFor();
    assert.equal(await page.locator('.facts dd .badge', { hasText: 'disabled' }).count(), 0, 'paused is not disabled');
    await page.getByRole('button', { name: 'Disable', exact: true }).waitFor();
    await shot(page, 'destination-paused');

    assert.equal((await ingest(ingestUrl, wapEvent('evt_ui_paused', 'While paused'), SECRET)).status, 200);
    await nav(page, 'Events');
    await page.locator('tbody tr', { hasText: 'evt_ui_paused' }).getByRole('link').first().click();
    await heading(page, /evt_ui_paused/);
    const eventUrl = page.url();
    const row = page.locator('tbody tr', { has: page.locator('td[data-label="Destination"]', { hasText: destinationId.slice(-8) }) });
    await row.locator('td[data-label="Status"]', { hasText: 'pending' }).waitFor();
    // Several dispatcher rounds (it polls every 500 ms) later: still pending, never attempted.
    await page.waitForTimeout(3000);
    assert.equal((await row.locator('td[data-label="Status"]').textContent()).trim(), 'pending');
    assert.equal((await row.locator('td[data-label="Attempts"]').textContent()).trim(), '0');
    const sent = () => receiver.received.filter((r) => r.body.includes('evt_ui_paused')).length;
    assert.equal(sent(), 0, 'the receiver got the event while its destination was paused');

    await nav(page, 'Destinations');
    await page.locator('tbody tr', { hasText: 'Local receiver' }).locator('.badge', { hasText: 'paused' }).waitFor();
    await nav(page, 'Overview');
    const attention = page.locator('section', { has: page.getByRole('heading', { level: 2, name: 'Destinations needing attention' }) });
    await attention.locator('tbody tr', { hasText: 'Local receiver' }).locator('.badge', { hasText: 'paused' }).waitFor();
    await attention.getByText('Paused: its deliveries collect until it is resumed').waitFor();
    assert.equal(sent(), 0, 'the receiver got the event while its destination was paused');

    await page.goto(`${UI}#/destinations/${destinationId}`);
    await heading(page, 'Local receiver');
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    await page.locator('.facts dd .badge', { hasText: 'enabled' }).waitFor();
    await page.getByRole('button', { name: 'Pause', exact: true }).waitFor();
    assert.equal(await page.locator('.notice-paused').count(), 0);
    assert.equal(await page.locator('.facts dd .badge', { hasText: 'paused' }).count(), 0);

    await page.goto(eventUrl);
    await heading(page, /evt_ui_paused/);
    await row.locator('td[data-label="Status"]', { hasText: 'succeeded' }).waitFor();
    assert.equal((await row.locator('td[data-label="Attempts"]').textContent()).trim(), '1');
    await waitUntil('the receiver to get the held event', () => sent() === 1);
  });

  await step('a badly signed event shows as a rejection with its reason and body', async () => {
    const answer = await ingest(ingestUrl, wapEvent('evt_ui_bad', 'Bad'), 'not-the-secret');
    assert.equal(answer.status, 401);
    await nav(page, 'Rejections');
    const row = page.locator('tbody tr', { hasText: 'invalid_signature' });
    await row.getByText('evt_ui_bad').first().waitFor();
    await shot(page, 'rejections');
  });

  await step('rotating the source secret keeps the previous one valid for the grace period', async () => {
    await page.goto(`${UI}#/sources/${ingestUrl.split('/').pop()}`);
    await page.getByLabel('New secret').fill(`${SECRET}-next`);
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await see(page, 'verifies until');
    assert.equal((await ingest(ingestUrl, wapEvent('evt_ui_3', 'Old secret'), SECRET)).status, 200);
    assert.equal((await ingest(ingestUrl, wapEvent('evt_ui_4', 'New secret'), `${SECRET}-next`)).status, 200);
  });

  await step('silence alerts are turned on from the source form', async () => {
    const id = ingestUrl.split('/').pop();
    await page.goto(`${UI}#/sources/${id}`);
    await see(page, 'Off');
    await page.getByLabel('Silence alert (seconds)').fill('120');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await see(page, 'after 120 s without events');
    assert.equal((await api(tenantToken, 'GET', `/v1/sources/${id}`)).silence_alert_seconds, 120);
  });

  await step('the overview shows the charts, success rate and destinations', async () => {
    await nav(page, 'Overview');
    await page.locator('.chart canvas').nth(1).waitFor();
    await see(page, 'Success rate');
    await see(page, 'Every destination is enabled and delivering.');
    await shot(page, 'overview');
    await page.getByRole('link', { name: 'Last 24 hours' }).click();
    await page.locator('[aria-current="true"]', { hasText: 'Last 24 hours' }).waitFor();
    await page.locator('.chart canvas').nth(1).waitFor();
  });

  await step('a Meta Cloud API destination is created through the form and previews a Meta webhook', async () => {
    await nav(page, 'Destinations');
    await page.getByRole('link', { name: 'New destination' }).click();
    await page.getByLabel('URL', { exact: true }).fill(`${receiver.url}/meta`);
    await page.getByLabel('Description').fill('Meta receiver');
    assert.equal(await page.getByLabel('Phone number id').isVisible(), false, 'the Meta fields show only for meta_cloud_api');
    await page.getByRole('combobox', { name: 'Format' }).selectOption('meta_cloud_api');
    await page.getByLabel('Phone number id').fill('106540352242922');
    await page.getByLabel('Display phone number').fill('15550001234');
    await page.getByLabel(/^Replay on recovery/).check();
    await page.getByRole('button', { name: 'Create destination' }).click();
    await see(page, 'Destination created');
    const facts = page.locator('.facts');
    await facts.locator('dd', { hasText: 'Meta WhatsApp Cloud API' }).waitFor();
    await facts.locator('dd', { hasText: '106540352242922' }).waitFor();
    await facts.locator('dd', { hasText: /^yes/ }).waitFor();
    await page.getByRole('button', { name: 'Preview', exact: true }).click();
    const result = page.locator('.preview-result');
    await result.getByText('"object": "whatsapp_business_account"').waitFor();
    await result.getByText('"phone_number_id": "106540352242922"').waitFor();
    assert.match(await result.locator('code.signature').textContent(), /^sha256=[0-9a-f]{64}$/);
    await shot(page, 'destination-meta');
    // A session event has no Meta equivalent: the preview says why it would not be sent.
    await page.getByLabel('WAPing event (JSON)').fill(JSON.stringify({ eventId: 'evt_ui_session', type: 'session.connected', timestamp: '2026-04-03T12:00:00Z' }));
    await page.getByRole('button', { name: 'Preview', exact: true }).click();
    await result.getByText('no_meta_equivalent').waitFor();
    // Editing sends the changed Meta context (whole) and the unticked replay on recovery.
    await page.getByLabel('WABA id').fill('102290129340398');
    await page.getByLabel(/^Replay on recovery/).uncheck();
    await page.getByRole('button', { name: 'Save changes' }).click();
    await facts.locator('dd', { hasText: 'waba_id: 102290129340398' }).filter({ hasText: '106540352242922' }).waitFor();
    await facts.locator('dd', { hasText: /^no$/ }).waitFor();
  });

  await step('an invalid or expired token brings back the sign-in with a message', async () => {
    await page.evaluate(() => sessionStorage.setItem('wap-relay.token', 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoidGVuYW50In0.invalid'));
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Events', exact: true }).click();
    await heading(page, 'Sign in');
    await see(page, 'You have been signed out');
    await page.getByLabel('Admin API token').fill(tenantToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await heading(page, 'Events');
  });

  await step('signing out forgets the token', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await heading(page, 'Sign in');
    await see(page, 'You are signed out');
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  });

  // Another tenant with a delivery of its own, made through the API.
  const other = await otherTenantDelivery();

  await step('an operator signs in, chooses the tenant and works as it', async () => {
    await page.getByLabel('Admin API token').fill(operatorToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await heading(page, 'Choose a tenant');
    await see(page, 'Other');
    await shot(page, 'tenants');
    await page.getByRole('button', { name: 'Work as UI', exact: true }).click();
    await heading(page, 'Overview');
    await see(page, 'UI · growth');
    await page.getByRole('link', { name: 'Switch tenant' }).waitFor();
  });

  await step('another tenant\u2019s delivery and event show "not found"', async () => {
    await page.goto(`${UI}#/deliveries/${other.deliveryId}`);
    await heading(page, 'Not found');
    await shot(page, 'not-found');
    await page.goto(`${UI}#/events/${other.eventId}`);
    await heading(page, 'Not found');
  });

  await step('the overview on a fresh load: page weight and first paint', async () => {
    const fresh = await signedInPage({ viewport: { width: 1280, height: 800 } });
    const sizes = [];
    fresh.on('requestfinished', (r) => sizes.push(r.sizes().then((s) => s.responseBodySize + s.responseHeadersSize)));
    await fresh.goto(`${UI}#/`);
    await fresh.locator('.chart canvas').nth(1).waitFor();
    await fresh.waitForLoadState('networkidle');
    const bytes = (await Promise.all(sizes)).reduce((a, b) => a + b, 0);
    const fcp = await fresh.evaluate(() => performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint')?.startTime);
    assert.ok(bytes > 0 && fcp > 0);
    console.log(`overview: ${bytes} bytes, first contentful paint ${Math.round(fcp)} ms`);
    await fresh.context().close();
  });

  await step('on a phone-sized screen the overview fits and the menu opens', async () => {
    const phone = await signedInPage({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });
    await phone.goto(`${UI}#/`);
    await phone.locator('.chart canvas').nth(1).waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    await shot(phone, 'overview-mobile');
    await phone.getByRole('button', { name: 'Menu' }).click();
    await phone.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Events', exact: true }).click();
    await heading(phone, 'Events');
    await shot(phone, 'events-mobile');
    await phone.goto(failedDelivery);
    await phone.locator('.attempt', { hasText: 'manual' }).waitFor();
    await shot(phone, 'delivery-mobile');
    await phone.context().close();
  });

  await step('every request went to 127.0.0.1, and no page error or CSP violation happened', async () => {
    const elsewhere = requests.filter((u) => new URL(u).hostname !== '127.0.0.1');
    assert.deepEqual(elsewhere, []);
    assert.deepEqual(pageErrors, []);
    console.log(`  ${requests.length} requests, all to 127.0.0.1`);
  });
} catch (error) {
  if (!error.reported) {
    results.failed += 1;
    console.log(`not ok - ${error.stack || error}`);
  }
} finally {
  await browser.close();
  await receiver.close();
}

console.log(`screenshots: ${path.resolve(settings.screenshots)}`);
console.log(`${results.passed} passed, ${results.failed} failed`);
process.exit(results.failed ? 1 : 0);

// A page of a fresh browser context, signed in as the UI tenant (the session set before load).
async function signedInPage(options) {
  const tenant = await api(tenantToken, 'GET', '/v1/tenant');
  const p = await newPage(options);
  await p.context().addInitScript(({ token, t }) => {
    sessionStorage.setItem('wap-relay.token', token);
    sessionStorage.setItem('wap-relay.tenant', JSON.stringify({ id: t.id, name: t.name, plan: t.plan }));
  }, { token: tenantToken, t: tenant });
  return p;
}

async function otherTenantDelivery() {
  const tenant = await api(operatorToken, 'POST', '/v1/tenants', { name: 'Other', plan: 'growth' });
  const { token } = await api(operatorToken, 'POST', `/v1/tenants/${tenant.id}/tokens`, {});
  const source = await api(token, 'POST', '/v1/sources', { name: 'Other source', secret: 'other-tenant-secret' });
  await api(token, 'POST', '/v1/destinations', { url: receiver.url });
  const answer = await ingest(source.ingest_url, wapEvent('evt_other_1', 'Elsewhere'), 'other-tenant-secret');
  assert.equal(answer.status, 200);
  const delivery = await waitUntil('the other tenant\u2019s delivery', async () => (await api(token, 'GET', '/v1/deliveries')).data[0]);
  return { deliveryId: delivery.id, eventId: delivery.event_id };
}
