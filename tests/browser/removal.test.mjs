// A removed user in the console: filtering the overview by them (in any
// case) says by which channel and when they were removed and how many keys
// that revoked, and their keys say "Revoked …: owner removed through …".
// Removed here through the signed webhook and through SCIM provisioning.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  ROOT, SCIM_TOKEN, assertNoProblems, eventually, launchBrowser, loaded, managementApi, newPage, query,
  scimClient, signIn, startKeygate,
} from './support.mjs';

let keygate;
let api;
let scim;
let browser;

before(async () => {
  keygate = await startKeygate({ variables: { scim_token: SCIM_TOKEN } });
  api = managementApi(keygate.url);
  scim = scimClient(keygate.url);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await keygate?.stop();
});

/** The filter naming the user whose keys the overview shows. */
const ownerFilter = (page) => page.getByRole('search', { name: 'Filter API keys' }).getByLabel('Owner', { exact: true });
const notice = (page) => page.locator('#keys-owner-notice');
const row = (page, name) => page.locator('#keys-body tr', { has: page.locator('.key-name', { hasText: new RegExp(`^${name}$`) }) });

/** "1 Dec 2026, 03:00 UTC": how the page (in UTC, en-US) states a moment in a sentence. */
const zoned = (iso) => new Intl.DateTimeFormat('en-GB', {
  day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  timeZoneName: 'short', timeZone: 'UTC',
}).format(new Date(iso));

/** The one `user.removed` entry of `user`, from the API. */
async function removalEntry(user) {
  const { items } = await api.audit(`action=user.removed&user=${encodeURIComponent(user)}`);
  assert.equal(items.length, 1, JSON.stringify(items));
  return items[0];
}

/** Types `user` into the owner filter and waits for the overview to show their keys. */
async function filterBy(page, user, names) {
  await ownerFilter(page).fill(user);
  await eventually(async () => {
    assert.equal(query(page).owner, user);
    const shown = await page.locator('#keys-body .key-name').allTextContents();
    assert.deepEqual(shown.sort(), [...names].sort());
  });
  await loaded(page);
}

test('removed by the identity webhook: the owner filter, typed in upper case, says how and when; the keys say so too', async () => {
  const leaver = 'leaver@example.com';
  for (const name of ['crm-sync', 'crm-backfill']) await api.create(name, { user: leaver });
  await api.create('orders-sync');
  const removal = await api.removeUser(leaver);
  assert.deepEqual([removal.status, removal.body.revoked_keys], [200, 2]);
  const entry = await removalEntry(leaver);
  assert.equal(entry.details.channel, 'webhook');

  const page = await newPage(browser);
  await signIn(page, keygate.url);
  await row(page, 'orders-sync').waitFor();
  assert.equal(await notice(page).isHidden(), true, 'no notice without a filter');

  await filterBy(page, 'LEAVER@EXAMPLE.COM', ['crm-sync', 'crm-backfill']);
  await eventually(async () => assert.equal(await notice(page).locator('.notice-text').textContent(),
    `leaver@example.com was removed through the identity webhook on ${zoned(entry.at)} — their 2 keys were revoked.`));
  assert.equal(await notice(page).getAttribute('role'), 'status');
  const when = notice(page).locator('time');
  assert.equal(await when.getAttribute('datetime'), entry.at);
  assert.match(await when.getAttribute('title'), /UTC$/);
  assert.ok(await notice(page).isVisible());

  for (const name of ['crm-sync', 'crm-backfill']) {
    const revoked = row(page, name);
    await revoked.locator('.badge', { hasText: 'Revoked' }).waitFor();
    await eventually(async () => assert.equal(await revoked.locator('.status-note').textContent(),
      'Revoked just now: owner removed through the identity webhook'));
    assert.equal(await revoked.locator('.status-note time').getAttribute('datetime'), (await api.list(`name=${name}`)).items[0].revoked_at);
  }
  mkdirSync(join(ROOT, 'target/browser'), { recursive: true });
  await page.screenshot({ path: join(ROOT, 'target/browser/console-removed-user.png') });

  // A user who was not removed: what removing them would break, instead.
  await filterBy(page, 'OPERATOR@example.com', ['orders-sync']);
  await eventually(async () => assert.equal(await notice(page).locator('.notice-text').textContent(),
    'If OPERATOR@example.com is removed, 1 active key is revoked — none was used in the last 30 days.'));
  assert.equal(await notice(page).getAttribute('data-kind'), 'impact');

  // Back brings the removed user's view, notice and all.
  await page.goBack();
  await eventually(async () => assert.match(await notice(page).textContent(), /^leaver@example.com was removed through the identity webhook/));

  // The notice leads to the user's audit trail, which names the channel too.
  await notice(page).getByRole('link', { name: "See leaver@example.com's audit trail" }).click();
  await page.getByRole('heading', { name: 'Audit trail' }).waitFor();
  assert.deepEqual(query(page), { user: leaver });
  await page.locator('#audit-body tr[data-action="user.removed"] .details',
    { hasText: 'Through the identity webhook: 2 keys revoked' }).waitFor();
  assertNoProblems(page);
  await page.context().close();
});

test('removed through SCIM (Entra ID\'s PATCH active "False"): the notice says SCIM provisioning, the keys too', async () => {
  const floris = 'floris@example.com';
  const keys = [];
  for (const name of ['erp-export', 'erp-import', 'erp-audit']) keys.push(await api.create(name, { user: floris }));
  const provisioned = await scim.provision(floris);
  const page = await newPage(browser);
  await signIn(page, keygate.url);

  // Before the removal: the keys are active, and the notice says what removing floris would break.
  await filterBy(page, 'FLORIS@EXAMPLE.COM', ['erp-export', 'erp-import', 'erp-audit']);
  await eventually(async () => assert.equal(await notice(page).locator('.notice-text').textContent(),
    'If FLORIS@EXAMPLE.COM is removed, 3 active keys are revoked — none was used in the last 30 days.'));
  await row(page, 'erp-export').locator('.badge', { hasText: 'Active' }).waitFor();

  const deactivated = await scim.deactivate(provisioned.id);
  assert.equal(deactivated.status, 200, JSON.stringify(deactivated.body));
  const entry = await removalEntry(floris);
  assert.deepEqual([entry.user, entry.details.channel, entry.details.revoked_keys], [floris, 'scim', 3]);

  await page.reload();
  await eventually(async () => assert.equal(await notice(page).locator('.notice-text').textContent(),
    `floris@example.com was removed through SCIM provisioning on ${zoned(entry.at)} — their 3 keys were revoked.`));
  for (const name of ['erp-export', 'erp-import', 'erp-audit']) {
    await eventually(async () => assert.equal(await row(page, name).locator('.status-note').textContent(),
      'Revoked just now: owner removed through SCIM provisioning'));
  }
  for (const key of keys) assert.equal(await api.verify(key.secret), 401);
  assertNoProblems(page);
  await page.context().close();
});

test('revoked keys in the unfiltered overview ask each owner\'s trail once', async () => {
  const page = await newPage(browser);
  const asked = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname === '/api/audit') asked.push(url.searchParams.get('user'));
  });
  await signIn(page, keygate.url, { path: '/?status=revoked' });
  await eventually(async () => {
    const notes = (await page.locator('#keys-body .status-note').allTextContents())
      .map((note) => note.replace(/^Revoked (just now|\d+ minutes? ago):/, 'Revoked …:'));
    assert.equal(notes.length, 5);
    assert.deepEqual(new Set(notes), new Set([
      'Revoked …: owner removed through the identity webhook',
      'Revoked …: owner removed through SCIM provisioning',
    ]));
  });
  assert.deepEqual(asked.sort(), ['floris@example.com', 'leaver@example.com']);
  // Another page of the same keys asks nothing more.
  await page.locator('#keys-pager').getByLabel('Rows per page').selectOption('10');
  await loaded(page);
  await eventually(async () => assert.equal((await page.locator('#keys-body .status-note').allTextContents()).length, 5));
  assert.equal(asked.length, 2, asked.join());
  assertNoProblems(page);
  await page.context().close();
});
