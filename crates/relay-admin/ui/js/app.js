// The dashboard's entry point: the routes (one page module each), the sign-in guard, and what a
// 401 does (the session ends and the sign-in page says why). Served at /ui/ by the relay; it
// talks to the admin API on the same origin only.

import { setUnauthorizedHandler } from './api.js';
import { route, setGuard, start, render, navigate } from './router.js';
import { session, setFlash } from './session.js';
import { initShell, refreshShell } from './shell.js';
import { signInPage, tenantsPage } from './pages/signin.js';
import { overviewPage } from './pages/overview.js';
import { sourcesPage, sourcePage, newSourcePage } from './pages/sources.js';
import { destinationsPage, newDestinationPage } from './pages/destinations.js';
import { destinationPage } from './pages/destination.js';
import { eventsPage, eventPage } from './pages/events.js';
import { deliveriesPage } from './pages/deliveries.js';
import { deliveryPage } from './pages/delivery.js';
import { rejectionsPage } from './pages/rejections.js';

route('/', overviewPage, { title: 'Overview' });
route('/tenants', tenantsPage, { title: 'Choose a tenant' });
route('/sources', sourcesPage, { title: 'Sources' });
route('/sources/new', newSourcePage, { title: 'New source' });
route('/sources/:id', sourcePage, { title: 'Source' });
route('/destinations', destinationsPage, { title: 'Destinations' });
route('/destinations/new', newDestinationPage, { title: 'New destination' });
route('/destinations/:id', destinationPage, { title: 'Destination' });
route('/events', eventsPage, { title: 'Events' });
route('/events/:id', eventPage, { title: 'Event' });
route('/deliveries', deliveriesPage, { title: 'Deliveries' });
route('/deliveries/:id', deliveryPage, { title: 'Delivery' });
route('/rejections', rejectionsPage, { title: 'Rejections' });

const SIGN_IN = { render: signInPage, title: 'Sign in', params: {} };

// Nobody signed in: the sign-in page, whatever the hash (it stays, so a deep link opens after
// signing in). An operator without a chosen tenant: the tenant list.
setGuard((path) => {
  refreshShell();
  if (session.signedIn) return null;
  if (session.operatorToken) return path === '/tenants' ? null : { render: tenantsPage, title: 'Choose a tenant', params: {} };
  return SIGN_IN;
});

setUnauthorizedHandler((error) => {
  session.clear();
  setFlash(`You have been signed out: ${error.detail || 'the token is no longer valid'}. Sign in again with a valid token.`);
  render();
});

initShell({
  onSignOut: () => {
    session.clear();
    setFlash('You are signed out.');
    refreshShell();
    navigate('/');
  },
});
start();
