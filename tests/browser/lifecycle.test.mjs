// v2 in the console: Edit…, Transfer… and Roll… in a key's Actions menu, the
// Service accounts page (paged list, create, delete revoking its keys), the
// Owner column naming service accounts, and what removing the user the Owner
// filter names would break. Errors are the API's, shown at their field or
// near the form.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  OPERATOR, ROOT, assertNoProblems, eventually, launchBrowser, loaded, managementApi, newPage, query,
  signIn, startKeygate,
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
/** For looking at: target/browser/console-<name>.png. */
async function picture(page, name) {
  mkdirSync(join(ROOT, 'target/browser'), { recursive: true });
  await page.screenshot({ path: join(ROOT, `target/browser/console-${name}.png`) });
}

const key = async (id) => (await api.call('GET', `/api/keys/${id}`)).body;

/** Opens the key's Actions menu and picks `item`. */
async function action(page, name, item) {
  await row(page, name).getByRole('button', { name: `Actions for ${name}` }).click();
  await page.getByRole('menu', { name: `Actions for ${name}` }).getByRole('menuitem', { name: item }).click();
}

async function createAccount(name, description) {
  const { status, body } = await api.call('POST', '/api/service-accounts', { body: { name, description } });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

/** "1 Dec 2026, 03:00 UTC", as the page (in UTC) states a moment in a sentence. */
const zoned = (ms) => new Intl.DateTimeFormat('en-GB', {
  day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  timeZoneName: 'short', timeZone: 'UTC',
}).format(new Date(ms));

test('Edit…: prefilled, server errors at their field, saves only what changed; Escape returns focus', async () => {
  const edited = await api.create('edit-me', { description: 'Old words' });
  await api.create('taken-name');
  const page = await newPage(browser);
  await signIn(page, keygate.url);
  await row(page, 'edit-me').waitFor();

  await action(page, 'edit-me', 'Edit…');
  const dialog = page.getByRole('dialog', { name: 'Edit the API key “edit-me”' });
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'edit-name', 'focus starts in Token name');
  assert.equal(await dialog.getByLabel('Token name').inputValue(), 'edit-me');
  assert.equal(await dialog.getByLabel('Description').inputValue(), 'Old words');
  assert.equal(await dialog.getByLabel('Expires at').inputValue(), '');

  // 409 name_taken, whatever the case.
  await dialog.getByLabel('Token name').fill('TAKEN-name');
  await dialog.getByRole('button', { name: 'Save changes' }).click();
  await dialog.getByText('Token name is already used by another active key.').waitFor();
  assert.equal(await dialog.getByLabel('Token name').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'edit-name');

  // 422 validation_failed, each at its field.
  await dialog.getByLabel('Token name').fill('  ');
  await dialog.getByLabel('Expires at').fill('2020-01-01T10:00');
  await dialog.getByRole('button', { name: 'Save changes' }).click();
  await dialog.getByText('Token name must not be empty').waitFor();
  await dialog.getByText('Expiry must be in the future').waitFor();
  assert.equal((await key(edited.id)).name, 'edit-me', 'nothing changed');

  // Escape closes it, focus back on the key's Actions button.
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  await eventually(async () => assert.equal(
    await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Actions for edit-me'));

  // A new name, no description, an expiry.
  await action(page, 'edit-me', 'Edit…');
  await dialog.waitFor();
  assert.equal(await dialog.getByLabel('Token name').inputValue(), 'edit-me', 'opens with the key as it is');
  const renamed = page.getByRole('dialog', { name: 'Edit the API key “edit-me”' });
  await renamed.getByLabel('Token name').fill('edited-key');
  await renamed.getByLabel('Description').fill('');
  const expires = new Date(Date.now() + 3 * 86_400_000);
  const local = expires.toISOString().slice(0, 16);
  await renamed.getByLabel('Expires at').fill(local);
  await renamed.getByRole('button', { name: 'Save changes' }).click();
  await renamed.waitFor({ state: 'hidden' });
  await page.getByRole('status').getByText('API key “edited-key” saved.').waitFor();
  const now = await key(edited.id);
  assert.deepEqual([now.name, now.description, now.expires_at], ['edited-key', null, `${local}:00Z`]);
  const shown = row(page, 'edited-key');
  await shown.waitFor();
  assert.equal(await shown.locator('.key-description').count(), 0);
  await shown.getByText('Expires in 3 days').waitFor();
  await eventually(async () => assert.equal(
    await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Actions for edited-key'));
  const { items } = await api.audit(`key_id=${edited.id}&action=key.updated`);
  assert.deepEqual(items.map((e) => e.details.fields), [['name', 'description', 'expires_at']]);

  // Saving nothing new sends nothing.
  await action(page, 'edited-key', 'Edit…');
  await page.getByRole('dialog', { name: 'Edit the API key “edited-key”' }).getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('status').getByText('Nothing changed in “edited-key”.').waitFor();
  assert.equal((await api.audit(`key_id=${edited.id}&action=key.updated`)).total, 1);
  assertNoProblems(page);
  await page.context().close();
});

test('Edit…: a key revoked or deleted while the dialog is open: the API\'s detail near the form; revoked keys offer no changes', async () => {
  const leaver = 'edit-leaver@example.com';
  await api.create('soon-revoked', { user: leaver });
  const doomed = await api.create('soon-deleted');
  const page = await newPage(browser);
  await signIn(page, keygate.url);

  await action(page, 'soon-revoked', 'Edit…');
  const dialog = page.getByRole('dialog', { name: 'Edit the API key “soon-revoked”' });
  await dialog.getByLabel('Description').fill('too late');
  assert.equal((await api.removeUser(leaver)).status, 200);
  await dialog.getByRole('button', { name: 'Save changes' }).click();
  await dialog.getByRole('alert').getByText('the key was revoked (its owner was removed or deleted) and cannot be changed').waitFor();
  await page.keyboard.press('Escape');

  await action(page, 'soon-deleted', 'Edit…');
  const deleted = page.getByRole('dialog', { name: 'Edit the API key “soon-deleted”' });
  await deleted.getByLabel('Description').fill('too late');
  assert.equal((await api.call('DELETE', `/api/keys/${doomed.id}`)).status, 204);
  await deleted.getByRole('button', { name: 'Save changes' }).click();
  await deleted.getByRole('alert').getByText('no key with this id').waitFor();
  await page.keyboard.press('Escape');

  // A revoked key's menu: no Edit, Transfer or Roll; the keyboard skips them.
  await page.reload();
  await row(page, 'soon-revoked').locator('.badge', { hasText: 'Revoked' }).waitFor();
  await row(page, 'soon-revoked').getByRole('button', { name: 'Actions for soon-revoked' }).click();
  const menu = page.getByRole('menu', { name: 'Actions for soon-revoked' });
  await menu.waitFor();
  const items = async () => menu.getByRole('menuitem').allTextContents();
  assert.deepEqual(await items(), ['View audit trail', 'Delete']);
  await eventually(async () => assert.equal(await page.evaluate(() => document.activeElement.textContent), 'View audit trail'));
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Delete');
  await page.keyboard.press('Escape');
  // An active key's menu has them all.
  await row(page, 'taken-name').getByRole('button', { name: 'Actions for taken-name' }).click();
  await eventually(async () => assert.deepEqual(
    await page.getByRole('menu', { name: 'Actions for taken-name' }).getByRole('menuitem').allTextContents(),
    ['View audit trail', 'Edit…', 'Transfer…', 'Roll…', 'Delete']));
  await page.keyboard.press('Escape');
  assertNoProblems(page);
  await page.context().close();
});

test('Transfer…: to a service account (same secret, its name in the Owner column), to a user; a removed user is refused at the field', async () => {
  const account = await createAccount('orders-automation', 'Keys of the order sync');
  const moved = await api.create('orders-export');
  const page = await newPage(browser);
  await signIn(page, keygate.url);

  await action(page, 'orders-export', 'Transfer…');
  const dialog = page.getByRole('dialog', { name: 'Transfer the API key “orders-export”' });
  await dialog.waitFor();
  await dialog.getByText(`It now acts as ${OPERATOR}.`).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.value), 'account', 'focus on the first choice');
  const select = dialog.getByLabel('Service account', { exact: true });
  await eventually(async () => assert.ok(await select.isEnabled()));
  // Nothing chosen yet.
  await dialog.getByRole('button', { name: 'Transfer key' }).click();
  await dialog.getByText('Choose a service account.').waitFor();
  assert.equal(await select.getAttribute('aria-invalid'), 'true');
  await select.selectOption({ label: 'orders-automation' });
  await picture(page, 'transfer');
  await dialog.getByRole('button', { name: 'Transfer key' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await page.getByRole('status').getByText('API key “orders-export” transferred to orders-automation.').waitFor();

  assert.equal((await key(moved.id)).owner, account.id);
  const owner = row(page, 'orders-export').locator('.owner');
  await eventually(async () => assert.equal(await owner.textContent(), 'orders-automation service account'));
  assert.equal(await owner.locator('[title]').getAttribute('title'), account.id);
  assert.equal(await row(page, 'orders-export').locator('.created-by').textContent(), OPERATOR);
  // The same secret still works, now as the service account.
  const verified = await fetch(`${keygate.url}/api/verify`, { headers: { authorization: `Bearer ${moved.secret}` } });
  assert.equal(verified.status, 200);
  assert.equal((await verified.json()).user_id, account.id);
  const transferred = await api.audit(`key_id=${moved.id}&action=key.transferred`);
  assert.deepEqual(transferred.items[0].details.from, OPERATOR);
  assert.deepEqual(transferred.items[0].details.to, account.id);

  // To a user: a removed one is refused (422 at the field), another is not.
  const gone = 'gone@example.com';
  await api.removeUser(gone);
  await action(page, 'orders-export', 'Transfer…');
  const again = page.getByRole('dialog', { name: 'Transfer the API key “orders-export”' });
  await again.getByText('It now acts as orders-automation service account.').waitFor();
  await again.getByLabel('A user').check();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'transfer-user');
  assert.ok(await again.getByLabel('Service account', { exact: true }).isHidden());
  await again.getByLabel('User id').fill('GONE@example.com');
  await again.getByRole('button', { name: 'Transfer key' }).click();
  await again.getByText('This user has been removed and cannot own keys.').waitFor();
  assert.equal(await again.getByLabel('User id').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'transfer-user');
  await again.getByLabel('User id').fill('heir@example.com');
  await again.getByRole('button', { name: 'Transfer key' }).click();
  await again.waitFor({ state: 'hidden' });
  await eventually(async () => assert.equal(await owner.textContent(), 'heir@example.com'));
  assert.equal((await key(moved.id)).owner, 'heir@example.com');
  assertNoProblems(page);
  await page.context().close();
});

test('Create for a service account: the key acts as it from the start', async () => {
  const robot = await createAccount('reports-robot');
  const page = await newPage(browser);
  await signIn(page, keygate.url);
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a new API Key' });
  const owner = dialog.getByLabel('Owner', { exact: true });
  assert.equal(await owner.inputValue(), '', 'the signed-in user by default');
  assert.equal(await owner.locator('option:checked').textContent(), `You (${OPERATOR})`);
  await eventually(async () => assert.ok(
    (await owner.locator('option').allTextContents()).includes('reports-robot (service account)')));
  await dialog.getByLabel('Token name').fill('weekly-report');
  await owner.selectOption({ label: 'reports-robot (service account)' });
  await dialog.getByRole('button', { name: 'Create API key' }).click();
  const shown = page.getByRole('dialog', { name: 'API key created' });
  const secret = await shown.getByLabel('API key for “weekly-report”').inputValue();
  await shown.getByRole('button', { name: 'Done' }).click();
  await eventually(async () => assert.equal(
    await row(page, 'weekly-report').locator('.owner').textContent(), 'reports-robot service account'));
  const made = (await api.list('name=weekly-report')).items[0];
  assert.deepEqual([made.owner, made.created_by], [robot.id, OPERATOR]);
  const verified = await fetch(`${keygate.url}/api/verify`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal((await verified.json()).user_id, robot.id);
  assertNoProblems(page);
  await page.context().close();
});

test('Roll…: the new secret shown once like create shows it, and until when the old one works', async () => {
  const rolled = await api.create('ci-deploy');
  const page = await newPage(browser, { permissions: ['clipboard-read', 'clipboard-write'] });
  await signIn(page, keygate.url);

  await action(page, 'ci-deploy', 'Roll…');
  const dialog = page.getByRole('dialog', { name: 'Roll the secret of “ci-deploy”' });
  await dialog.waitFor();
  const grace = dialog.getByLabel('Keep the current secret working for');
  assert.equal(await grace.inputValue(), '0', 'by default the old secret stops at once');
  await grace.selectOption({ label: '1 hour' });
  const asked = Date.now();
  await dialog.getByRole('button', { name: 'Roll secret' }).click();

  const shown = page.getByRole('dialog', { name: 'Secret rolled' });
  await shown.waitFor();
  await shown.getByText('you will not see it again').waitFor();
  const secret = await shown.getByLabel('New API key for “ci-deploy”').inputValue();
  assert.match(secret, /^kg_[0-9A-Za-z]{38}$/);
  assert.notEqual(secret, rolled.secret);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'roll-secret-value');
  await shown.getByRole('button', { name: 'Copy' }).click();
  await shown.getByText('Copied to the clipboard.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  await picture(page, 'rolled');
  const previous = await shown.locator('#roll-previous').textContent();
  const until = [zoned(asked + 3_600_000), zoned(Date.now() + 3_600_000)];
  assert.ok(until.some((t) => previous === `The previous secret keeps working until ${t} (1 hour), then it is refused.`), previous);
  // Both work for now; the row shows the new secret's end.
  assert.equal(await api.verify(rolled.secret), 200);
  assert.equal(await api.verify(secret), 200);
  await eventually(async () => assert.equal(await row(page, 'ci-deploy').locator('.key-hint').textContent(), `kg_…${secret.slice(-4)}`));

  await shown.getByRole('button', { name: 'Done' }).click();
  await shown.waitFor({ state: 'hidden' });
  assert.ok(!(await page.content()).includes(secret), 'the secret is gone from the page');
  await eventually(async () => assert.equal(
    await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Actions for ci-deploy'));

  // Again, with no grace: the secret just made stops at once.
  await action(page, 'ci-deploy', 'Roll…');
  const second = page.getByRole('dialog', { name: 'Roll the secret of “ci-deploy”' });
  assert.equal(await second.getByLabel('Keep the current secret working for').inputValue(), '0');
  await second.getByRole('button', { name: 'Roll secret' }).click();
  const shownAgain = page.getByRole('dialog', { name: 'Secret rolled' });
  await shownAgain.getByText('The previous secret no longer works.').waitFor();
  const third = await shownAgain.getByLabel('New API key for “ci-deploy”').inputValue();
  assert.equal(await api.verify(secret), 401);
  assert.equal(await api.verify(rolled.secret), 401, 'a key has at most one previous secret');
  assert.equal(await api.verify(third), 200);
  await page.keyboard.press('Escape');
  await shownAgain.waitFor({ state: 'hidden' });
  await eventually(async () => assert.equal(await page.locator('#roll-secret-value').inputValue(), ''));
  assertNoProblems(page);
  await page.context().close();
});

test('Service accounts: paged list, create (name taken shown at the field), delete after a confirmation that its keys will be revoked', async () => {
  const page = await newPage(browser);
  await signIn(page, keygate.url);
  await page.getByRole('link', { name: 'Service accounts' }).click();
  await page.getByRole('heading', { name: 'Service accounts', level: 1 }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/service-accounts');
  assert.equal(await page.title(), 'Service accounts · keygate');
  assert.equal(await page.getByRole('link', { name: 'Service accounts' }).getAttribute('aria-current'), 'page');

  // Create from the page.
  await page.getByRole('button', { name: 'Create service account' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a service account' });
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'account-name');
  await dialog.getByRole('button', { name: 'Create service account' }).click();
  await dialog.getByText('Name must not be empty').or(dialog.getByText('Name is required')).waitFor();
  await dialog.getByLabel('Name').fill('ORDERS-automation');
  await dialog.getByRole('button', { name: 'Create service account' }).click();
  await dialog.getByText('Name is already used by another service account.').waitFor();
  assert.equal(await dialog.getByLabel('Name').getAttribute('aria-invalid'), 'true');
  await dialog.getByLabel('Name').fill('billing-robot');
  await dialog.getByLabel('Description').fill('Invoices, nightly');
  await dialog.getByRole('button', { name: 'Create service account' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await page.getByRole('status').getByText('Service account “billing-robot” created.').waitFor();
  const accountRow = page.locator('#accounts-body tr', { hasText: 'billing-robot' });
  await accountRow.getByText('Invoices, nightly').waitFor();
  assert.equal(await accountRow.locator('.created-by').textContent(), OPERATOR);
  const robot = (await api.call('GET', '/api/service-accounts?per_page=100')).body.items.find((a) => a.name === 'billing-robot');
  assert.match(robot.id, /^sa_/);
  await accountRow.getByText(robot.id).waitFor();

  // Paged: 12 more, 10 a page.
  for (let i = 1; i <= 12; i += 1) await createAccount(`filler-${String(i).padStart(2, '0')}`);
  const { total } = (await api.call('GET', '/api/service-accounts?per_page=1')).body;
  await page.reload();
  const range = page.locator('#accounts-pager [data-range]');
  await eventually(async () => assert.equal(await range.textContent(), `1–${Math.min(25, total)} of ${total}`));
  await page.locator('#accounts-pager').getByLabel('Rows per page').selectOption('10');
  await eventually(async () => assert.equal(await range.textContent(), `1–10 of ${total}`));
  assert.equal(await page.locator('#accounts-body tr').count(), 10);
  await page.locator('#accounts-pager').getByRole('button', { name: 'Next' }).click();
  await eventually(async () => {
    assert.equal(await range.textContent(), `11–${Math.min(20, total)} of ${total}`);
    assert.deepEqual(query(page), { page: '2', per_page: '10' });
  });
  const second = await page.locator('#accounts-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.accountId));
  const apiSecond = (await api.call('GET', '/api/service-accounts?page=2&per_page=10')).body.items.map((a) => a.id);
  assert.deepEqual(second, apiSecond);

  // Two keys act as the robot; deleting it says so, and revokes them.
  const keys = [];
  for (const name of ['invoices-push', 'invoices-pull']) {
    keys.push(await api.create(name, { owner: robot.id }));
  }
  await page.goto(`${keygate.url}/service-accounts`);
  const robotRow = page.locator('#accounts-body tr', { hasText: 'billing-robot' });
  // Its keys, one link away.
  await robotRow.getByRole('link', { name: 'Keys of billing-robot' }).click();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  await eventually(async () => {
    assert.deepEqual(query(page), { owner: robot.id });
    assert.deepEqual((await page.locator('#keys-body .key-name').allTextContents()).sort(), ['invoices-pull', 'invoices-push']);
  });
  assert.equal(await page.locator('#keys-owner-notice').textContent(), '', 'no removal warning for a service account');
  await page.goBack();
  await robotRow.getByRole('button', { name: 'Delete billing-robot' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete the service account “billing-robot”?' });
  await confirm.waitFor();
  await confirm.getByText('Its 2 active keys are revoked at once: automations using them stop working.').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel', 'the safe choice has focus');
  await picture(page, 'service-account-delete');
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await confirm.waitFor({ state: 'hidden' });
  assert.equal(await api.verify(keys[0].secret), 200);

  await robotRow.getByRole('button', { name: 'Delete billing-robot' }).click();
  await confirm.getByRole('button', { name: 'Delete and revoke its keys' }).click();
  await confirm.waitFor({ state: 'hidden' });
  await page.getByRole('status').getByText('Service account “billing-robot” deleted; its keys are revoked.').waitFor();
  await robotRow.waitFor({ state: 'detached' });
  for (const k of keys) assert.equal(await api.verify(k.secret), 401);

  // The overview says why.
  await page.getByRole('link', { name: 'API keys' }).click();
  await loaded(page);
  for (const name of ['invoices-push', 'invoices-pull']) {
    const revoked = row(page, name);
    await eventually(async () => assert.equal(await revoked.locator('.status-note').textContent(),
      'Revoked just now: its service account was deleted'));
    await eventually(async () => assert.equal(await revoked.locator('.owner').textContent(),
      `${robot.id} deleted service account`));
  }
  assertNoProblems(page);
  await page.context().close();
});

test('the Owner filter naming a user warns what removing them would break; a removed one says how they were removed', async () => {
  const busy = 'busy@example.com';
  const made = [];
  for (const name of ['busy-a', 'busy-b', 'busy-c']) made.push(await api.create(name, { user: busy }));
  for (const k of made.slice(0, 2)) assert.equal(await api.verify(k.secret), 200);
  const page = await newPage(browser);
  await signIn(page, keygate.url);
  const notice = page.locator('#keys-owner-notice');

  await page.getByRole('search', { name: 'Filter API keys' }).getByLabel('Owner', { exact: true }).fill('Busy@Example.com');
  await eventually(async () => assert.equal(await notice.locator('.notice-text').textContent(),
    'If Busy@Example.com is removed, 3 active keys are revoked — 2 keys used in the last 30 days stop working.'));
  assert.equal(await notice.getAttribute('data-kind'), 'impact');
  await notice.getByText('Transfer the keys automations need to a service account').waitFor();
  await picture(page, 'owner-impact');

  await page.getByRole('search', { name: 'Filter API keys' }).getByLabel('Owner', { exact: true }).fill('nobody@example.com');
  await eventually(async () => assert.equal(await notice.locator('.notice-text').textContent(),
    'nobody@example.com owns no active keys: removing them would break no automation.'));

  // Removed: the notice says how, and no longer what it would break.
  assert.equal((await api.removeUser(busy)).body.revoked_keys, 3);
  await page.getByRole('search', { name: 'Filter API keys' }).getByLabel('Owner', { exact: true }).fill('BUSY@example.com');
  await eventually(async () => assert.match(await notice.locator('.notice-text').textContent(),
    /^busy@example.com was removed through the identity webhook on .+ — their 3 keys were revoked\.$/));
  assert.equal(await notice.getAttribute('data-kind'), 'removed');
  assertNoProblems(page);
  await page.context().close();
});
