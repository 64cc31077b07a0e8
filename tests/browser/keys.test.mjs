// The console's main path in a real browser: sign in, create a key (secret
// shown once), server errors in the dialog, delete with confirmation, revoked
// keys after the identity webhook, the audit trail, and a session that ends.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  ADMIN_TOKEN, OPERATOR, assertNoProblems, eventually, launchBrowser, loaded, managementApi,
  newPage, query, rowIds, signIn, startKeygate,
} from './support.mjs';

let keygate;
let api;
let browser;

before(async () => {
  keygate = await startKeygate();
  api = managementApi(keygate.url);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await keygate?.stop();
});

const row = (page, name) => page.locator('#keys-body tr', { has: page.locator('.key-name', { hasText: new RegExp(`^${name}$`) }) });

test('sign in: a wrong token is refused at the field, the right one opens the empty overview, sign out ends it', async () => {
  const page = await newPage(browser);
  await page.goto(`${keygate.url}/`);
  await page.getByRole('heading', { name: 'Sign in to keygate' }).waitFor();

  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('The admin token is required.').waitFor();
  assert.equal(await page.getByLabel('Admin token').getAttribute('aria-invalid'), 'true');

  await page.getByLabel('Admin token').fill('not-the-admin-token');
  await page.getByLabel('Your user id').fill(OPERATOR);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('The admin token was not accepted.').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'nothing is stored for a refused token');

  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  await page.getByText('No API keys yet').waitFor();
  assert.equal(await page.locator('#whoami').textContent(), OPERATOR);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('keygate.admin_token')), ADMIN_TOKEN);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('keygate.user')), OPERATOR);
  assert.equal(await page.title(), 'API keys · keygate');

  // The session survives a reload of the tab...
  await page.reload();
  await page.getByText('No API keys yet').waitFor();

  // ...and is gone after signing out.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to keygate' }).waitFor();
  await page.getByText('You have signed out.').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in to keygate' }).waitFor();
  assertNoProblems(page);
  await page.context().close();
});

test('while the overview loads, its panel says "Loading API keys…" and nothing else', async () => {
  const page = await newPage(browser);
  await signIn(page, keygate.url);
  // Hold the list's answer until the loading panel has been read.
  let release;
  const held = new Promise((ok) => { release = ok; });
  await page.route((url) => url.pathname === '/api/keys', async (route) => {
    await held;
    await route.continue();
  });
  await page.reload();
  const panel = page.locator('#keys-state');
  await panel.getByText('Loading API keys…').waitFor();
  assert.equal(await panel.textContent(), 'Loading API keys…');
  release();
  await page.getByText('No API keys yet').waitFor();
  assertNoProblems(page);
  await page.context().close();
});

test('create a key: the secret is shown once with a Copy button, then the key is in the list', async () => {
  const page = await newPage(browser, { permissions: ['clipboard-read', 'clipboard-write'] });
  await signIn(page, keygate.url);
  await page.getByRole('button', { name: 'Create', exact: true }).click();

  const dialog = page.getByRole('dialog', { name: 'Create a new API Key' });
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'create-name', 'focus starts in Token name');
  await dialog.getByLabel('Token name').fill('orders-sync');
  await dialog.getByLabel('Description').fill('Nightly order export');
  await dialog.getByRole('button', { name: 'Create API key' }).click();

  const shown = page.getByRole('dialog', { name: 'API key created' });
  await shown.waitFor();
  await shown.getByText('you will not see it again').waitFor();
  const secret = await shown.getByLabel('API key for “orders-sync”').inputValue();
  assert.match(secret, /^kg_[0-9A-Za-z]{38}$/);
  await shown.getByRole('button', { name: 'Copy' }).click();
  await shown.getByText('Copied to the clipboard.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);

  // The key is in the list behind the dialog already, with the secret's last characters as its hint.
  const created = row(page, 'orders-sync');
  await created.waitFor();
  assert.equal(await created.locator('.key-hint').textContent(), `kg_…${secret.slice(-4)}`);
  assert.equal(await created.locator('.created-by').textContent(), OPERATOR);
  assert.equal(await created.locator('.last-used').textContent(), 'Never');
  await created.getByText('Nightly order export').waitFor();
  await created.getByText('Active').waitFor();

  await shown.getByRole('button', { name: 'Done' }).click();
  await shown.waitFor({ state: 'hidden' });
  assert.ok(!(await page.content()).includes(secret), 'the secret is gone from the page');

  // It works, and the overview shows it was used.
  assert.equal(await api.verify(secret), 200);
  await page.reload();
  await eventually(async () => assert.equal(await row(page, 'orders-sync').locator('.last-used').textContent(), 'just now'));
  const usedAt = await row(page, 'orders-sync').locator('.last-used time');
  assert.match(await usedAt.getAttribute('title'), /^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}:\d{2} [AP]M UTC$/);

  // A new dialog starts empty.
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  assert.equal(await page.getByRole('dialog', { name: 'Create a new API Key' }).getByLabel('Token name').inputValue(), '');
  await page.keyboard.press('Escape');
  assertNoProblems(page);
  await page.context().close();
});

test('the create dialog shows server errors next to their field, keeps focus inside, closes with Escape', async () => {
  await api.create('billing-export');
  const page = await newPage(browser);
  await signIn(page, keygate.url);
  const open = page.getByRole('button', { name: 'Create', exact: true });
  await open.click();
  const dialog = page.getByRole('dialog', { name: 'Create a new API Key' });
  await dialog.waitFor();

  // Names are unique without regard to case: 409 name_taken, shown at the name.
  await dialog.getByLabel('Token name').fill('BILLING-export');
  await dialog.getByRole('button', { name: 'Create API key' }).click();
  await dialog.getByText('Token name is already used by another active key.').waitFor();
  assert.equal(await dialog.getByLabel('Token name').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'create-name');

  // 422 validation_failed, each message at its field.
  await dialog.getByLabel('Token name').fill('   ');
  await dialog.getByLabel('Expires at').fill('2020-01-01T10:00');
  await dialog.getByRole('button', { name: 'Create API key' }).click();
  await dialog.getByText('Token name must not be empty').waitFor();
  await dialog.getByText('Expiry must be in the future').waitFor();
  assert.equal(await dialog.getByLabel('Expires at').getAttribute('aria-invalid'), 'true');

  // Tab and Shift+Tab go round inside the dialog.
  for (const key of ['Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab']) {
    await page.keyboard.press(key);
    assert.ok(await page.evaluate(() => document.getElementById('create-dialog').contains(document.activeElement)), `focus left the dialog after ${key}`);
  }

  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'create-open', 'focus returns to Create');
  assert.equal((await api.list('name=billing')).total, 1, 'nothing was created');
  assertNoProblems(page);
  await page.context().close();
});

test('delete from the Actions menu, after a confirmation naming the key; the row disappears', async () => {
  const doomed = await api.create('temp-export');
  const page = await newPage(browser);
  await signIn(page, keygate.url);
  const target = row(page, 'temp-export');
  await target.waitFor();

  // The menu opens from the keyboard too, with focus on its first item; Escape closes it.
  const actions = target.getByRole('button', { name: 'Actions for temp-export' });
  await actions.focus();
  await page.keyboard.press('Enter');
  const menu = page.getByRole('menu', { name: 'Actions for temp-export' });
  await menu.waitFor();
  assert.equal(await actions.getAttribute('aria-expanded'), 'true');
  await eventually(async () => assert.equal(await page.evaluate(() => document.activeElement.textContent), 'View audit trail'));
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Edit…');
  await page.keyboard.press('End');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Delete');
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'View audit trail', 'round to the first');
  await page.keyboard.press('Escape');
  await menu.waitFor({ state: 'hidden' });
  assert.equal(await actions.getAttribute('aria-expanded'), 'false');

  // Cancel keeps the key.
  await actions.click();
  await menu.getByRole('menuitem', { name: 'Delete' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete the API key “temp-export”?' });
  await confirm.waitFor();
  await confirm.getByText('Automations that use it stop working at once.').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel', 'the safe choice has focus');
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await confirm.waitFor({ state: 'hidden' });
  assert.equal((await api.call('GET', `/api/keys/${doomed.id}`)).status, 200);
  await target.waitFor();

  // Delete removes it.
  await actions.click();
  await menu.getByRole('menuitem', { name: 'Delete' }).click();
  await confirm.getByRole('button', { name: 'Delete key' }).click();
  await confirm.waitFor({ state: 'hidden' });
  await target.waitFor({ state: 'detached' });
  await page.getByRole('status').getByText('API key “temp-export” deleted.').waitFor();
  assert.equal((await api.call('GET', `/api/keys/${doomed.id}`)).status, 404);
  assert.equal(await api.verify(doomed.secret), 401);
  assertNoProblems(page);
  await page.context().close();
});

test('keys of a removed user are marked revoked, with the reason', async () => {
  const leaver = 'leaver@example.com';
  await api.create('crm-sync', { user: leaver, description: 'CRM contacts, hourly' });
  await api.create('crm-backfill', { user: leaver });
  const page = await newPage(browser);
  await signIn(page, keygate.url);
  await row(page, 'crm-sync').getByText('Active').waitFor();

  const removal = await api.removeUser(leaver);
  assert.deepEqual([removal.status, removal.body.revoked_keys], [200, 2]);

  await page.reload();
  for (const name of ['crm-sync', 'crm-backfill']) {
    const revoked = row(page, name);
    await revoked.locator('.badge', { hasText: 'Revoked' }).waitFor();
    await eventually(async () => assert.equal(await revoked.locator('.status-note').textContent(),
      'Revoked just now: owner removed through the identity webhook'));
    assert.match(await revoked.getAttribute('class'), /status-revoked/);
  }
  await row(page, 'orders-sync').locator('.badge', { hasText: 'Active' }).waitFor();

  // The status filter finds exactly them.
  await page.getByLabel('Status', { exact: true }).selectOption('revoked');
  await eventually(async () => {
    assert.equal(query(page).status, 'revoked');
    const names = await page.locator('#keys-body .key-name').allTextContents();
    assert.deepEqual(names.sort(), ['crm-backfill', 'crm-sync']);
  });
  assertNoProblems(page);
  await page.context().close();
});

test('the audit trail: newest first, filtered by action, user, key and dates, paginated', async () => {
  for (let i = 1; i <= 12; i += 1) await api.create(`audit-filler-${String(i).padStart(2, '0')}`);
  const page = await newPage(browser);
  await signIn(page, keygate.url);
  await page.getByRole('link', { name: 'Audit trail' }).click();
  await page.getByRole('heading', { name: 'Audit trail' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/audit');
  assert.equal(await page.getByRole('link', { name: 'Audit trail' }).getAttribute('aria-current'), 'page');

  const entryIds = (p) => p.locator('#audit-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.entryId));
  const apiIds = async (q) => (await api.audit(q)).items.map((e) => e.id);
  const range = page.locator('#audit-pager [data-range]');

  // Newest first, as the API answers.
  const all = await api.audit('per_page=100');
  await eventually(async () => assert.deepEqual(await entryIds(page), (await apiIds('')).map(String)));
  assert.equal(await range.textContent(), `1–${Math.min(25, all.total)} of ${all.total}`);
  const times = all.items.map((e) => e.at);
  assert.deepEqual(times, [...times].sort().reverse(), 'newest first');

  // Pages.
  await page.locator('#audit-pager').getByLabel('Rows per page').selectOption('10');
  await eventually(async () => assert.equal(await range.textContent(), `1–10 of ${all.total}`));
  await page.locator('#audit-pager').getByRole('button', { name: 'Next' }).click();
  await eventually(async () => {
    assert.equal(await range.textContent(), `11–20 of ${all.total}`);
    assert.deepEqual(query(page), { page: '2', per_page: '10' });
    assert.deepEqual(await entryIds(page), (await apiIds('page=2&per_page=10')).map(String));
  });

  // By action.
  await page.getByLabel('Action', { exact: true }).selectOption('key.revoked');
  await eventually(async () => {
    assert.equal(query(page).action, 'key.revoked');
    assert.equal(query(page).page, undefined, 'a new filter starts at page 1');
    const actions = await page.locator('#audit-body .action').allTextContents();
    assert.deepEqual(actions, ['Key revoked', 'Key revoked']);
  });

  // By user, typed (applied once typing pauses).
  await page.getByLabel('Action', { exact: true }).selectOption('');
  await page.getByLabel('User', { exact: true }).pressSequentially('leaver@example.com', { delay: 10 });
  await eventually(async () => {
    assert.equal(query(page).user, 'leaver@example.com');
    const users = new Set(await page.locator('#audit-body .user').allTextContents());
    assert.deepEqual([...users], ['leaver@example.com']);
    assert.deepEqual(await entryIds(page), (await apiIds('user=leaver@example.com&per_page=10')).map(String));
  });
  await page.locator('#audit-body .details', { hasText: '2 keys revoked' }).waitFor();

  // By date: nothing happened tomorrow.
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  await page.getByLabel('From', { exact: true }).fill(tomorrow);
  await page.getByText('No audit entries match these filters').waitFor();
  await page.getByRole('button', { name: 'Clear filters' }).first().click();
  await eventually(async () => assert.equal(await range.textContent(), `1–10 of ${all.total}`));

  // From a key's Actions menu to its own trail; Back returns.
  await page.getByRole('link', { name: 'API keys' }).click();
  await loaded(page);
  const key = (await api.list('name=orders-sync')).items[0];
  await row(page, 'orders-sync').getByRole('button', { name: 'Actions for orders-sync' }).click();
  await page.getByRole('menuitem', { name: 'View audit trail' }).click();
  await page.getByRole('heading', { name: 'Audit trail' }).waitFor();
  await eventually(async () => {
    assert.equal(query(page).key_id, key.id);
    assert.equal(await page.getByLabel('Key id', { exact: true }).inputValue(), key.id);
    const actions = await page.locator('#audit-body .action').allTextContents();
    assert.deepEqual(actions, ['Key used', 'Key created']);
  });
  await page.locator('#audit-body .details', { hasText: 'GET /orders from 203.0.113.7' }).waitFor();
  await page.goBack();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  await row(page, 'orders-sync').waitFor();
  assertNoProblems(page);
  await page.context().close();
});

test('a token that stops working sends the user back to sign in, with a message', async () => {
  const page = await newPage(browser);
  await signIn(page, keygate.url);
  await loaded(page);
  await page.evaluate(() => sessionStorage.setItem('keygate.admin_token', 'a-rotated-admin-token-000000'));
  await page.locator('#keys-pager').getByLabel('Rows per page').selectOption('50');
  await page.getByRole('heading', { name: 'Sign in to keygate' }).waitFor();
  await page.getByText('Your session has ended: the admin token was not accepted.').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  // Signing in again brings back the view the URL describes.
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.getByLabel('Your user id').fill(OPERATOR);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await eventually(async () => assert.equal(await page.locator('#keys-per-page').inputValue(), '50'));
  await eventually(async () => assert.ok((await rowIds(page)).length > 0));

  // A removed user cannot sign in.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.getByLabel('Your user id').fill('leaver@example.com');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('The user id belongs to a removed user').waitFor();
  assertNoProblems(page);
  await page.context().close();
});
