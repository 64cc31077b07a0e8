// The console's entry point: sign-in (the organisation's identity provider,
// the admin token, or both, as /api/auth-config says), the views (`/`,
// `/service-accounts` and `/audit`), links and the Back button (History API), and what happens when a
// session ends.

import * as accounts from './accounts.js';
import * as api from './api.js';
import * as audit from './audit.js';
import * as keys from './keys.js';
import { clearFieldErrors, showFieldErrors, tickRelativeTimes } from './ui.js';

const VIEWS = {
  '/': { module: keys, name: 'keys', title: 'API keys' },
  '/service-accounts': { module: accounts, name: 'accounts', title: 'Service accounts' },
  '/audit': { module: audit, name: 'audit', title: 'Audit trail' },
};

/** sessionStorage: the sign-in under way at the provider, and a message for after a redirect. */
const FLOW = 'keygate.oidc_flow';
const NOTICE = 'keygate.notice';

const SESSION_ENDED = 'Your session ended; sign in again.';
const SIGNED_OUT = 'You have signed out.';

const dom = {
  topbar: document.getElementById('topbar'),
  whoami: document.getElementById('whoami'),
  whoamiId: document.getElementById('whoami-id'),
  signOut: document.getElementById('sign-out'),
  signInView: document.getElementById('sign-in-view'),
  signInMessage: document.getElementById('sign-in-message'),
  signInLoading: document.getElementById('sign-in-loading'),
  oidcSignIn: document.getElementById('oidc-sign-in'),
  oidcButton: document.getElementById('oidc-sign-in-button'),
  signInOr: document.getElementById('sign-in-or'),
  signInForm: document.getElementById('sign-in-form'),
  signInUnavailable: document.getElementById('sign-in-unavailable'),
  signInRetry: document.getElementById('sign-in-retry'),
  main: document.getElementById('main'),
};

let current = null;
/** What /api/auth-config answered, once it has. */
let config = null;
let configLoad = null;
let expiryTimer = null;

function currentView() {
  const path = location.pathname.replace(/\/+$/, '') || '/';
  return VIEWS[path] ?? VIEWS['/'];
}

/** Shows what the URL asks for, or the sign-in screen without a session. */
function route() {
  const session = api.getSession();
  if (api.expired(session)) {
    sessionEnded({ code: 'invalid_token' });
    return;
  }
  const next = session ? currentView() : null;
  if (current && current !== next) current.module.hide();
  if (!session) {
    current = null;
    clearTimeout(expiryTimer);
    showSignIn();
    return;
  }
  watchExpiry(session);
  dom.signInView.hidden = true;
  dom.topbar.hidden = false;
  // A person from the identity provider by name, with the user id beside it.
  dom.whoami.textContent = session.name || session.user;
  dom.whoamiId.textContent = session.user;
  dom.whoamiId.hidden = !session.name || session.name === session.user;
  for (const link of document.querySelectorAll('.main-nav a')) {
    if (link.dataset.view === next.name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${next.title} · keygate`;
  current = next;
  next.module.show();
  if (next.module === keys) keys.restoreDraft(session.user);
}

/** Same-origin navigation without reloading the page. */
function navigate(url) {
  if (url !== location.pathname + location.search) history.pushState(null, '', url);
  route();
  dom.main.focus({ preventScroll: true });
}

function showSignIn(message) {
  dom.topbar.hidden = true;
  for (const section of document.querySelectorAll('main > .view')) section.hidden = section !== dom.signInView;
  dom.signInView.hidden = false;
  document.title = 'Sign in · keygate';
  // A message from before a redirect (signing out at the provider) shows once.
  const notice = message ?? sessionStorage.getItem(NOTICE);
  sessionStorage.removeItem(NOTICE);
  showSignInMessage(notice);
  showSignInOptions();
}

function showSignInMessage(message) {
  dom.signInMessage.hidden = !message;
  dom.signInMessage.textContent = message ?? '';
}

function loadConfig() {
  configLoad ??= api.authConfig().then(
    (answer) => {
      config = answer;
      return answer;
    },
    (error) => {
      configLoad = null;
      throw error;
    },
  );
  return configLoad;
}

/**
 * The ways to sign in this deployment offers: the identity provider's button
 * when OIDC is on, the admin-token form only when that mode is on, and a
 * plain statement when neither is.
 */
async function showSignInOptions() {
  hideSignInOptions();
  if (!config) {
    dom.signInLoading.textContent = 'Loading the ways to sign in…';
    dom.signInLoading.hidden = false;
    try {
      await loadConfig();
    } catch (error) {
      dom.signInLoading.hidden = true;
      showSignInMessage(`The ways to sign in could not be loaded: ${error.message}`);
      dom.signInRetry.hidden = false;
      return;
    }
    dom.signInLoading.hidden = true;
    if (dom.signInView.hidden) return;
  }
  const { oidc, admin_token: adminToken } = config;
  dom.oidcSignIn.hidden = !oidc;
  if (oidc) dom.oidcButton.textContent = `Sign in with ${providerName(oidc.issuer)}`;
  dom.signInForm.hidden = !adminToken;
  dom.signInOr.hidden = !(oidc && adminToken);
  // One primary action: the identity provider's, when there is one.
  dom.signInForm.querySelector('[type=submit]').classList.toggle('primary', !oidc);
  dom.signInUnavailable.hidden = Boolean(oidc || adminToken);
  if (oidc) dom.oidcButton.focus();
  else if (adminToken) {
    const { elements } = dom.signInForm;
    (elements.namedItem('token').value ? elements.namedItem('user') : elements.namedItem('token')).focus();
  }
}

function hideSignInOptions() {
  for (const el of [dom.signInLoading, dom.oidcSignIn, dom.signInOr, dom.signInForm, dom.signInUnavailable, dom.signInRetry]) {
    el.hidden = true;
  }
}

/** "login.example.com" from the issuer URL, for the button's label. */
function providerName(issuer) {
  try {
    return new URL(issuer).host || 'your identity provider';
  } catch {
    return 'your identity provider';
  }
}

const SIGN_IN_LABELS = { token: 'The admin token', user: 'The user id' };

async function signIn(event) {
  event.preventDefault();
  const form = dom.signInForm;
  clearFieldErrors(form);
  dom.signInMessage.hidden = true;
  const token = form.elements.namedItem('token').value.trim();
  const user = form.elements.namedItem('user').value.trim();
  const problems = [];
  if (!token) problems.push({ field: 'token', message: 'is required.' });
  if (!user) problems.push({ field: 'user', message: 'is required.' });
  // Header values can only carry Latin-1; the API wants printable characters.
  else if (/[^\x20-\x7e\xa0-\xff]/.test(user)) {
    problems.push({ field: 'user', message: 'may only contain printable Latin characters.' });
  }
  if (problems.length) {
    showFieldErrors(form, problems, SIGN_IN_LABELS)?.focus();
    return;
  }
  const submit = form.querySelector('[type=submit]');
  submit.disabled = true;
  try {
    // Any management call checks both; one row is the cheapest.
    await api.request('GET', '/api/keys?per_page=1', { session: { token, user }, signIn: true });
  } catch (error) {
    let field = null;
    let message = error.message;
    if (error.status === 401) [field, message] = ['token', 'was not accepted.'];
    else if (error.code === 'acting_user_required') [field, message] = ['user', 'must be 1–200 printable characters.'];
    else if (error.code === 'user_removed') [field, message] = ['user', 'belongs to a removed user, who can no longer manage keys.'];
    if (field) showFieldErrors(form, [{ field, message }], SIGN_IN_LABELS)?.focus();
    else {
      dom.signInMessage.textContent = `Could not sign in: ${message}`;
      dom.signInMessage.hidden = false;
    }
    return;
  } finally {
    submit.disabled = false;
  }
  api.saveSession({ token, user });
  form.reset();
  route();
  dom.main.focus({ preventScroll: true });
}

// ---------------------------------------------------------------------------
// Signing in with the identity provider: OpenID Connect's Authorization Code
// flow with PKCE (S256), `state` and `nonce`, all in the browser. The page is
// its own redirect URI (origin + "/"), and it calls the token endpoint with
// fetch as a public client (no secret). Tokens stay in this tab's
// sessionStorage; keygate checks their signature on every call.

const redirectUri = () => `${location.origin}/`;

/** A sign-in that must not go on; its message is shown as it is. */
class Refused extends Error {}

let discovery = null;

/** The provider's `/.well-known/openid-configuration`, fetched once per page. */
async function discover(issuer) {
  if (discovery?.issuer === issuer) return discovery;
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  let found;
  try {
    const response = await fetch(url, { headers: { accept: 'application/json' }, credentials: 'omit', cache: 'no-store' });
    if (!response.ok) throw new Error(`it answered ${response.status}`);
    found = await response.json();
  } catch (error) {
    throw new Refused(`The identity provider could not be reached at ${url} (${error.message}).`);
  }
  // OpenID Connect Discovery 1.0, 4.3: the document names the same issuer.
  if (found?.issuer !== issuer || typeof found.authorization_endpoint !== 'string'
      || typeof found.token_endpoint !== 'string') {
    throw new Refused(`The identity provider's configuration at ${url} is not for the issuer ${issuer}.`);
  }
  discovery = found;
  return found;
}

const base64url = (bytes) =>
  btoa(String.fromCharCode(...bytes)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');

/** 32 random bytes, base64url: the PKCE verifier, `state` and `nonce` each. */
const randomValue = () => base64url(crypto.getRandomValues(new Uint8Array(32)));

async function pkceChallenge(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/**
 * The claims of a JWT, read without checking the signature: the console only
 * reads names and times from it, and keygate verifies it on every call.
 */
function jwtClaims(jwt) {
  const payload = String(jwt ?? '').split('.')[1];
  if (!payload) return null;
  try {
    const binary = atob(payload.replaceAll('-', '+').replaceAll('_', '/'));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** To the provider's authorization endpoint, remembering state, nonce and verifier for the way back. */
async function startSignIn() {
  const { oidc } = config;
  dom.oidcButton.disabled = true;
  showSignInMessage(null);
  try {
    if (!crypto.subtle) throw new Refused('Signing in needs a secure connection: open keygate over https.');
    const provider = await discover(oidc.issuer);
    const flow = {
      state: randomValue(),
      nonce: randomValue(),
      verifier: randomValue(),
      issuer: oidc.issuer,
      // Where to come back to: the view the sign-in interrupted.
      returnTo: location.pathname + location.search,
    };
    const url = new URL(provider.authorization_endpoint);
    for (const [name, value] of Object.entries({
      response_type: 'code',
      client_id: oidc.client_id,
      redirect_uri: redirectUri(),
      scope: oidc.scopes || 'openid profile email',
      state: flow.state,
      nonce: flow.nonce,
      code_challenge: await pkceChallenge(flow.verifier),
      code_challenge_method: 'S256',
    })) url.searchParams.set(name, value);
    sessionStorage.setItem(FLOW, JSON.stringify(flow));
    location.assign(url.href);
  } catch (error) {
    showSignInMessage(error instanceof Refused ? error.message : `Could not sign in: ${error.message}`);
    dom.oidcButton.disabled = false;
  }
}

/**
 * The provider sent the browser back to `/?code=…&state=…` (or `?error=…`).
 * The state must be the one this tab sent, and the ID token's nonce the one
 * it made; otherwise nothing is stored. Either way the code leaves the URL
 * (and the history) at once.
 */
async function finishSignIn(params) {
  const text = sessionStorage.getItem(FLOW);
  sessionStorage.removeItem(FLOW);
  let flow = null;
  try {
    flow = text ? JSON.parse(text) : null;
  } catch {
    flow = null;
  }
  const returnTo = String(flow?.returnTo ?? '');
  // Only a path on this origin (never `//host` or `/\host`).
  history.replaceState(null, '', /^\/(?![/\\])/.test(returnTo) ? returnTo : '/');
  dom.topbar.hidden = true;
  for (const section of document.querySelectorAll('main > .view')) section.hidden = section !== dom.signInView;
  dom.signInView.hidden = false;
  hideSignInOptions();
  showSignInMessage(null);
  dom.signInLoading.textContent = 'Signing you in…';
  dom.signInLoading.hidden = false;
  try {
    if (!flow || !flow.state || params.get('state') !== flow.state) {
      throw new Refused('Sign-in refused: the answer from the identity provider does not belong to a sign-in '
        + 'started in this tab (its state does not match). Nothing was stored; sign in again.');
    }
    if (params.has('error')) {
      throw new Refused(`The identity provider did not sign you in: ${params.get('error_description') || params.get('error')}.`);
    }
    // RFC 9207: when the provider names itself, it must be ours.
    if (params.has('iss') && params.get('iss') !== flow.issuer) {
      throw new Refused('Sign-in refused: the answer came from another issuer than keygate\'s identity provider.');
    }
    const { oidc } = await loadConfig();
    if (!oidc || oidc.issuer !== flow.issuer) {
      throw new Refused('Sign-in refused: keygate\'s identity provider changed during the sign-in; sign in again.');
    }
    const provider = await discover(oidc.issuer);
    let response;
    try {
      response = await fetch(provider.token_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: params.get('code') ?? '',
          redirect_uri: redirectUri(),
          client_id: oidc.client_id,
          code_verifier: flow.verifier,
        }),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch {
      throw new Refused(`The identity provider's token endpoint (${provider.token_endpoint}) could not be reached.`);
    }
    const tokens = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Refused(`The identity provider did not issue a token: ${tokens.error_description || tokens.error || response.status}.`);
    }
    const claims = jwtClaims(tokens.id_token);
    if (!claims) throw new Refused('Sign-in refused: the identity provider sent no ID token.');
    if (claims.nonce !== flow.nonce) {
      throw new Refused('Sign-in refused: the ID token was not issued for this sign-in (its nonce does not match). '
        + 'Nothing was stored; sign in again.');
    }
    if (claims.iss !== oidc.issuer || ![].concat(claims.aud).includes(oidc.client_id)) {
      throw new Refused('Sign-in refused: the ID token is not from keygate\'s identity provider for this console.');
    }
    const sendAccessToken = oidc.token === 'access_token';
    const token = sendAccessToken ? tokens.access_token : tokens.id_token;
    if (typeof token !== 'string' || !token) throw new Refused('Sign-in refused: the identity provider sent no access token.');
    const now = Math.floor(Date.now() / 1000);
    const exp = Number(
      (sendAccessToken ? jwtClaims(token)?.exp ?? (tokens.expires_in && now + Number(tokens.expires_in)) : null)
      ?? claims.exp,
    );
    if (!(exp > now)) {
      throw new Refused('Sign-in refused: the token has already expired. Check that this computer\'s clock is right.');
    }
    api.saveSession({
      oidc: true,
      token,
      user: String(claims.email ?? claims.preferred_username ?? claims.sub),
      name: typeof claims.name === 'string' ? claims.name : null,
      exp,
      idToken: tokens.id_token,
      clientId: oidc.client_id,
      logout: typeof provider.end_session_endpoint === 'string' ? provider.end_session_endpoint : null,
    });
  } catch (error) {
    showSignIn(error instanceof Refused ? error.message : `Could not sign in: ${error.message}`);
    return;
  }
  dom.signInLoading.hidden = true;
  route();
  dom.main.focus({ preventScroll: true });
}

/** The provider's end-session URL for `session` (RP-Initiated Logout 1.0), or null. */
function endSessionUrl(session) {
  if (!session?.oidc || !session.logout) return null;
  try {
    const url = new URL(session.logout);
    url.searchParams.set('id_token_hint', session.idToken);
    url.searchParams.set('client_id', session.clientId);
    url.searchParams.set('post_logout_redirect_uri', redirectUri());
    return url.href;
  } catch {
    return null;
  }
}

/** Ends the session when its token expires, also in a tab nobody touches. */
function watchExpiry(session) {
  clearTimeout(expiryTimer);
  if (!session.exp) return;
  // setTimeout holds at most 2^31-1 ms (24.8 days); longer ones check again then.
  const wait = Math.min(Math.max(session.exp * 1000 - Date.now(), 0), 2 ** 31 - 1);
  expiryTimer = setTimeout(() => {
    const now = api.getSession();
    if (api.expired(now)) sessionEnded({ code: 'invalid_token' });
    else if (now) watchExpiry(now);
  }, wait);
}

// ---------------------------------------------------------------------------
// Ending a session

function signOut(message) {
  clearTimeout(expiryTimer);
  api.clearSession();
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  route();
  if (message) showSignIn(message);
}

/** The Sign out button: forgets the tokens, then signs out at the provider too when it can. */
function signOutClicked() {
  const logout = endSessionUrl(api.getSession());
  signOut(SIGNED_OUT);
  if (logout) {
    sessionStorage.setItem(NOTICE, SIGNED_OUT);
    location.assign(logout);
  }
}

/**
 * The server refused the session (or its token expired): back to sign-in,
 * saying why. A Create dialog being filled in is kept and reopens after
 * signing in again (keys.keepDraft), and the message says so.
 */
function sessionEnded(error) {
  const session = api.getSession();
  let message;
  if (error.code === 'user_removed') message = 'Your user has been removed and can no longer manage keys.';
  else if (session?.oidc) message = SESSION_ENDED;
  else message = 'Your session has ended: the admin token was not accepted. Sign in again.';
  if (session && error.code !== 'user_removed' && keys.keepDraft(session.user)) {
    message += ' The key you were creating is kept: it opens again, as you left it, once you have signed in.';
  }
  signOut(message);
}

api.whenSessionEnds(sessionEnded);

keys.mount();
accounts.mount();
audit.mount();
dom.signInForm.addEventListener('submit', signIn);
dom.oidcButton.addEventListener('click', startSignIn);
dom.signInRetry.addEventListener('click', () => showSignIn());
dom.signOut.addEventListener('click', signOutClicked);

// Links marked data-nav stay in the page; modified clicks open tabs as usual.
document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-nav]');
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  const url = new URL(link.href);
  navigate(url.pathname + url.search);
});
document.addEventListener('keygate:navigate', (event) => navigate(event.detail));
window.addEventListener('popstate', route);
// Back from the provider's login page may restore this page as it was left.
window.addEventListener('pageshow', (event) => {
  if (event.persisted) dom.oidcButton.disabled = false;
});

setInterval(tickRelativeTimes, 30_000);

// The provider's answer comes to `/` (neither view uses `code` or `error`);
// finishSignIn refuses it unless its state is this tab's.
const search = new URLSearchParams(location.search);
if (location.pathname === '/' && (search.has('code') || search.has('error'))) finishSignIn(search);
else route();
