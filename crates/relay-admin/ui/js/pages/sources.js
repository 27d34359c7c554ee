// Sources: the list, a new source, and one source's page (its ingest URL to copy, how it is
// verified, editing, secret rotation with a grace period, deletion). A source's secret is only
// ever typed in here: the API shows a hint of its last characters at most, and the secret
// inputs are emptied as soon as a request is sent.

import { get, post, patch, del, seg } from '../api.js';
import { h, mount, badge, time, copyButton, facts, pageHeader, section, confirmButton, notice, idLink } from '../dom.js';
import { form } from '../form.js';
import { pagedTable } from '../table.js';
import { navigate } from '../router.js';

const SCHEMES = [
  ['hmac_sha256', 'HMAC-SHA256 of the body (X-Wap-Signature)'],
  ['hmac_sha256_timestamped', 'Timestamped HMAC-SHA256 (t=…,v1=…)'],
  ['standard_webhooks', 'Standard Webhooks (whsec_ secret)'],
  ['none', 'None: accept unsigned events'],
];
const SCHEME_NAMES = { hmac_sha256: 'HMAC-SHA256', hmac_sha256_timestamped: 'Timestamped HMAC', standard_webhooks: 'Standard Webhooks', none: 'None' };

const hasHeader = (v) => v.scheme === 'hmac_sha256' || v.scheme === 'hmac_sha256_timestamped';
const hasTolerance = (v) => v.scheme === 'hmac_sha256_timestamped' || v.scheme === 'standard_webhooks';

function verificationFields(v = { scheme: 'hmac_sha256' }) {
  return [
    { name: 'scheme', label: 'Signature scheme', type: 'select', options: SCHEMES, value: v.scheme },
    { name: 'header', label: 'Signature header', value: v.header, placeholder: 'X-Wap-Signature', showIf: hasHeader, hint: 'Leave empty for the default.' },
    { name: 'tolerance_seconds', label: 'Timestamp tolerance (seconds)', type: 'number', min: 1, max: 86400, value: v.tolerance_seconds, placeholder: '300', showIf: hasTolerance },
  ];
}

function verificationOf(values) {
  const out = { scheme: values.scheme };
  if (hasHeader(values) && values.header) out.header = values.header;
  if (hasTolerance(values) && values.tolerance_seconds !== null) out.tolerance_seconds = values.tolerance_seconds;
  return out;
}

export async function sourcesPage({ main, query, signal }) {
  mount(main, 
    pageHeader('Sources', h('a', { class: 'button primary', href: '#/sources/new' }, 'New source')),
    h('p', { class: 'muted' }, 'A source is one WAPing account: give WAPing its ingest URL and the secret it signs events with.'),
    section(null, await pagedTable({
      path: '/v1/sources',
      route: '/sources',
      query,
      signal,
      caption: 'Sources',
      empty: 'No sources yet. Create one to get an ingest URL.',
      columns: [
        { label: 'Name', cell: (s) => h('a', { href: `#/sources/${seg(s.id)}` }, s.name) },
        { label: 'Ingest URL', cell: (s) => h('span', { class: 'with-copy' }, h('code', { class: 'url' }, s.ingest_url), copyButton(s.ingest_url)) },
        { label: 'Scheme', cell: (s) => (s.verified ? SCHEME_NAMES[s.verification.scheme] : badge('unverified')) },
        { label: 'Verify token', cell: (s) => (s.verify_token_set ? 'Set' : 'Not set') },
        { label: 'Created', cell: (s) => time(s.created_at) },
      ],
    })),
  );
}

export function newSourcePage({ main }) {
  const f = form({
    submit: 'Create source',
    fields: [
      { name: 'name', label: 'Name', required: true, placeholder: 'My WAPing account', hint: 'For you to recognise it, 1 to 200 characters.' },
      ...verificationFields(),
      { name: 'secret', label: 'Signing secret', type: 'password', showIf: (v) => v.scheme !== 'none', hint: 'The secret WAPing signs events with (8 to 1024 characters; a whsec_ secret for Standard Webhooks). It is never shown again.' },
      { name: 'verify_token', label: 'Verify token (optional)', type: 'password', hint: 'The token WAPing presents in the GET handshake, if you use one.' },
    ],
    onSubmit: async (values) => {
      const body = { name: values.name, verification: verificationOf(values) };
      if (values.scheme !== 'none') body.secret = values.secret;
      if (values.verify_token) body.verify_token = values.verify_token;
      const source = await post('/v1/sources', body);
      navigate(`/sources/${source.id}`, { created: '1' });
    },
  });
  mount(main, pageHeader('New source'), section(null, f.el));
}

export async function sourcePage({ main, params, query, signal }) {
  const source = await get(`/v1/sources/${seg(params.id)}`, {}, signal);
  const path = `/v1/sources/${seg(source.id)}`;
  const reload = () => navigate(`/sources/${source.id}`);
  mount(main, 
    pageHeader(source.name, h('a', { class: 'button', href: `#/events?source_id=${seg(source.id)}` }, 'Events'), h('a', { class: 'button', href: `#/rejections?source_id=${seg(source.id)}` }, 'Rejections')),
    query.created ? notice('ok', 'Source created. Give WAPing the ingest URL below.') : null,
    section('Ingest URL',
      h('p', { class: 'with-copy big' }, h('code', { class: 'url' }, source.ingest_url), copyButton(source.ingest_url, 'Copy URL')),
      h('p', { class: 'muted small' }, 'WAPing POSTs this account\u2019s events here.')),
    section('Details', facts([
      ['Id', idLink(source.id, { full: true })],
      ['Signature scheme', source.verified ? SCHEME_NAMES[source.verification.scheme] : badge('unverified', 'None: anyone with the URL can post')],
      ['Signature header', hasHeader(source.verification) ? source.verification.header || 'X-Wap-Signature' : undefined],
      ['Timestamp tolerance', hasTolerance(source.verification) ? `${source.verification.tolerance_seconds ?? 300} s` : undefined],
      ['Secret', source.secret_hint ? `Set (ends ${source.secret_hint.replace('…', '')})` : source.verified ? 'Set' : 'None'],
      ['Previous secret', source.previous_secret_expires_at ? h('span', {}, 'verifies until ', time(source.previous_secret_expires_at)) : undefined],
      ['Verify token', source.verify_token_set ? 'Set' : 'Not set'],
      ['Silence alert', source.silence_alert_seconds ? `after ${source.silence_alert_seconds} s without events` : 'Off'],
      ['Created', time(source.created_at)],
      ['Updated', time(source.updated_at)],
    ])),
    section('Edit', editForm(source, path, reload).el),
    source.verification.scheme === 'none' ? null : section('Rotate the secret', h('p', { class: 'muted' }, 'The previous secret keeps verifying during the grace period, so WAPing can switch without losing events.'), rotateForm(path, reload).el),
    section('Delete', h('p', { class: 'muted' }, 'Its ingest URL stops accepting events at once. Stored events stay until retention removes them.'),
      confirmButton('Delete source', 'Yes, delete it', async () => {
        await del(path);
        navigate('/sources');
      })),
  );
}

function editForm(source, path, reload) {
  return form({
    submit: 'Save changes',
    fields: [
      { name: 'name', label: 'Name', required: true, value: source.name },
      ...verificationFields(source.verification),
      { name: 'secret', label: 'Signing secret', type: 'password', showIf: (v) => v.scheme !== 'none' && source.verification.scheme === 'none', hint: 'Needed when a source without verification starts verifying.' },
      { name: 'verify_token', label: source.verify_token_set ? 'New verify token' : 'Verify token', type: 'password', hint: source.verify_token_set ? 'Leave empty to keep the current one.' : 'Optional.' },
      source.verify_token_set ? { name: 'remove_verify_token', label: 'Remove the verify token', type: 'checkbox' } : null,
      { name: 'silence_alert_seconds', label: 'Silence alert (seconds)', type: 'number', min: 60, max: 2592000, value: source.silence_alert_seconds, placeholder: 'Off', hint: 'After this long without events (60 to 2592000), the source and each device seen on it are reported silent: relay.source.silent and relay.device.silent, to destinations subscribed to relay.*. Empty: off.' },
    ].filter(Boolean),
    onSubmit: async (_, f) => {
      const changed = f.changed();
      const values = f.values();
      const body = {};
      if ('name' in changed) body.name = values.name;
      if ('scheme' in changed || 'header' in changed || 'tolerance_seconds' in changed) body.verification = verificationOf(values);
      if (values.secret) body.secret = values.secret;
      if (values.verify_token) body.verify_token = values.verify_token;
      else if (values.remove_verify_token) body.verify_token = null;
      if ('silence_alert_seconds' in changed) body.silence_alert_seconds = values.silence_alert_seconds;
      if (!Object.keys(body).length) return f.showMessage('Nothing changed.');
      await patch(path, body);
      reload();
    },
  });
}

function rotateForm(path, reload) {
  return form({
    submit: 'Rotate secret',
    fields: [
      { name: 'secret', label: 'New secret', type: 'password', required: true },
      { name: 'previous_valid_seconds', label: 'Grace period (seconds)', type: 'number', min: 0, max: 604800, value: 86400, hint: 'How long the previous secret keeps verifying: 0 to 604800 (7 days). 86400 is one day.' },
    ],
    onSubmit: async (values) => {
      await post(`${path}/secret/rotate`, { secret: values.secret, previous_valid_seconds: values.previous_valid_seconds });
      reload();
    },
  });
}
