// Hand-over in the console: the Owner filter names a colleague who is leaving,
// "Move all N active keys to…" moves every active key of theirs to a service
// account, one transfer at a time; the automations keep working through the
// colleague's removal, and the audit trail has one `key.transferred` per key
// by the person who moved them. Keys that cannot be moved are listed with the
// API's reason; a failure that would hit every key stops the run, and running
// it again moves only what is still theirs.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  OPERATOR, ROOT, assertNoProblems, eventually, launchBrowser, loaded, managementApi, newPage, query, signIn,
  startKeygate,
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

/** For looking at: target/browser/console-<name>.png. */
async function picture(page, name) {
  mkdirSync(join(ROOT, 'target/browser'), { recursive: true });
  await page.screenshot({ path: join(ROOT, `target/browser/console-${name}.png`) });
}

async function createAccount(name) {
  const { status, body } = await api.call('POST', '/api/service-accounts', { body: { name } });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

/** What verify answers for a secret: the status and, when valid, whom it acts as. */
async function verifyAs(secret) {
  const response = await fetch(`${keygate.url}/api/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key: secret, method: 'POST', path: '/orders' }),
  });
  const body = await response.json();
  return { status: response.status, user: body.user_id ?? null };
}

/** Types `user` into the overview's Owner filter; resolves once the notice offers the hand-over. */
async function filterByOwner(page, user) {
  await page.getByRole('search', { name: 'Filter API keys' }).getByLabel('Owner', { exact: true }).fill(user);
  await loaded(page);
}

const notice = (page) => page.locator('#keys-owner-notice');
const focused = (page) => page.evaluate(() => {
  const el = document.activeElement;
  return el.id || el.getAttribute('aria-label') || el.textContent.trim();
});

/** Records every text the dialog's live status shows (a MutationObserver in the page). */
const recordStatus = (page) => page.evaluate(() => {
  window.statusSeen = [];
  const status = document.getElementById('handover-status');
  new MutationObserver(() => window.statusSeen.push(status.textContent))
    .observe(status, { childList: true, characterData: true, subtree: true });
});

test('Move all: every active key of a leaving user to a service account; they keep working through the removal; one audit entry per key', async () => {
  const leaver = 'leaver@example.com';
  const made = [];
  for (const name of ['leaver-orders', 'leaver-billing', 'leaver-backup']) made.push(await api.create(name, { user: leaver }));
  assert.equal(await api.verify(made[0].secret), 200);
  const bystander = await api.create('bystander-key', { user: 'stays@example.com' });
  const robot = await createAccount('warehouse-robot');

  const page = await newPage(browser);
  await signIn(page, keygate.url);
  // Typed in another case: user ids match in any case.
  await filterByOwner(page, 'Leaver@Example.com');
  await eventually(async () => assert.equal(await notice(page).locator('.notice-text').textContent(),
    'If Leaver@Example.com is removed, 3 active keys are revoked — 1 key used in the last 30 days stops working.'));
  await notice(page).getByRole('button', { name: 'Move all 3 active keys to…' }).click();

  const dialog = page.getByRole('dialog', { name: 'Move all active keys of Leaver@Example.com' });
  await dialog.waitFor();
  assert.deepEqual(await page.evaluate(() => [document.activeElement.name, document.activeElement.value]), ['kind', 'account'],
    'focus starts on the choice of owner');
  await dialog.getByText('3 active keys act as Leaver@Example.com:').waitFor();
  const listed = dialog.getByRole('region', { name: '3 active keys act as Leaver@Example.com:' });
  assert.deepEqual(await listed.locator('.key-name').allTextContents(), ['leaver-backup', 'leaver-billing', 'leaver-orders']);
  const account = dialog.getByLabel('Service account', { exact: true });
  await eventually(async () => assert.ok((await account.locator('option').allTextContents()).includes('warehouse-robot')));
  await picture(page, 'handover-form');

  // Nothing chosen: said at the field; the same user: refused before anything moves.
  await dialog.getByRole('button', { name: 'Move 3 keys' }).click();
  await dialog.getByText('Choose a service account.').waitFor();
  assert.equal(await account.getAttribute('aria-invalid'), 'true');
  await dialog.getByLabel('A user').check();
  await dialog.getByLabel('User id').fill('LEAVER@example.com');
  await dialog.getByRole('button', { name: 'Move 3 keys' }).click();
  await dialog.getByText('The keys already act as Leaver@Example.com: choose another owner.').waitFor();
  assert.equal(await focused(page), 'handover-user');

  await dialog.getByLabel('A service account').check();
  await account.selectOption({ label: 'warehouse-robot' });
  await recordStatus(page);
  await dialog.getByRole('button', { name: 'Move 3 keys' }).click();

  const done = page.getByRole('dialog', { name: 'Keys of Leaver@Example.com moved' });
  await done.waitFor();
  const status = done.getByRole('status');
  await eventually(async () => assert.equal(await status.textContent(),
    'Moved 3 of 3 keys to the service account warehouse-robot. The secrets did not change: the automations '
    + 'using them keep working, now as the service account warehouse-robot.'));
  const seen = await page.evaluate(() => window.statusSeen);
  for (const step of ['Moved 0 of 3…', 'Moved 1 of 3…', 'Moved 2 of 3…']) assert.ok(seen.includes(step), `${step} in ${JSON.stringify(seen)}`);
  assert.equal(await done.locator('progress').evaluate((p) => [p.value, p.max].join('/')), '3/3');
  assert.ok(await done.locator('#handover-failed').isHidden());
  assert.ok(await done.getByRole('button', { name: 'Move the rest' }).isHidden());
  assert.equal(await focused(page), 'handover-done');
  await picture(page, 'handover-done');

  // Behind it: no key of theirs is left, and the warning says so.
  await eventually(async () => assert.equal(await notice(page).locator('.notice-text').textContent(),
    'Leaver@Example.com owns no active keys: removing them would break no automation.'));
  await page.locator('#keys-state', { hasText: 'No API keys match these filters' }).waitFor();
  await done.getByRole('button', { name: 'Done' }).click();
  await done.waitFor({ state: 'hidden' });
  await eventually(async () => assert.equal(await focused(page), 'keys-owner-notice'));

  // Every secret verifies, as the service account; the bystander's key stayed where it was.
  for (const k of made) assert.deepEqual(await verifyAs(k.secret), { status: 200, user: robot.id });
  assert.equal((await api.call('GET', `/api/keys/${bystander.id}`)).body.owner, 'stays@example.com');

  // The colleague leaves: nothing of theirs is revoked, the automations keep working.
  const removal = await api.removeUser(leaver);
  assert.equal(removal.status, 200);
  assert.equal(removal.body.revoked_keys, 0);
  for (const k of made) assert.deepEqual(await verifyAs(k.secret), { status: 200, user: robot.id });
  for (const k of made) assert.equal((await api.call('GET', `/api/keys/${k.id}`)).body.status, 'active');

  // Who moved what: one entry per key, by the operator, from the leaver to the robot.
  const { items } = await api.audit('action=key.transferred&per_page=100');
  const entries = items.filter((e) => made.some((k) => k.id === e.key_id));
  assert.equal(entries.length, 3);
  assert.deepEqual(entries.map((e) => e.key_id).sort(), made.map((k) => k.id).sort());
  for (const e of entries) {
    assert.equal(e.user, OPERATOR);
    assert.deepEqual([e.details.from, e.details.to], [leaver, robot.id]);
    assert.equal(e.details.auth, 'admin_token');
  }
  assertNoProblems(page);
  await page.context().close();
});

test('Move all: a key deleted meanwhile is listed with the API\'s reason, one given away meanwhile is left alone, a lost connection stops the run and "Move the rest" finishes it', async () => {
  const mover = 'mover@example.com';
  const keys = {};
  for (const name of ['mover-a', 'mover-b', 'mover-c', 'mover-d']) keys[name] = await api.create(name, { user: mover });
  const robot = await createAccount('archive-robot');

  const page = await newPage(browser);
  await signIn(page, keygate.url);
  await filterByOwner(page, mover);
  await notice(page).getByRole('button', { name: 'Move all 4 active keys to…' }).click();
  const dialog = page.getByRole('dialog', { name: `Move all active keys of ${mover}` });
  await dialog.getByText(`4 active keys act as ${mover}:`).waitFor();
  await eventually(async () => assert.ok(
    (await dialog.getByLabel('Service account', { exact: true }).locator('option').allTextContents()).includes('archive-robot')));
  await dialog.getByLabel('Service account', { exact: true }).selectOption({ label: 'archive-robot' });

  // While the dialog is open: one key is deleted, another given to someone else.
  assert.equal((await api.call('DELETE', `/api/keys/${keys['mover-b'].id}`)).status, 204);
  assert.equal((await api.call('POST', `/api/keys/${keys['mover-c'].id}/transfer`, { body: { owner: 'heir@example.com' } })).status, 200);
  // And the connection drops when the last one is moved.
  const lastTransfer = `**/api/keys/${keys['mover-d'].id}/transfer`;
  await page.route(lastTransfer, (route) => route.abort('internetdisconnected'));

  await dialog.getByRole('button', { name: 'Move 4 keys' }).click();
  const stopped = page.getByRole('dialog', { name: 'Moving stopped' });
  await stopped.waitFor();
  await eventually(async () => assert.equal(await stopped.getByRole('status').textContent(),
    'Stopped after moving 1 of 4 keys to the service account archive-robot: keygate could not be reached. '
    + 'Check the connection and try again.'));
  const failed = stopped.locator('#handover-failed');
  assert.equal(await failed.locator('p').textContent(), '1 key could not be moved:');
  assert.deepEqual(await failed.locator('li').allTextContents(),
    [`mover-b ${keys['mover-b'].hint}No key with this id.`]);
  const skipped = stopped.locator('#handover-skipped');
  assert.equal(await skipped.locator('p').textContent(), `1 key was no longer ${mover}'s, so it was left as it was:`);
  assert.deepEqual(await skipped.locator('li').allTextContents(),
    [`mover-c ${keys['mover-c'].hint}Now owned by heir@example.com.`]);
  await stopped.getByText(`Run it again to move the rest: it moves only the keys ${mover} still owns.`).waitFor();
  assert.equal(await focused(page), 'handover-rest');
  await picture(page, 'handover-stopped');
  // Behind it, the warning counts what is left.
  await eventually(async () => assert.equal(await notice(page).locator('.notice-text').textContent(),
    `If ${mover} is removed, 1 active key is revoked — none was used in the last 30 days.`));
  assert.equal((await api.call('GET', `/api/keys/${keys['mover-a'].id}`)).body.owner, robot.id);
  assert.equal((await api.call('GET', `/api/keys/${keys['mover-d'].id}`)).body.owner, mover);

  // Back online: the second run moves only what is still theirs.
  await page.unroute(lastTransfer);
  await stopped.getByRole('button', { name: 'Move the rest' }).click();
  const finished = page.getByRole('dialog', { name: `Keys of ${mover} moved` });
  await eventually(async () => assert.equal(await finished.getByRole('status').textContent(),
    'Moved 1 of 1 key to the service account archive-robot. The secrets did not change: the automations '
    + 'using it keep working, now as the service account archive-robot.'));
  assert.ok(await finished.locator('#handover-failed').isHidden());
  assert.equal((await api.call('GET', `/api/keys/${keys['mover-d'].id}`)).body.owner, robot.id);
  assert.equal((await api.call('GET', `/api/keys/${keys['mover-c'].id}`)).body.owner, 'heir@example.com');
  for (const name of ['mover-a', 'mover-d']) assert.deepEqual(await verifyAs(keys[name].secret), { status: 200, user: robot.id });
  await eventually(async () => assert.equal(await notice(page).locator('.notice-text').textContent(),
    `${mover} owns no active keys: removing them would break no automation.`));

  // The moves, in the audit trail.
  await finished.getByRole('link', { name: 'See the moves in the audit trail' }).click();
  await finished.waitFor({ state: 'hidden' });
  await page.getByRole('heading', { name: 'Audit trail', level: 1 }).waitFor();
  await loaded(page, '#audit-table');
  assert.deepEqual(query(page), { user: OPERATOR, action: 'key.transferred' });
  const rows = page.locator('#audit-body tr', { hasText: `From ${mover} to ${robot.id}` });
  await eventually(async () => assert.deepEqual((await rows.locator('.key-name').allTextContents()).sort(), ['mover-a', 'mover-d']));
  const transfers = (await api.audit(`action=key.transferred&user=${encodeURIComponent(OPERATOR)}&per_page=100`)).items
    .filter((e) => e.details.from === mover && e.details.to === robot.id);
  assert.deepEqual(transfers.map((e) => e.key_id).sort(), [keys['mover-a'].id, keys['mover-d'].id].sort());
  assert.ok(transfers.every((e) => e.details.to === robot.id));

  // The aborted request is the only thing Chromium complained about.
  page.problems = page.problems.filter((p) => !/net::ERR_INTERNET_DISCONNECTED/.test(p));
  assertNoProblems(page);
  await page.context().close();
});

test('Move all: a removed user as the new owner is refused at the field; the leaver removed meanwhile: each key listed with the API\'s reason', async () => {
  const late = 'late@example.com';
  const keys = [];
  for (const name of ['late-one', 'late-two']) keys.push(await api.create(name, { user: late }));
  await createAccount('late-robot');
  const gone = 'gone-heir@example.com';
  assert.equal((await api.removeUser(gone)).status, 200);

  const page = await newPage(browser);
  await signIn(page, keygate.url);
  await filterByOwner(page, late);
  await notice(page).getByRole('button', { name: 'Move all 2 active keys to…' }).click();
  const dialog = page.getByRole('dialog', { name: `Move all active keys of ${late}` });
  await dialog.getByText(`2 active keys act as ${late}:`).waitFor();

  // To a removed user: the API's 422 at the field, nothing moved, the form still there.
  await dialog.getByLabel('A user').check();
  await dialog.getByLabel('User id').fill('Gone-Heir@example.com');
  await dialog.getByRole('button', { name: 'Move 2 keys' }).click();
  await dialog.getByText('This user has been removed and cannot own keys.').waitFor();
  assert.equal(await dialog.getByLabel('User id').getAttribute('aria-invalid'), 'true');
  assert.equal(await focused(page), 'handover-user');
  for (const k of keys) assert.equal((await api.call('GET', `/api/keys/${k.id}`)).body.owner, late);

  // The leaver is removed before the keys are moved: every key refused with the API's reason.
  assert.equal((await api.removeUser(late)).body.revoked_keys, 2);
  await dialog.getByLabel('A service account').check();
  await dialog.getByLabel('Service account', { exact: true }).selectOption({ label: 'late-robot' });
  await dialog.getByRole('button', { name: 'Move 2 keys' }).click();
  const result = page.getByRole('dialog', { name: `No keys of ${late} moved` });
  await eventually(async () => assert.equal(await result.getByRole('status').textContent(),
    'Moved 0 of 2 keys to the service account late-robot.'));
  assert.equal(await result.locator('#handover-failed p').textContent(), '2 keys could not be moved:');
  const reason = 'The key was revoked (its owner was removed or deleted) and cannot be changed.';
  assert.deepEqual(await result.locator('#handover-failed li').allTextContents(),
    [`late-one ${keys[0].hint}${reason}`, `late-two ${keys[1].hint}${reason}`]);
  assert.ok(await result.getByRole('link', { name: 'See the moves in the audit trail' }).isHidden());
  // Escape closes it; the notice now says how the leaver was removed.
  await page.keyboard.press('Escape');
  await result.waitFor({ state: 'hidden' });
  await eventually(async () => assert.match(await notice(page).locator('.notice-text').textContent(),
    /^late@example.com was removed through the identity webhook on .+ — their 2 keys were revoked\.$/));
  assert.equal(await notice(page).getByRole('button').count(), 0);
  assertNoProblems(page);
  await page.context().close();
});

test('Move all: Stop (or Escape) while moving stops after the current key; Cancel and Escape before it move nothing and return focus', async () => {
  const halt = 'halt@example.com';
  const keys = [];
  for (const name of ['halt-1', 'halt-2', 'halt-3']) keys.push(await api.create(name, { user: halt }));
  const robot = await createAccount('halt-robot');

  const page = await newPage(browser);
  await signIn(page, keygate.url);
  await filterByOwner(page, halt);
  const open = notice(page).getByRole('button', { name: 'Move all 3 active keys to…' });
  await open.click();
  const dialog = page.getByRole('dialog', { name: `Move all active keys of ${halt}` });
  await dialog.getByText(`3 active keys act as ${halt}:`).waitFor();
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  await eventually(async () => assert.equal(await focused(page), 'Move all 3 active keys to…'));
  await open.click();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await eventually(async () => assert.equal(await focused(page), 'Move all 3 active keys to…'));
  for (const k of keys) assert.equal((await api.call('GET', `/api/keys/${k.id}`)).body.owner, halt);

  // The first transfer is held until the test lets it go, so Escape lands mid-run.
  let release;
  const held = new Promise((ok) => { release = ok; });
  let arrived;
  const arriving = new Promise((ok) => { arrived = ok; });
  await page.route('**/api/keys/*/transfer', async (route) => {
    arrived();
    await held;
    await route.continue();
  });
  await open.click();
  await dialog.getByText(`3 active keys act as ${halt}:`).waitFor();
  await eventually(async () => assert.ok(
    (await dialog.getByLabel('Service account', { exact: true }).locator('option').allTextContents()).includes('halt-robot')));
  await dialog.getByLabel('Service account', { exact: true }).selectOption({ label: 'halt-robot' });
  await dialog.getByRole('button', { name: 'Move 3 keys' }).click();
  const running = page.getByRole('dialog', { name: `Moving the keys of ${halt}` });
  await running.waitFor();
  await arriving;
  assert.equal(await focused(page), 'handover-stop');
  assert.equal(await running.getByRole('status').textContent(), 'Moved 0 of 3…');
  await page.keyboard.press('Escape');
  await running.getByRole('button', { name: 'Stopping after this key…' }).waitFor();
  assert.ok(await running.isVisible(), 'Escape while moving asks to stop; the dialog stays');
  release();
  const stopped = page.getByRole('dialog', { name: 'Moving stopped' });
  await eventually(async () => assert.equal(await stopped.getByRole('status').textContent(),
    'Stopped as you asked, after moving 1 of 3 keys to the service account halt-robot.'));
  await stopped.getByText(`Run it again to move the rest: it moves only the keys ${halt} still owns.`).waitFor();
  assert.deepEqual(await Promise.all(keys.map(async (k) => (await api.call('GET', `/api/keys/${k.id}`)).body.owner)),
    [robot.id, halt, halt]);
  await page.unroute('**/api/keys/*/transfer');
  await stopped.getByRole('button', { name: 'Done' }).click();
  await stopped.waitFor({ state: 'hidden' });
  await eventually(async () => assert.equal(await focused(page), 'Move all 2 active keys to…'));
  assertNoProblems(page);
  await page.context().close();
});
