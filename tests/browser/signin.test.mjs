// Signing in with the organisation's identity provider, end to end: a real
// OpenID Provider (oidc-provider, its own login and consent pages) and the
// console's Authorization Code flow with PKCE, state and nonce. Keys a person
// creates are theirs; a forged answer is refused; signing out reaches the
// provider; a session that expires or is refused goes back to sign-in without
// losing a half-filled Create dialog; the sign-in screen offers what the
// deployment has (provider, admin token, both, or neither).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  ALICE, assertNoProblems, eventually, launchBrowser, loaded, managementApi, newPage, passProviderPages,
  query, signInAtProvider, startIdentityProvider, startKeygate,
} from './support.mjs';

/** The ID tokens' life at the second provider, whose sessions the tests let expire. */
const SHORT_TTL_S = 120;

let browser;
/** Provider + admin token, as most deployments will start. */
let idp;
let keygate;
let api;
/** Provider only (admin_token empty), with short-lived ID tokens. */
let shortIdp;
let oidcOnly;

before(async () => {
  idp = await startIdentityProvider();
  keygate = await startKeygate({ oidcIssuer: idp.issuer });
  idp.serve(keygate.url);
  api = managementApi(keygate.url);
  shortIdp = await startIdentityProvider({ idTokenTtl: SHORT_TTL_S });
  oidcOnly = await startKeygate({ oidcIssuer: shortIdp.issuer, adminToken: '' });
  shortIdp.serve(oidcOnly.url);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await keygate?.stop();
  await oidcOnly?.stop();
  await idp?.stop();
  await shortIdp?.stop();
});

const providerButton = (page, issuer) =>
  page.getByRole('button', { name: `Sign in with ${new URL(issuer).host}` });

/** From the console's sign-in screen through the provider's pages and back to the overview. */
async function signInWithProvider(page, base, issuer, { path = '/' } = {}) {
  await page.goto(base + path);
  await providerButton(page, issuer).click();
  await signInAtProvider(page);
}

/** What the tab keeps: sessionStorage's keys, and whether anything went to localStorage. */
const storage = (page) => page.evaluate(() => ({
  session: Object.keys(sessionStorage).sort(),
  local: localStorage.length,
}));

/**
 * Alters the provider's answer as it reaches the console, before the page's
 * own script reads it: `state` set to another value or removed (null) in the
 * URL, or the `nonce` this tab remembered for its sign-in replaced.
 */
async function alterAnswer(page, base, { state, nonce } = {}) {
  await page.context().addInitScript(({ origin, state: newState, nonce: newNonce }) => {
    if (location.origin !== origin || !new URLSearchParams(location.search).has('code')) return;
    const url = new URL(location.href);
    if (newState === null) url.searchParams.delete('state');
    else if (newState !== undefined) url.searchParams.set('state', newState);
    history.replaceState(null, '', url);
    if (newNonce !== undefined) {
      const flow = JSON.parse(sessionStorage.getItem('keygate.oidc_flow'));
      sessionStorage.setItem('keygate.oidc_flow', JSON.stringify({ ...flow, nonce: newNonce }));
    }
  }, { origin: base, state, nonce });
}

test('the sign-in screen offers the provider and the admin-token form; the CSP allows exactly the issuer', async () => {
  const page = await newPage(browser);
  const response = await page.goto(`${keygate.url}/`);
  assert.equal(
    response.headers()['content-security-policy'],
    `default-src 'self'; connect-src 'self' ${idp.issuer}; object-src 'none'; base-uri 'none'; `
      + "form-action 'self'; frame-ancestors 'none'",
  );
  await page.getByRole('heading', { name: 'Sign in to keygate' }).waitFor();
  const button = providerButton(page, idp.issuer);
  await button.waitFor();
  assert.ok(await button.evaluate((el) => el === document.activeElement), 'the provider\'s button has focus');
  await page.getByText('or with the admin token').waitFor();
  await page.getByLabel('Admin token').waitFor();
  await page.getByLabel('Your user id').waitFor();
  assert.equal(await page.getByText('Managing keys is not configured').isVisible(), false);
  assertNoProblems(page);
  await page.context().close();
});

test('sign in through the provider\'s login and consent pages; the overview names Alice; her key is hers', async () => {
  const page = await newPage(browser);
  const sent = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname.startsWith('/api/keys')) sent.push(request.headers());
  });
  await page.goto(`${keygate.url}/`);
  const authorization = page.waitForRequest((request) => request.url().startsWith(`${idp.issuer}/auth?`));
  await providerButton(page, idp.issuer).click();

  // The request: code flow, PKCE S256, fresh state and nonce (32 random bytes each, base64url).
  const asked = Object.fromEntries(new URL((await authorization).url()).searchParams);
  assert.equal(asked.response_type, 'code');
  assert.equal(asked.client_id, 'keygate-console');
  assert.equal(asked.redirect_uri, `${keygate.url}/`);
  assert.equal(asked.scope, 'openid profile email');
  assert.equal(asked.code_challenge_method, 'S256');
  for (const name of ['code_challenge', 'state', 'nonce']) assert.match(asked[name], /^[\w-]{43}$/, name);

  // The provider's own pages, on its own origin.
  await page.getByPlaceholder('Enter any login').waitFor();
  assert.equal(new URL(page.url()).origin, idp.issuer);
  await signInAtProvider(page);

  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  await page.getByText('No API keys yet').waitFor();
  assert.equal(await page.locator('#whoami').textContent(), ALICE.name);
  assert.equal(await page.locator('#whoami-id').textContent(), ALICE.email);
  assert.equal(page.url(), `${keygate.url}/`, 'the code and state are gone from the address bar');
  assert.deepEqual(await storage(page), { session: ['keygate.oidc'], local: 0 });

  // The ID token goes to keygate as the bearer token, and no X-Acting-User.
  assert.ok(sent.length > 0);
  for (const headers of sent) {
    assert.match(headers.authorization, /^Bearer eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal(headers['x-acting-user'], undefined);
  }

  // A key Alice creates is hers.
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a new API Key' });
  await dialog.getByLabel('Token name').fill('alice-reports');
  await dialog.getByRole('button', { name: 'Create API key' }).click();
  const shown = page.getByRole('dialog', { name: 'API key created' });
  await shown.getByText('you will not see it again').waitFor();
  await shown.getByRole('button', { name: 'Done' }).click();
  const row = page.locator('#keys-body tr', { hasText: 'alice-reports' });
  assert.equal(await row.locator('.created-by').textContent(), ALICE.email);
  const [key] = (await api.list('name=alice-reports')).items;
  assert.equal(key.created_by, ALICE.email);
  const [entry] = (await api.audit(`key_id=${key.id}&action=key.created`)).items;
  assert.equal(entry.user, ALICE.email);
  assert.equal(entry.details.auth, 'oidc', 'the audit trail says how she signed in');

  // The session survives a reload of the tab.
  await page.reload();
  await page.locator('#keys-body tr', { hasText: 'alice-reports' }).waitFor();
  assertNoProblems(page);
  await page.context().close();
});

test('an answer whose state is not this tab\'s, or has none, is refused and nothing is stored', async () => {
  // A forged answer, with no sign-in started in this tab.
  let page = await newPage(browser);
  await page.goto(`${keygate.url}/?code=forged-code&state=forged-state`);
  await page.getByText('Sign-in refused: the answer from the identity provider does not belong to a sign-in started in this tab').waitFor();
  assert.equal(page.url(), `${keygate.url}/`);
  assert.deepEqual(await storage(page), { session: [], local: 0 });
  await providerButton(page, idp.issuer).waitFor();
  assertNoProblems(page);
  await page.context().close();

  // A real answer whose state was changed, and one whose state was removed, on the way back.
  for (const [what, state] of [['changed', 'not-the-state-this-tab-sent'], ['removed', null]]) {
    page = await newPage(browser);
    await alterAnswer(page, keygate.url, { state });
    await page.goto(`${keygate.url}/`);
    await providerButton(page, idp.issuer).click();
    await passProviderPages(page);
    await page.getByText('its state does not match').waitFor();
    assert.equal(page.url(), `${keygate.url}/`, what);
    assert.deepEqual(await storage(page), { session: [], local: 0 }, `${what}: nothing stored`);
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).isVisible(), false);
    assertNoProblems(page);
    await page.context().close();
  }
});

test('an ID token whose nonce is not the one this tab made is refused and nothing is stored', async () => {
  const page = await newPage(browser);
  // As if the ID token had been minted for another sign-in: the nonce this tab remembers differs.
  await alterAnswer(page, keygate.url, { nonce: 'another-sign-ins-nonce' });
  await page.goto(`${keygate.url}/`);
  await providerButton(page, idp.issuer).click();
  await passProviderPages(page);
  await page.getByText('Sign-in refused: the ID token was not issued for this sign-in (its nonce does not match)').waitFor();
  assert.deepEqual(await storage(page), { session: [], local: 0 });
  assertNoProblems(page);
  await page.context().close();
});

test('sign-out forgets the tokens, ends the session at the provider and comes back to sign-in', async () => {
  const page = await newPage(browser);
  await signInWithProvider(page, keygate.url, idp.issuer);
  await page.getByRole('button', { name: 'Sign out' }).click();

  // The provider's end-session page asks; yes.
  await page.getByRole('button', { name: 'Yes, sign me out' }).click();
  await page.getByRole('heading', { name: 'Sign in to keygate' }).waitFor();
  await page.getByText('You have signed out.').waitFor();
  assert.equal(page.url(), `${keygate.url}/`);
  assert.deepEqual(await storage(page), { session: [], local: 0 });

  // The provider forgot her too: signing in asks for the login again.
  await providerButton(page, idp.issuer).click();
  await page.getByPlaceholder('Enter any login').waitFor();
  assertNoProblems(page);
  await page.context().close();
});

test('a token keygate refuses (401 invalid_token) ends the session; signing in again returns to the same view', async () => {
  const page = await newPage(browser);
  await signInWithProvider(page, keygate.url, idp.issuer, { path: '/?per_page=10' });
  await loaded(page);
  assert.equal(query(page).per_page, '10');
  // A signature keygate cannot verify: as if the provider had rotated its keys.
  await page.evaluate(() => {
    const session = JSON.parse(sessionStorage.getItem('keygate.oidc'));
    session.token = `${session.token.slice(0, -8)}AAAAAAAA`;
    sessionStorage.setItem('keygate.oidc', JSON.stringify(session));
  });
  await page.locator('#keys-pager').getByLabel('Rows per page').selectOption('50');
  await page.getByRole('heading', { name: 'Sign in to keygate' }).waitFor();
  await page.getByText('Your session ended; sign in again.').waitFor();
  assert.deepEqual(await storage(page), { session: [], local: 0 });

  // The provider still knows her: one click, and the view the URL describes is back.
  await providerButton(page, idp.issuer).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await eventually(async () => assert.equal(await page.locator('#keys-per-page').inputValue(), '50'));
  assert.equal(query(page).per_page, '50');
  assertNoProblems(page);
  await page.context().close();
});

test('an expired session goes back to sign-in with a message; the key being created is kept and reopens', async () => {
  const page = await newPage(browser);
  // The page's clock, so that the ID token can expire without waiting for it.
  await page.clock.install();
  await signInWithProvider(page, oidcOnly.url, shortIdp.issuer);
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a new API Key' });
  await dialog.getByLabel('Token name').fill('half-typed');
  await dialog.getByLabel('Description').fill('Typed before the session ran out');

  await page.clock.fastForward(SHORT_TTL_S * 1000);
  await page.getByRole('heading', { name: 'Sign in to keygate' }).waitFor();
  await page.getByText('Your session ended; sign in again.').waitFor();
  await page.getByText('The key you were creating is kept').waitFor();
  assert.equal(await dialog.isVisible(), false);
  assert.deepEqual((await storage(page)).session, ['keygate.create_draft']);

  // Back to the real time (the jump was the page's alone), and sign in again.
  await page.clock.setSystemTime(new Date());
  await providerButton(page, shortIdp.issuer).click();
  await dialog.waitFor();
  await dialog.getByText('Your session ended while you were filling this in').waitFor();
  assert.equal(await dialog.getByLabel('Token name').inputValue(), 'half-typed');
  assert.equal(await dialog.getByLabel('Description').inputValue(), 'Typed before the session ran out');
  await dialog.getByRole('button', { name: 'Create API key' }).click();
  await page.getByRole('dialog', { name: 'API key created' }).getByRole('button', { name: 'Done' }).click();
  const row = page.locator('#keys-body tr', { hasText: 'half-typed' });
  assert.equal(await row.locator('.created-by').textContent(), ALICE.email);
  assert.deepEqual((await storage(page)).session, ['keygate.oidc'], 'the draft is used up');
  assertNoProblems(page);
  await page.context().close();
});

test('without an admin token only the provider is offered; with neither, the page says management is off', async () => {
  const page = await newPage(browser);
  await page.goto(`${oidcOnly.url}/`);
  await providerButton(page, shortIdp.issuer).waitFor();
  assert.equal(await page.getByLabel('Admin token').count(), 1, 'in the page, but...');
  assert.equal(await page.getByLabel('Admin token').isVisible(), false, '...not offered');
  assert.equal(await page.getByText('or with the admin token').isVisible(), false);

  const neither = await startKeygate({ adminToken: '' });
  try {
    const response = await page.goto(`${neither.url}/`);
    assert.equal(
      response.headers()['content-security-policy'],
      "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    await page.getByText('Managing keys is not configured on this keygate.').waitFor();
    assert.equal(await page.getByRole('button', { name: /^Sign in/ }).count(), 0);
    assert.equal(await page.getByLabel('Admin token').isVisible(), false);
    assertNoProblems(page);
  } finally {
    await neither.stop();
  }
  await page.context().close();
});
