// The console's entry point: sign-in, the two views (`/` and `/audit`), links
// and the Back button (History API), and what happens when a session ends.

import * as api from './api.js';
import * as audit from './audit.js';
import * as keys from './keys.js';
import { clearFieldErrors, showFieldErrors, tickRelativeTimes } from './ui.js';

const VIEWS = {
  '/': { module: keys, name: 'keys', title: 'API keys' },
  '/audit': { module: audit, name: 'audit', title: 'Audit trail' },
};

const dom = {
  topbar: document.getElementById('topbar'),
  whoami: document.getElementById('whoami'),
  signOut: document.getElementById('sign-out'),
  signInView: document.getElementById('sign-in-view'),
  signInForm: document.getElementById('sign-in-form'),
  signInMessage: document.getElementById('sign-in-message'),
  main: document.getElementById('main'),
};

let current = null;

function currentView() {
  const path = location.pathname.replace(/\/+$/, '') || '/';
  return VIEWS[path] ?? VIEWS['/'];
}

/** Shows what the URL asks for, or the sign-in screen without a session. */
function route() {
  const session = api.getSession();
  const next = session ? currentView() : null;
  if (current && current !== next) current.module.hide();
  if (!session) {
    current = null;
    showSignIn();
    return;
  }
  dom.signInView.hidden = true;
  dom.topbar.hidden = false;
  dom.whoami.textContent = session.user;
  for (const link of document.querySelectorAll('.main-nav a')) {
    if (link.dataset.view === next.name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${next.title} · keygate`;
  current = next;
  next.module.show();
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
  dom.signInMessage.hidden = !message;
  dom.signInMessage.textContent = message ?? '';
  const { elements } = dom.signInForm;
  (elements.namedItem('token').value ? elements.namedItem('user') : elements.namedItem('token')).focus();
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

function signOut(message) {
  api.clearSession();
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  route();
  if (message) showSignIn(message);
}

api.whenSessionEnds((error) => {
  const message = error.code === 'user_removed'
    ? 'Your user has been removed and can no longer manage keys.'
    : 'Your session has ended: the admin token was not accepted. Sign in again.';
  signOut(message);
});

keys.mount();
audit.mount();
dom.signInForm.addEventListener('submit', signIn);
dom.signOut.addEventListener('click', () => signOut('You have signed out.'));

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

setInterval(tickRelativeTimes, 30_000);
route();
