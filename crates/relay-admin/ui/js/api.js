// The one API helper: every call to the admin API goes through `api()`, which adds the bearer
// token, sends and reads JSON, and turns any error answer (problem+json: `code`, `detail`) or a
// network failure into an `ApiError`. A 401 `unauthorized` ends the session: the handler set by
// app.js brings back the sign-in page with the reason.

import { session } from './session.js';

/** An error answer of the API (`status` 0 when the relay could not be reached). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = problem.code || 'error';
    this.title = problem.title || '';
    this.detail = problem.detail || '';
  }

  get notFound() {
    return this.status === 404;
  }
}

let onUnauthorized = () => {};

/** Sets what happens when the relay answers 401 (the token expired or is not valid). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

// The API is at the site root, next to `/ui/`: `../v1/...` from the page keeps working behind a
// path prefix too.
function apiUrl(path, query) {
  const url = new URL(`..${path}`, document.baseURI);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  return url;
}

async function problemOf(response) {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (body && typeof body === 'object') return body;
  } catch {
    // Not JSON (a proxy's error page, say): keep the status and the start of the text.
  }
  return { title: response.statusText, detail: text.slice(0, 200) };
}

/**
 * Calls the admin API. `options`: `query` (an object; empty values are left out), `body` (sent as
 * JSON), `signal` (an AbortSignal), `operator` (call with the operator token instead of the
 * tenant token), `token` (a token being tried at sign-in: its 401 does not end the session).
 * Answers the parsed JSON body, or null for 204.
 */
export async function api(method, path, options = {}) {
  const { query, body, signal } = options;
  const token = options.token ?? (options.operator ? session.operatorToken : session.token);
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(apiUrl(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, { code: 'network_error', detail: 'The relay could not be reached. Check your connection and retry.' });
  }
  if (response.status === 204) return null;
  if (!response.ok) {
    const error = new ApiError(response.status, await problemOf(response));
    if (response.status === 401 && !options.token) onUnauthorized(error);
    throw error;
  }
  return response.json();
}

export const get = (path, query, signal) => api('GET', path, { query, signal });
export const post = (path, body, signal) => api('POST', path, { body: body ?? {}, signal });
export const patch = (path, body, signal) => api('PATCH', path, { body, signal });
export const del = (path, signal) => api('DELETE', path, { signal });

/** Path segment escaping for ids typed into a URL. */
export const seg = (id) => encodeURIComponent(id);
