// Service accounts (`/service-accounts`): owners of keys that no identity
// system removes. A paged list, "Create service account" (name and
// description), and delete after a confirmation saying how many of its keys
// that revokes. Also the names the overview and the Transfer dialog show for
// `sa_…` owners.

import * as api from './api.js';
import { exactTime, plural, shortTime } from './format.js';
import { ListView } from './list.js';
import {
  announce, clearFieldErrors, h, showFieldErrors, showFormError, trapFocus,
} from './ui.js';

const DEFAULTS = { page: '1', per_page: '25' };
const FIELD_LABELS = { name: 'Name', description: 'Description' };

/** `sa_…`: a service account's id (anything else names a user). */
export const isServiceAccount = (owner) => typeof owner === 'string' && owner.startsWith('sa_');

// ---------------------------------------------------------------------------
// Every live service account, for names and choices (at most 2,000 asked).

const ALL_PAGES = 20;
let all = null;

/** The live service accounts, newest first; asked once until something changes. */
export function allAccounts() {
  if (all) return all;
  const asked = (async () => {
    const accounts = [];
    for (let page = 1; page <= ALL_PAGES; page += 1) {
      const answer = await api.listServiceAccounts({ page, per_page: 100 });
      accounts.push(...answer.items);
      if (page >= answer.total_pages) break;
    }
    return accounts;
  })();
  // A failure is not kept: the next call asks again.
  asked.catch(() => {
    if (all === asked) all = null;
  });
  all = asked;
  return asked;
}

/** Forget the accounts asked before (one was created or deleted). */
export function forgetAccounts() {
  all = null;
}

/**
 * An owner as the tables show it: a user id as it is; a service account by
 * its name (filled in once known) with its id on hover and a tag.
 */
export function ownerElement(owner) {
  if (!isServiceAccount(owner)) return owner;
  const name = h('span', { class: 'owner-name' }, owner);
  const el = h('span', { class: 'owner-account', title: owner },
    name, ' ', h('span', { class: 'tag' }, 'service account'));
  allAccounts().then((accounts) => {
    const account = accounts.find((a) => a.id === owner);
    if (account) name.textContent = account.name;
    else el.lastChild.textContent = 'deleted service account';
  }, () => {});
  return el;
}

// ---------------------------------------------------------------------------
// The page

let view;
let dom;

export function mount() {
  const section = document.getElementById('accounts-view');
  dom = {
    section,
    create: document.getElementById('account-create-open'),
    createDialog: document.getElementById('account-create-dialog'),
    createForm: document.getElementById('account-create-form'),
    deleteDialog: document.getElementById('account-delete-dialog'),
    deleteConfirm: document.getElementById('account-delete-confirm'),
    deleteKeys: document.getElementById('account-delete-keys'),
  };
  view = new ListView({
    section,
    defaults: DEFAULTS,
    filters: [],
    fetch: (state, signal) => api.listServiceAccounts(state, signal),
    rows: (items) => items.map(accountRow),
    empty: () => ({
      title: 'No service accounts yet',
      text: 'Create one for automations that must keep working when people leave, then transfer their keys to it.',
      actions: [{ label: 'Create a service account', primary: true, onClick: openCreate }],
    }),
    noun: 'service accounts',
  });
  mountCreate();
  mountDelete();
}

export const show = () => view.show();
export const hide = () => view.hide();

function accountRow(account) {
  const keysLink = `/?${new URLSearchParams({ owner: account.id })}`;
  return h('tr', { 'data-account-id': account.id },
    h('th', { scope: 'row', class: 'name-cell' },
      h('span', { class: 'key-name' }, account.name),
      h('code', { class: 'key-hint' }, account.id),
      account.description ? h('span', { class: 'key-description' }, account.description) : null),
    h('td', { class: 'created-by' }, account.created_by),
    h('td', { class: 'created-at' },
      h('time', { datetime: account.created_at, title: exactTime(account.created_at) }, shortTime(account.created_at))),
    h('td', { class: 'actions-col' },
      h('a', {
        href: keysLink, 'data-nav': '', class: 'button small', 'aria-label': `Keys of ${account.name}`,
      }, 'Keys'),
      ' ',
      h('button', {
        type: 'button',
        class: 'button small danger-outline',
        'aria-label': `Delete ${account.name}`,
        onclick: () => openDelete(account),
      }, 'Delete')));
}

// ---------------------------------------------------------------------------
// Create

function mountCreate() {
  const { createDialog: dialog, createForm: form } = dom;
  trapFocus(dialog);
  dom.create.addEventListener('click', openCreate);
  dialog.querySelector('[data-close]').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    form.reset();
    clearFieldErrors(form);
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const body = { name: form.elements.namedItem('name').value };
    const description = form.elements.namedItem('description').value.trim();
    if (description) body.description = description;
    const submit = form.querySelector('[type=submit]');
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const created = await api.createServiceAccount(body);
      forgetAccounts();
      dialog.close();
      announce(`Service account “${created.name}” created.`);
      await view.load();
      dom.section.querySelector(`tr[data-account-id="${CSS.escape(created.id)}"] a`)?.focus();
    } catch (error) {
      if (error.endsSession) {
        dialog.close();
        return;
      }
      const errors = error.code === 'name_taken'
        ? [{ field: 'name', message: 'is already used by another service account. Choose another name.' }]
        : error.errors;
      const first = errors.length ? showFieldErrors(form, errors, FIELD_LABELS) : null;
      if (first) first.focus();
      else showFormError(form, error.message);
    } finally {
      submit.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });
}

function openCreate() {
  const { createDialog: dialog, createForm: form } = dom;
  form.reset();
  clearFieldErrors(form);
  dialog.showModal();
  form.elements.namedItem('name').focus();
}

// ---------------------------------------------------------------------------
// Delete, after a confirmation saying its keys will be revoked

let accountToDelete = null;

function mountDelete() {
  const { deleteDialog: dialog, deleteConfirm: confirm } = dom;
  trapFocus(dialog);
  dialog.querySelector('[data-close]').addEventListener('click', () => dialog.close());
  confirm.addEventListener('click', async () => {
    const account = accountToDelete;
    if (!account) return;
    confirm.disabled = true;
    try {
      await api.deleteServiceAccount(account.id);
      announce(`Service account “${account.name}” deleted; its keys are revoked.`);
    } catch (error) {
      if (!error.endsSession && error.code !== 'service_account_not_found') {
        showFormError(dialog, error.message);
        return;
      }
      if (!error.endsSession) announce(`Service account “${account.name}” was already deleted.`);
    } finally {
      confirm.disabled = false;
    }
    dialog.close();
    accountToDelete = null;
    forgetAccounts();
    await view.load();
    (view.wrap.hidden ? dom.create : view.wrap).focus();
  });
}

async function openDelete(account) {
  const { deleteDialog: dialog } = dom;
  accountToDelete = account;
  dialog.querySelector('[data-account-name]').textContent = account.name;
  const error = dialog.querySelector('[data-form-error]');
  error.hidden = true;
  error.textContent = '';
  dom.deleteKeys.textContent = 'Every key it owns is revoked at once: automations using them stop working.';
  dialog.showModal();
  // How many: its keys that work now.
  try {
    const { total } = await api.listKeys({ owner: account.id, status: 'active', per_page: 1 });
    if (accountToDelete !== account) return;
    dom.deleteKeys.textContent = total === 0
      ? 'It owns no active keys: nothing stops working.'
      : `Its ${plural(total, 'active key')} ${total === 1 ? 'is' : 'are'} revoked at once: automations using ${total === 1 ? 'it' : 'them'} stop working.`;
  } catch {
    // The general sentence stays.
  }
}
