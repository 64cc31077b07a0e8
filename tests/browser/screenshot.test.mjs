// The README's picture of the overview: real keys made through the API, used
// by "automations", one user removed by the identity webhook, shown at
// 1280 px. Written to target/browser/ on every run and to
// docs/console-overview.png when that is missing or KEYGATE_UPDATE_SCREENSHOT=1
// (so a test run does not dirty the work tree with new timestamps each time).

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  ROOT, assertNoProblems, eventually, launchBrowser, managementApi, newPage, signIn, startKeygate,
} from './support.mjs';

let keygate;
let browser;

before(async () => {
  keygate = await startKeygate();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await keygate?.stop();
});

test('a screenshot of the overview with real data, 1280 px wide', async () => {
  const api = managementApi(keygate.url);
  const inThirtyDays = new Date(Date.now() + 30 * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const keys = [
    ['legacy-ftp-bridge', 'dana@example.com', { description: 'Old supplier FTP relay' }],
    ['shop-catalog-import', 'floris@example.com', { description: 'Imports the product catalogue every hour' }],
    ['reports-daily', 'ana@example.com', {}],
    ['nightly-backup', 'bram@example.com', { description: 'Database dumps to cold storage' }],
    ['ci-deploy', 'operator@example.com', { description: 'Deploy job in CI', expires_at: inThirtyDays }],
    ['crm-webhook', 'dana@example.com', { description: 'Contacts from the CRM' }],
    ['invoice-export', 'ana@example.com', { description: 'Pushes invoices to accounting' }],
    ['orders-sync', 'floris@example.com', { description: 'Nightly order export to the ERP' }],
  ];
  const made = {};
  for (const [name, user, extra] of keys) made[name] = await api.create(name, { user, ...extra });
  for (const name of ['orders-sync', 'invoice-export', 'reports-daily', 'shop-catalog-import', 'crm-webhook']) {
    assert.equal(await api.verify(made[name].secret, { method: 'POST', path: '/orders' }), 200);
  }
  assert.equal((await api.removeUser('dana@example.com')).body.revoked_keys, 2);

  const page = await newPage(browser, { width: 1280, height: 760 });
  await signIn(page, keygate.url);
  await eventually(async () => assert.equal(await page.locator('#keys-body tr').count(), keys.length));
  await page.locator('#keys-body .badge', { hasText: 'Revoked' }).first().waitFor();
  await page.locator('#keys-body .status-note', { hasText: 'Expires in 30 days' }).waitFor();

  const png = await page.screenshot({ fullPage: true });
  assert.equal(png.readUInt32BE(16), 1280, 'PNG width');
  mkdirSync(join(ROOT, 'target/browser'), { recursive: true });
  writeFileSync(join(ROOT, 'target/browser/console-overview.png'), png);
  const docs = join(ROOT, 'docs/console-overview.png');
  if (!existsSync(docs) || process.env.KEYGATE_UPDATE_SCREENSHOT === '1') writeFileSync(docs, png);
  assertNoProblems(page);
});
