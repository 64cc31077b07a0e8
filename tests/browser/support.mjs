// Browser-test support: the real keygate-host serving the real spin.toml with
// the built .wasm files, the management API from Node (to set up data), the
// signed user-removed webhook, a real OpenID Provider (oidc-provider) for
// signing in, and Debian's Chromium driven by playwright-core.

import { spawn } from 'node:child_process';
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Provider from 'oidc-provider';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const ADMIN_TOKEN = 'kgbrowser-admin-Qm4Xt8Lp2Wz6Rn9Vc3Hj7Bd5Ks1Fy0';
export const WEBHOOK_SECRET = `whsec_${Buffer.from('keygate browser tests: 32 bytes!').toString('base64')}`;
export const OPERATOR = 'operator@example.com';
/** For `startKeygate({ variables: { scim_token: SCIM_TOKEN } })` (at least 16 characters). */
export const SCIM_TOKEN = 'kgbrowser-scim-Zr5Wq8Nt3Lx6Pk2Hv9';

const HOST = join(ROOT, 'target/release/keygate-host');
// Every component spin.toml names: keygate-host loads them all.
const COMPONENTS = ['console', 'keys', 'verify', 'health', 'user_webhook', 'scim', 'okta_hook', 'ssf_receiver'];
const START_TIMEOUT_MS = 60_000;

/**
 * Starts keygate-host on a free port with a fresh state dir. `adminToken: ''`
 * turns the admin-token mode off; `oidcIssuer` turns signing in with that
 * OpenID Provider on, with the console as its client. `variables` sets
 * more Spin variables (`{ scim_token: SCIM_TOKEN }` turns SCIM on).
 */
export async function startKeygate({ adminToken = ADMIN_TOKEN, oidcIssuer = null, variables = {} } = {}) {
  for (const file of [HOST, ...COMPONENTS.map((c) => join(ROOT, `target/wasm32-wasip2/release/${c}.wasm`))]) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run ./dev test (it builds the runner and the components)`);
  }
  const state = mkdtempSync(join(tmpdir(), 'keygate-browser-'));
  const oidc = oidcIssuer
    ? [
        '--variable', `oidc_issuer=${oidcIssuer}`,
        '--variable', `oidc_origin=${new URL(oidcIssuer).origin}`,
        '--variable', `oidc_client_id=${CLIENT_ID}`,
      ]
    : [];
  const child = spawn(HOST, [
    'up',
    '--manifest', join(ROOT, 'spin.toml'),
    '--listen', '127.0.0.1:0',
    '--state-dir', join(state, 'state'),
    '--cache-dir', join(ROOT, 'target/keygate-test-cache'),
    '--variable', `admin_token=${adminToken}`,
    '--variable', `webhook_secret=${WEBHOOK_SECRET}`,
    ...oidc,
    ...Object.entries(variables).flatMap(([name, value]) => ['--variable', `${name}=${value}`]),
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`keygate-host did not start:\n${stderr}`)), START_TIMEOUT_MS);
    child.on('exit', (code) => fail(new Error(`keygate-host exited (${code}):\n${stderr}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^Serving (http:\/\/\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        ok(match[1]);
      }
    });
  });
  return {
    url,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((ok) => child.on('exit', ok));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(state, { recursive: true, force: true });
    },
  };
}

export const CLIENT_ID = 'keygate-console';

/** The people the test identity provider knows, by the login typed on its page. */
export const ALICE = { login: 'alice@example.com', email: 'alice@example.com', name: 'Alice Example' };
const ACCOUNTS = new Map([ALICE].map((account) => [account.login, account]));

/**
 * A real OpenID Provider, oidc-provider, on 127.0.0.1 with its own
 * development login and consent pages (any password), RS256 ID tokens
 * carrying email, email_verified and name, PKCE required. keygate needs the
 * issuer before it starts and the provider's one client, the console, needs
 * keygate's origin: so this listens first, and `serve(origin)` creates the
 * provider once keygate is up. `idTokenTtl` (seconds) is the ID tokens' life.
 */
export async function startIdentityProvider({ idTokenTtl = 3600 } = {}) {
  let handler = (req, res) => {
    res.statusCode = 503;
    res.end('the provider is not serving yet');
  };
  const server = createServer((req, res) => handler(req, res));
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const signingKey = {
    ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
    kid: `test-${randomUUID()}`,
    alg: 'RS256',
    use: 'sig',
  };
  return {
    issuer,
    serve(origin) {
      const provider = new Provider(issuer, {
        clients: [{
          client_id: CLIENT_ID,
          application_type: 'web',
          token_endpoint_auth_method: 'none',
          grant_types: ['authorization_code'],
          response_types: ['code'],
          redirect_uris: [`${origin}/`],
          post_logout_redirect_uris: [`${origin}/`],
        }],
        jwks: { keys: [signingKey] },
        findAccount(ctx, id) {
          const account = ACCOUNTS.get(id);
          if (!account) return undefined;
          return {
            accountId: id,
            claims: () => ({ sub: id, email: account.email, email_verified: true, name: account.name }),
          };
        },
        claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
        // The claims of the requested scopes go into the ID token itself.
        conformIdTokenClaims: false,
        pkce: { required: () => true },
        // The console calls the token endpoint from the browser.
        clientBasedCORS: (ctx, requestOrigin) => requestOrigin === origin,
        features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
        // Plain http on 127.0.0.1: cookies without SameSite=None, which needs https.
        cookies: {
          keys: ['keygate browser tests: cookie signing key'],
          long: { signed: true, sameSite: 'lax' },
          short: { signed: true, sameSite: 'lax' },
        },
        ttl: {
          IdToken: idTokenTtl,
          AccessToken: 3600,
          AuthorizationCode: 60,
          Grant: 3600,
          Interaction: 600,
          Session: 3600,
        },
      });
      handler = provider.callback();
      return provider;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    },
  };
}

/**
 * Goes through the provider's own pages as a person would: types the login
 * (and a password, which the development pages do not check), allows the
 * console its scopes on the consent page, and waits for the console.
 */
export async function signInAtProvider(page, { login = ALICE.login } = {}) {
  await passProviderPages(page, { login });
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** The provider's login and consent pages, in a browser context it has not seen before. */
export async function passProviderPages(page, { login = ALICE.login } = {}) {
  await page.getByPlaceholder('Enter any login').fill(login);
  await page.getByPlaceholder('and password').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
}

/** The management API, as the console's operator (or `user`). */
export function managementApi(base) {
  async function call(method, path, { body, user = OPERATOR } = {}) {
    const response = await fetch(base + path, {
      method,
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        'x-acting-user': user,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }
  return {
    call,
    /** Creates a key; returns the key object with its `secret`. */
    async create(name, { user = OPERATOR, ...rest } = {}) {
      const { status, body } = await call('POST', '/api/keys', { body: { name, ...rest }, user });
      if (status !== 201) throw new Error(`create ${name}: ${status} ${JSON.stringify(body)}`);
      return body;
    },
    async list(query = '') {
      const { status, body } = await call('GET', `/api/keys${query ? `?${query}` : ''}`);
      if (status !== 200) throw new Error(`list ${query}: ${status} ${JSON.stringify(body)}`);
      return body;
    },
    async audit(query = '') {
      const { status, body } = await call('GET', `/api/audit${query ? `?${query}` : ''}`);
      if (status !== 200) throw new Error(`audit ${query}: ${status} ${JSON.stringify(body)}`);
      return body;
    },
    /** Uses a key the way an automation does; sets its "last used". */
    async verify(secret, { method = 'GET', path = '/orders' } = {}) {
      const response = await fetch(`${base}/api/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: secret, method, path, source_ip: '203.0.113.7' }),
      });
      return response.status;
    },
    /** The identity system's user-removed delivery, signed per Standard Webhooks. */
    async removeUser(userId) {
      const id = `msg_${randomUUID()}`;
      const timestamp = Math.floor(Date.now() / 1000).toString();
      const body = JSON.stringify({
        type: 'user.removed',
        timestamp: new Date().toISOString(),
        data: { user_id: userId },
      });
      const key = Buffer.from(WEBHOOK_SECRET.slice('whsec_'.length), 'base64');
      const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
      const response = await fetch(`${base}/webhooks/user-removed`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': id,
          'webhook-timestamp': timestamp,
          'webhook-signature': `v1,${signature}`,
        },
        body,
      });
      return { status: response.status, body: await response.json() };
    },
  };
}

/**
 * The identity provider's SCIM 2.0 client (keygate started with
 * `variables: { scim_token: SCIM_TOKEN }`): provisions a user, then
 * deactivates them the way Entra ID does (`"active"` as the string `"False"`).
 */
export function scimClient(base, token = SCIM_TOKEN) {
  async function call(method, path, body) {
    const response = await fetch(`${base}/scim/v2${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/scim+json',
        ...(body ? { 'content-type': 'application/scim+json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }
  return {
    call,
    /** `POST /Users`; returns the SCIM resource (its `id` is SCIM's, `userName` keygate's user id). */
    async provision(userName) {
      const { status, body } = await call('POST', '/Users', {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
        userName,
        active: true,
        emails: [{ value: userName, type: 'work', primary: true }],
      });
      if (status !== 201) throw new Error(`SCIM POST /Users ${userName}: ${status} ${JSON.stringify(body)}`);
      return body;
    },
    /** `PATCH /Users/{id}` setting `active` to "False": removes the user from keygate. */
    deactivate(id) {
      return call('PATCH', `/Users/${encodeURIComponent(id)}`, {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
        Operations: [{ op: 'Replace', path: 'active', value: 'False' }],
      });
    },
  };
}

/**
 * Debian's Chromium, headless, with the flags this machine's closed network
 * needs; Playwright gives every launch a new empty profile.
 */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    chromiumSandbox: false,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A page in a fresh context (its own sessionStorage), 1280 px wide unless
 * told otherwise, in UTC and US English. `page.problems` collects console
 * errors (CSP violations among them), uncaught exceptions and 5xx answers.
 */
export async function newPage(browser, { width = 1280, height = 900, permissions = [] } = {}) {
  const context = await browser.newContext({
    viewport: { width, height },
    locale: 'en-US',
    timezoneId: 'UTC',
    permissions,
  });
  const page = await context.newPage();
  page.problems = [];
  // No test may need the internet. The provider's development pages @import a
  // web font: that gets an empty style sheet; anything else leaving
  // 127.0.0.1 is refused and fails the test.
  await context.route((url) => url.hostname !== '127.0.0.1', (route) => {
    const url = route.request().url();
    if (new URL(url).hostname === 'fonts.googleapis.com') {
      return route.fulfill({ status: 200, contentType: 'text/css', body: '' });
    }
    page.problems.push(`request to the internet: ${url}`);
    return route.abort('blockedbyclient');
  });
  page.on('console', (message) => {
    if (message.type() === 'error') page.problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => page.problems.push(`exception: ${error.message}`));
  page.on('response', (response) => {
    if (response.status() >= 500) page.problems.push(`${response.status()} ${response.url()}`);
  });
  return page;
}

/** Signs in through the sign-in screen's admin-token form and waits for the overview. */
export async function signIn(page, base, { user = OPERATOR, path = '/' } = {}) {
  await page.goto(base + path);
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.getByLabel('Your user id').fill(user);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/**
 * Retries `check` (which throws, e.g. with node:assert, until the page is in
 * the expected state) until it passes or `timeout` ms have gone by. Polling
 * the DOM, not sleeping, is how tests wait.
 */
export async function eventually(check, { timeout = 10_000, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await new Promise((ok) => setTimeout(ok, interval));
  }
}

/** The ids of the overview's rows, top to bottom. */
export const rowIds = (page) => page.locator('#keys-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.keyId));

/** The overview has finished loading (no request in flight). */
export const loaded = (page, table = '#keys-table') =>
  page.locator(`${table}[aria-busy="false"]`).waitFor({ state: 'attached' });

/** The query string of the page's URL as a plain object. */
export const query = (page) => Object.fromEntries(new URL(page.url()).searchParams);

/**
 * Fails on console errors, uncaught exceptions and 5xx answers the page saw.
 * Chromium logs every 4xx answer as a console error; the tests provoke some
 * on purpose (a wrong token, a taken name), so those are not problems.
 */
export function assertNoProblems(page) {
  const problems = page.problems.filter(
    (p) => !/^console: Failed to load resource: the server responded with a status of 4\d\d/.test(p),
  );
  if (problems.length) throw new Error(`the page reported problems:\n${problems.join('\n')}`);
}
