// The dashboard's entry point: the routes (one page module each), the sign-in guard, and what a
// 401 does (the session ends and the sign-in page says why). Served at /ui/ by the relay; it
// talks to the admin API on the same origin only.

import { setUnauthorizedHandler } from './api.js';
import { route, setGuard, start, render, navigate } from './router.js';
import { session, setFlash } from './session.js';
import { initShell, refreshShell } from './shell.js';

// Each page's module loads when first shown, so the first page costs only its own code.
const page = (load, name) => async (ctx) => (await load())[name](ctx);
const signin = () => import('./pages/signin.js');
const sources = () => import('./pages/sources.js');
const destinations = () => import('./pages/destinations.js');
const events = () => import('./pages/events.js');
const tenantsPage = page(signin, 'tenantsPage');

route('/', page(() => import('./pages/overview.js'), 'overviewPage'), { title: 'Overview' });
route('/tenants', tenantsPage, { title: 'Choose a tenant' });
route('/sources', page(sources, 'sourcesPage'), { title: 'Sources' });
route('/sources/new', page(sources, 'newSourcePage'), { title: 'New source' });
route('/sources/:id', page(sources, 'sourcePage'), { title: 'Source' });
route('/destinations', page(destinations, 'destinationsPage'), { title: 'Destinations' });
route('/destinations/new', page(destinations, 'newDestinationPage'), { title: 'New destination' });
route('/destinations/:id', page(() => import('./pages/destination.js'), 'destinationPage'), { title: 'Destination' });
route('/events', page(events, 'eventsPage'), { title: 'Events' });
route('/events/:id', page(events, 'eventPage'), { title: 'Event' });
route('/deliveries', page(() => import('./pages/deliveries.js'), 'deliveriesPage'), { title: 'Deliveries' });
route('/deliveries/:id', page(() => import('./pages/delivery.js'), 'deliveryPage'), { title: 'Delivery' });
route('/rejections', page(() => import('./pages/rejections.js'), 'rejectionsPage'), { title: 'Rejections' });

const SIGN_IN = { render: page(signin, 'signInPage'), title: 'Sign in', params: {} };

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
    setFlash('You are signed out.', 'info');
    refreshShell();
    navigate('/');
  },
});
start();
