// The frame around the pages: the header (tenant name, "Switch tenant" for operators, sign out),
// the navigation (a sidebar, or a menu behind a button on a narrow screen) and the skip link.

import { session } from './session.js';

const $ = (id) => document.getElementById(id);

/** Shows the header and navigation that fit who is signed in. */
export function refreshShell() {
  const tenant = session.signedIn ? session.tenant : null;
  const operator = Boolean(session.operatorToken);
  document.body.classList.toggle('signed-out', !session.signedIn);
  $('account').hidden = !session.signedIn && !operator;
  $('tenant-name').textContent = tenant ? `${tenant.name} · ${tenant.plan}` : operator ? 'Operator' : '';
  $('switch-tenant').hidden = !(operator && session.signedIn);
}

export function initShell({ onSignOut }) {
  const nav = $('nav');
  const toggle = $('menu-toggle');
  const setOpen = (open) => {
    toggle.setAttribute('aria-expanded', String(open));
    nav.classList.toggle('open', open);
  };
  toggle.addEventListener('click', () => setOpen(toggle.getAttribute('aria-expanded') !== 'true'));
  // Choosing a page closes the menu on a phone.
  nav.addEventListener('click', (event) => {
    if (event.target.closest('a')) setOpen(false);
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && nav.classList.contains('open')) {
      setOpen(false);
      toggle.focus();
    }
  });
  // The skip link moves focus to the content without changing the route in the hash.
  $('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    $('main').focus();
  });
  $('sign-out').addEventListener('click', onSignOut);
  refreshShell();
}
