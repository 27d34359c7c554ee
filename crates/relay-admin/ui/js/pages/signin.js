// Signing in: a tenant token opens the dashboard of its tenant; an operator token first lists
// the tenants (GET /v1/tenants) and mints a tenant token for the one chosen (POST
// /v1/tenants/{id}/tokens), then works as that tenant. Tokens are tried against the API before
// they are kept, and never appear in a URL.

import { api, seg } from '../api.js';
import { h, mount, badge, time, notice, pageHeader, section, idLink } from '../dom.js';
import { form } from '../form.js';
import { pagedTable } from '../table.js';
import { navigate, render } from '../router.js';
import { session, claims, takeFlash } from '../session.js';
import { refreshShell } from '../shell.js';

// How long a token minted for an operator lasts: a working day.
const OPERATOR_SESSION_SECONDS = 12 * 3600;

export function signInPage({ main }) {
  const flash = takeFlash();
  const f = form({
    submit: 'Sign in',
    fields: [
      {
        name: 'token',
        label: 'Admin API token',
        type: 'password',
        required: true,
        autocomplete: 'off',
        hint: 'A tenant token, or an operator token to choose a tenant. It is kept in this browser tab only, never in a URL.',
      },
    ],
    onSubmit: async ({ token }) => {
      const c = claims(token.trim());
      if (!c) throw Object.assign(new Error('This is not an admin token: paste the JWT the relay issued (three parts separated by dots).'), { title: 'Not a token' });
      const tokenText = token.trim();
      if (c.role === 'operator') {
        await api('GET', '/v1/tenants', { token: tokenText, query: { limit: 1 } });
          session.setOperator(tokenText);
        refreshShell();
        navigate('/tenants');
        return;
      }
      const tenant = await api('GET', '/v1/tenant', { token: tokenText });
      session.setTenant(tokenText, tenant);
      refreshShell();
      // Stay on the page that was asked for (a deep link), or the overview.
      if (window.location.hash.startsWith('#/tenants')) navigate('/');
      else render();
    },
  });
  mount(main, 
    h('div', { class: 'signin' },
      h('div', { class: 'card signin-card' },
        h('h1', { tabindex: '-1' }, 'Sign in'),
        h('p', { class: 'muted' }, 'The wap-relay dashboard: your sources, destinations, events and deliveries.'),
        flash ? notice(flash.kind, flash.message) : null,
        f.el,
      ),
    ),
  );
}

export async function tenantsPage({ main, query, signal }) {
  mount(main, 
    pageHeader('Choose a tenant'),
    h('p', { class: 'muted' }, 'You are signed in as an operator. Pick the tenant to work as: the dashboard mints a tenant token for it, valid for 12 hours.'),
    section(null, await pagedTable({
      path: '/v1/tenants',
      operator: true,
      route: '/tenants',
      query,
      signal,
      caption: 'Tenants',
      empty: 'There are no tenants yet. Create one with `wap-relay tenant create` or POST /v1/tenants.',
      columns: [
        { label: 'Name', cell: (t) => h('strong', {}, t.name) },
        { label: 'Plan', cell: (t) => t.plan },
        { label: 'Status', cell: (t) => badge(t.status) },
        { label: 'Id', cell: (t) => idLink(t.id) },
        { label: 'Created', cell: (t) => time(t.created_at) },
        { label: 'Action', cell: (t) => chooseButton(t) },
      ],
    })),
  );
}

function chooseButton(tenant) {
  const button = h('button', { type: 'button', class: 'button primary small' }, `Work as ${tenant.name}`);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const minted = await api('POST', `/v1/tenants/${seg(tenant.id)}/tokens`, { operator: true, body: { ttl_seconds: OPERATOR_SESSION_SECONDS } });
      session.setTenant(minted.token, tenant);
      refreshShell();
      navigate('/');
    } catch (error) {
      button.disabled = false;
      if (error.status !== 401) button.after(notice('error', error.detail || error.message));
    }
  });
  return button;
}
