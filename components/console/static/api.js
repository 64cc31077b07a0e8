// The management API (design api.md) as the console uses it: the session kept
// in sessionStorage (this tab only, never localStorage), the headers every
// call carries, problem+json errors.

const TOKEN = 'keygate.admin_token';
const USER = 'keygate.user';
const OIDC = 'keygate.oidc';

/**
 * The signed-in session of this tab, or null. Either the admin-token mode,
 * `{ token, user }`, sent with `X-Acting-User`; or a person signed in at the
 * identity provider, `{ oidc: true, token, user, name, exp, idToken, clientId,
 * logout }`: `token` is what auth-config says to send, `exp` (seconds) when it
 * expires; `idToken`, `clientId` and `logout` (the end_session_endpoint) are
 * for signing out there too.
 */
export function getSession() {
  const oidc = sessionStorage.getItem(OIDC);
  if (oidc) {
    try {
      const session = JSON.parse(oidc);
      if (session && typeof session.token === 'string') return session;
    } catch {
      // Not ours to guess at: forget it and sign in again.
    }
    sessionStorage.removeItem(OIDC);
  }
  const token = sessionStorage.getItem(TOKEN);
  const user = sessionStorage.getItem(USER);
  return token && user ? { token, user } : null;
}

export function saveSession(session) {
  clearSession();
  if (session.oidc) {
    sessionStorage.setItem(OIDC, JSON.stringify(session));
    return;
  }
  sessionStorage.setItem(TOKEN, session.token);
  sessionStorage.setItem(USER, session.user);
}

export function clearSession() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(USER);
  sessionStorage.removeItem(OIDC);
}

/** A session from the identity provider whose token's `exp` has passed. */
export const expired = (session, now = Date.now()) => Boolean(session?.exp) && session.exp * 1000 <= now;

/** An answer other than 2xx; `problem` is the RFC 9457 body (or a stand-in). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || null;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }

  /** The session can no longer act: the token was refused or the user removed. */
  get endsSession() {
    return this.status === 401 || this.code === 'user_removed';
  }
}

let onSessionEnd = () => {};

/** Called with an ApiError whenever the server says the session is over. */
export function whenSessionEnds(callback) {
  onSessionEnd = callback;
}

/**
 * One call. Resolves to the parsed JSON (null for 204); rejects with ApiError.
 * `session` overrides the stored one and `signIn` keeps a refusal from ending
 * the session (the sign-in form checks new credentials that way).
 */
export async function request(method, path, { body, signal, session = getSession(), signIn = false } = {}) {
  if (!session) {
    const error = new ApiError(401, { code: 'unauthenticated', detail: 'Sign in first.' });
    onSessionEnd(error);
    throw error;
  }
  // A token past its `exp` would only be refused: end the session here (a
  // tab that slept may call before the expiry timer has run).
  if (expired(session)) {
    const error = new ApiError(401, { code: 'invalid_token', detail: 'The session has expired.' });
    if (!signIn) onSessionEnd(error);
    throw error;
  }
  const headers = {
    accept: 'application/json, application/problem+json',
    authorization: `Bearer ${session.token}`,
  };
  // With the identity provider's token the server reads the user from it.
  if (!session.oidc) headers['x-acting-user'] = session.user;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, {
      code: 'network_error',
      detail: 'keygate could not be reached. Check the connection and try again.',
    });
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data && typeof data === 'object' ? data : {
      title: response.statusText,
      detail: `keygate answered ${response.status} ${response.statusText}.`,
    });
    if (error.endsSession && !signIn) onSessionEnd(error);
    throw error;
  }
  return data;
}

/**
 * `GET /api/auth-config`: how this deployment lets people sign in,
 * `{ oidc: { issuer, client_id, scopes, token } | null, admin_token }`.
 */
export async function authConfig() {
  let response;
  try {
    response = await fetch('/api/auth-config', {
      headers: { accept: 'application/json, application/problem+json' },
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, { detail: 'keygate could not be reached. Check the connection and try again.' });
  }
  const data = await response.json().catch(() => null);
  if (!response.ok || !data || typeof data !== 'object') {
    throw new ApiError(response.status, data && typeof data === 'object' ? data : {
      detail: `keygate answered ${response.status} ${response.statusText}.`,
    });
  }
  return { oidc: data.oidc ?? null, admin_token: data.admin_token === true };
}

/** `?a=1&b=2` from an object, leaving out empty values. */
export function queryString(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== '' && value !== null && value !== undefined) search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

export const listKeys = (params, signal) => request('GET', `/api/keys${queryString(params)}`, { signal });
export const createKey = (body) => request('POST', '/api/keys', { body });
export const deleteKey = (id) => request('DELETE', `/api/keys/${encodeURIComponent(id)}`);
export const listAudit = (params, signal) => request('GET', `/api/audit${queryString(params)}`, { signal });

// v2: owners, service accounts and the key lifecycle.
const keyPath = (id) => `/api/keys/${encodeURIComponent(id)}`;
export const getKey = (id) => request('GET', keyPath(id));
export const updateKey = (id, body) => request('PATCH', keyPath(id), { body });
export const transferKey = (id, owner) => request('POST', `${keyPath(id)}/transfer`, { body: { owner } });
export const rollKey = (id, seconds) => request('POST', `${keyPath(id)}/roll`, { body: { expires_previous_in: seconds } });
export const listServiceAccounts = (params, signal) =>
  request('GET', `/api/service-accounts${queryString(params)}`, { signal });
export const createServiceAccount = (body) => request('POST', '/api/service-accounts', { body });
export const deleteServiceAccount = (id) => request('DELETE', `/api/service-accounts/${encodeURIComponent(id)}`);
/** `GET /api/users/{id}`: `{ user_id, removed_at, keys: { active, expired, revoked }, used_last_30_days }`. */
export const userSummary = (id, signal) => request('GET', `/api/users/${encodeURIComponent(id)}`, { signal });
