/**
 * The HTTP API as the page uses it. The session cookie (HttpOnly) travels by itself on this
 * origin, so `<video>` and `<img>` load footage without a token in any URL; the CSRF value is
 * kept in this module's memory only and sent on every state-changing request.
 */

const CSRF_HEADER = 'X-CSRF-Token';
let csrf = null;

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** `path` with its query (empty values left out), for fetch and for media elements. */
export function url(path, query = {}) {
  const u = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') u.searchParams.set(key, value);
  }
  return u.pathname + u.search;
}

/** One request; the JSON answer, or an ApiError carrying the API's own code and message. A 401
 * outside sign-in means the session ended (sign-out elsewhere, a restart): the page is told. */
export async function call(method, path, { query, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers[CSRF_HEADER] = csrf;
  const resp = await fetch(url(path, query), {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const e = data?.error ?? {};
    if (resp.status === 401 && path !== '/api/session') {
      window.dispatchEvent(new CustomEvent('ccvault:signed-out'));
    }
    throw new ApiError(resp.status, e.code ?? `http_${resp.status}`, e.message ?? resp.statusText,
      e.field ?? null);
  }
  return data;
}

export const get = (path, query) => call('GET', path, { query });

/** Trade the token for the session cookie; the caller clears the field it came from. */
export async function signIn(token) {
  const session = await call('POST', '/api/session', { body: { token } });
  csrf = session.csrf;
  return session;
}

/** The session a reloaded page still has (its cookie), with the CSRF value it needs. */
export async function resume() {
  const session = await get('/api/session');
  csrf = session.csrf;
  return session;
}

export async function signOut() {
  try {
    await call('DELETE', '/api/session');
  } finally {
    csrf = null;
  }
}
