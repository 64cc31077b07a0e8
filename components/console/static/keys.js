// The API-keys overview: sortable, filterable, paginated table; above it,
// what the Owner filter's user means (removed: how and when; else what
// removing them would break, and "Move all N active keys to…", in
// handover.js); the Actions menu (Edit…, Transfer… and Roll…
// are in lifecycle.js); the "Create a new API Key" dialog (secret shown
// once); delete with confirmation.

import { allAccounts, isServiceAccount, ownerElement } from './accounts.js';
import * as api from './api.js';
import * as handover from './handover.js';
import { exactTime, localToRfc3339, plural, shortTime } from './format.js';
import * as lifecycle from './lifecycle.js';
import { ListView } from './list.js';
import { channelName, removalNotice, removalOf } from './removals.js';
import {
  announce, clearFieldErrors, copySecret, h, relativeTimeElement, showFieldErrors, showFormError, trapFocus,
} from './ui.js';

const DEFAULTS = {
  sort: 'created_at',
  order: 'desc',
  name: '',
  owner: '',
  created_by: '',
  created_from: '',
  created_to: '',
  status: '',
  unused_since: '',
  page: '1',
  per_page: '25',
};
const FILTERS = ['name', 'owner', 'created_by', 'created_from', 'created_to', 'status', 'unused_since'];

/** How the API's field names read in messages: "Token name must not be empty". */
const FIELD_LABELS = { name: 'Token name', description: 'Description', expires_at: 'Expiry' };

/** Why a key was revoked, after "Revoked 3 minutes ago: ". */
const REASONS = { owner_removed: 'owner removed', owner_deleted: 'its service account was deleted' };

/** A Create dialog's input kept across a session that ended (sessionStorage). */
const DRAFT = 'keygate.create_draft';
const DRAFT_FIELDS = ['name', 'description', 'expires_at'];

let view;
let dom;

export function mount() {
  const section = document.getElementById('keys-view');
  dom = {
    section,
    create: document.getElementById('create-open'),
    menu: document.getElementById('actions-menu'),
    createDialog: document.getElementById('create-dialog'),
    createForm: document.getElementById('create-form'),
    createResult: document.getElementById('create-result'),
    restored: document.getElementById('create-restored'),
    secret: document.getElementById('secret-value'),
    secretLabel: document.getElementById('secret-label'),
    copy: document.getElementById('secret-copy'),
    copyStatus: document.getElementById('copy-status'),
    deleteDialog: document.getElementById('delete-dialog'),
    deleteConfirm: document.getElementById('delete-confirm'),
    ownerNotice: document.getElementById('keys-owner-notice'),
  };
  view = new ListView({
    section,
    defaults: DEFAULTS,
    filters: FILTERS,
    fetch: (state, signal) => {
      showOwnerNotice(state);
      return api.listKeys(state, signal);
    },
    rows: (items) => items.map(keyRow),
    empty: (filtered) => filtered
      ? {
          title: 'No API keys match these filters',
          text: 'Change or clear the filters to see more keys.',
          actions: [{ label: 'Clear filters', onClick: () => view.clearFilters() }],
        }
      : {
          title: 'No API keys yet',
          text: 'Create a key for each automation. A key acts as its owner: the user who created it, or a service account.',
          actions: [{ label: 'Create your first key', primary: true, onClick: openCreate }],
        },
    noun: 'API keys',
    // `?sort=name&order=desc`, never a bare `?sort=name` that reads as ascending.
    together: [['sort', 'order']],
  });

  // Sorting: a header's button sorts by it, ascending first, then toggles.
  for (const th of section.querySelectorAll('th[data-sort]')) {
    th.querySelector('button').addEventListener('click', () => {
      const column = th.dataset.sort;
      const { sort, order } = view.state;
      const next = sort === column && order === 'asc' ? 'desc' : 'asc';
      view.apply({ sort: column, order: next, page: '1' });
    });
  }
  const syncControls = view.syncControls.bind(view);
  view.syncControls = () => {
    syncControls();
    showSort();
  };

  mountMenu();
  mountCreate();
  mountDelete();
  lifecycle.mount({ changed: keyChanged, refocus: focusActions });
  handover.mount({ done: () => view.load(), refocus: focusNotice });
}

/**
 * After a hand-over (or its Cancel): focus on "Move all …" when it is still
 * offered, else on the notice saying what is left (the rows and the notice
 * redrawn first).
 */
async function focusNotice() {
  await view.settled();
  await noticeShown;
  if (view.section.hidden) return;
  const button = dom.ownerNotice.querySelector('[data-move-all]');
  if (button) button.focus();
  else if (dom.ownerNotice.childElementCount) dom.ownerNotice.focus();
  else (view.wrap.hidden ? dom.create : view.wrap).focus();
}

/** The Actions button of a key's row, when the row is on the page. */
const actionsButton = (id) => id
  && dom.section.querySelector(`tr[data-key-id="${CSS.escape(id)}"] .actions-button`);

async function focusActions(id) {
  // Rows being redrawn would take the focus with them.
  await view.settled();
  const button = actionsButton(id);
  if (button) button.focus();
  else (view.wrap.hidden ? dom.create : view.wrap).focus();
}

/** After an edit, transfer or roll: the rows again, focus on the key's Actions button. */
async function keyChanged(id, { focus = true } = {}) {
  await view.load();
  if (focus) focusActions(id);
}

export const show = () => view.show();
export const hide = () => {
  if (dom.menu.matches(':popover-open')) dom.menu.hidePopover();
  view.hide();
};

function showSort() {
  for (const th of dom.section.querySelectorAll('th[data-sort]')) {
    const active = th.dataset.sort === view.state.sort;
    th.setAttribute('aria-sort', active ? (view.state.order === 'asc' ? 'ascending' : 'descending') : 'none');
  }
}

// ---------------------------------------------------------------------------
// Rows

function keyRow(key) {
  return h('tr', { 'data-key-id': key.id, class: `status-${key.status}` },
    h('th', { scope: 'row', class: 'name-cell' },
      h('span', { class: 'key-name' }, key.name),
      h('code', { class: 'key-hint', title: 'The key ends with these characters' }, key.hint),
      key.description ? h('span', { class: 'key-description' }, key.description) : null),
    h('td', { class: 'owner' }, ownerElement(key.owner ?? key.created_by)),
    h('td', { class: 'created-by' }, key.created_by),
    h('td', { class: 'created-at' },
      h('time', { datetime: key.created_at, title: exactTime(key.created_at) }, shortTime(key.created_at))),
    h('td', { class: 'last-used' },
      key.last_used_at ? relativeTimeElement(key.last_used_at) : h('span', { class: 'never' }, 'Never')),
    h('td', { class: 'status' }, statusCell(key)),
    h('td', { class: 'actions-col' },
      h('button', {
        type: 'button',
        class: 'button small actions-button',
        popovertarget: 'actions-menu',
        'aria-haspopup': 'menu',
        'aria-expanded': 'false',
        'aria-label': `Actions for ${key.name}`,
        onclick: (event) => aimMenu(event, key),
      }, 'Actions', h('span', { class: 'caret', 'aria-hidden': 'true' }))));
}

function statusCell(key) {
  switch (key.status) {
    case 'revoked': {
      const reason = h('span', { class: 'revoked-reason' },
        REASONS[key.revoked_reason] ?? String(key.revoked_reason ?? 'no reason given').replaceAll('_', ' '));
      if (key.revoked_reason === 'owner_removed') sayChannel(reason, key.owner ?? key.created_by);
      return [
        h('span', { class: 'badge badge-revoked' }, 'Revoked'),
        h('span', { class: 'status-note' },
          'Revoked', key.revoked_at ? [' ', relativeTimeElement(key.revoked_at)] : null, ': ', reason),
      ];
    }
    case 'expired':
      return [
        h('span', { class: 'badge badge-expired' }, 'Expired'),
        key.expires_at ? h('span', { class: 'status-note' }, relativeTimeElement(key.expires_at)) : null,
      ];
    default:
      return [
        h('span', { class: 'badge badge-active' }, 'Active'),
        key.expires_at ? h('span', { class: 'status-note' }, 'Expires ', relativeTimeElement(key.expires_at)) : null,
      ];
  }
}

/**
 * "owner removed through SCIM provisioning", once the owner's `user.removed`
 * entry is known (asked once per user, then cached).
 */
function sayChannel(reason, owner) {
  if (!owner) return;
  removalOf(owner).then((entry) => {
    if (entry) reason.textContent = `owner removed through ${channelName(entry)}`;
  }, () => {});
}

// ---------------------------------------------------------------------------
// Above the table, when the Owner filter names a user: removed — by which
// channel and when, and how many keys that revoked; not removed — what
// removing them would break (GET /api/users/{id}).

/** The user the overview is filtered by, or ''. */
const filteredUser = (state) => state.owner;

let noticeFor = '';
let noticeRun = 0;
/** Settles once the latest notice asked for is on the page. */
let noticeShown = Promise.resolve();

function showOwnerNotice(state) {
  const user = filteredUser(state);
  const run = ++noticeRun;
  const same = user.toLowerCase() === noticeFor;
  noticeFor = user.toLowerCase();
  const show = (kind, content) => {
    if (run !== noticeRun) return;
    dom.ownerNotice.dataset.kind = kind;
    dom.ownerNotice.replaceChildren(...(content ?? []).filter(Boolean));
  };
  // Another user: say nothing until the answers are in.
  if (!same || !user) show('', []);
  // Service accounts are removed by no identity system.
  if (!user || isServiceAccount(user)) return;
  noticeShown = ownerNotice(user).then(([kind, content]) => show(kind, content), () => show('', []));
}

/** `[kind, content]`: 'removed' or 'impact', and the notice's paragraphs. */
async function ownerNotice(user) {
  let summary;
  try {
    summary = await api.userSummary(user);
  } catch (error) {
    if (error.endsSession) throw error;
    // A keygate without GET /api/users: the audit trail alone.
    return ['removed', await removalNotice(user)];
  }
  if (summary.removed_at) return ['removed', await removalNotice(user, summary)];
  return ['impact', impactNotice(user, summary)];
}

/** "If bram@example.com is removed, 5 active keys are revoked — 3 keys used in the last 30 days stop working." */
function impactNotice(user, summary) {
  const active = summary.keys?.active ?? 0;
  const used = summary.used_last_30_days ?? 0;
  if (active === 0) {
    return [h('p', { class: 'notice-text' }, `${user} owns no active keys: removing them would break no automation.`)];
  }
  return [
    h('p', { class: 'notice-text' },
      `If ${user} is removed, ${plural(active, 'active key')} ${active === 1 ? 'is' : 'are'} revoked`,
      used === 0
        ? ' — none was used in the last 30 days.'
        : ` — ${plural(used, 'key')} used in the last 30 days ${used === 1 ? 'stops' : 'stop'} working.`),
    h('p', { class: 'notice-hint' },
      'Transfer the keys automations need to a service account before the user leaves: all at once, or one '
      + 'by one (Actions → Transfer…).'),
    h('p', { class: 'notice-actions' },
      h('button', {
        type: 'button',
        class: 'button small',
        'data-move-all': '',
        onclick: () => handover.open(user),
      }, active === 1 ? 'Move the 1 active key to…' : `Move all ${active} active keys to…`)),
  ];
}

// ---------------------------------------------------------------------------
// The Actions menu: one popover shared by the rows' buttons.

let menuKey = null;
let menuButton = null;

/** Runs before the button toggles the popover: remember which key it is for. */
function aimMenu(event, key) {
  const button = event.currentTarget;
  const open = dom.menu.matches(':popover-open');
  if (open && menuButton !== button) {
    // Another row's button while open: move the menu instead of closing it.
    event.preventDefault();
    menuButton?.setAttribute('aria-expanded', 'false');
    setMenuTarget(button, key);
    placeMenu();
    focusItem(0);
    return;
  }
  if (!open) setMenuTarget(button, key);
}

function setMenuTarget(button, key) {
  menuKey = key;
  menuButton = button;
  dom.menu.setAttribute('aria-label', `Actions for ${key.name}`);
  // A revoked key cannot be edited, transferred or rolled (409 key_revoked).
  for (const item of dom.menu.querySelectorAll('[data-changes-key]')) item.hidden = key.status === 'revoked';
  button.setAttribute('aria-expanded', 'true');
}

function mountMenu() {
  const { menu } = dom;
  // `beforetoggle` runs as the state changes; `toggle` comes a task later.
  menu.addEventListener('beforetoggle', (event) => {
    if (event.newState === 'closed') menuButton?.setAttribute('aria-expanded', 'false');
  });
  menu.addEventListener('toggle', (event) => {
    if (event.newState === 'open') {
      placeMenu();
      focusItem(0);
    }
  });
  const close = () => {
    if (menu.matches(':popover-open')) menu.hidePopover();
  };
  // The menu follows its button when the page or the table scrolls, and goes
  // away when a reload of the rows has replaced that button.
  let queued = false;
  const follow = () => {
    if (queued || !menu.matches(':popover-open')) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      if (menuButton?.isConnected) placeMenu();
      else close();
    });
  };
  window.addEventListener('resize', follow);
  window.addEventListener('scroll', follow, true);
  dom.section.addEventListener('rendered', follow);

  menu.addEventListener('keydown', (event) => {
    const items = [...menu.querySelectorAll('[role=menuitem]:not([hidden])')];
    const at = items.indexOf(document.activeElement);
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 };
    if (event.key in moves) {
      event.preventDefault();
      focusItem((moves[event.key] + items.length) % items.length);
    } else if (event.key === 'Tab') {
      close();
    }
  });
  menu.addEventListener('click', (event) => {
    const item = event.target.closest('[data-action]');
    if (!item || !menuKey) return;
    const key = menuKey;
    close();
    if (item.dataset.action === 'delete') openDelete(key);
    if (item.dataset.action === 'edit') lifecycle.openEdit(key);
    if (item.dataset.action === 'transfer') lifecycle.openTransfer(key);
    if (item.dataset.action === 'roll') lifecycle.openRoll(key);
    if (item.dataset.action === 'audit') {
      document.dispatchEvent(new CustomEvent('keygate:navigate', {
        detail: `/audit?key_id=${encodeURIComponent(key.id)}`,
      }));
    }
  });
}

function placeMenu() {
  if (!menuButton) return;
  const { menu } = dom;
  const anchor = menuButton.getBoundingClientRect();
  const width = menu.offsetWidth;
  const height = menu.offsetHeight;
  const left = Math.max(8, Math.min(anchor.right - width, window.innerWidth - width - 8));
  const below = anchor.bottom + 4;
  const top = below + height > window.innerHeight - 8 ? Math.max(8, anchor.top - height - 4) : below;
  // CSSOM, not a style attribute: the CSP allows no inline styles.
  menu.style.left = `${left}px`;
  menu.style.top = `${top}px`;
}

function focusItem(index) {
  dom.menu.querySelectorAll('[role=menuitem]:not([hidden])')[index]?.focus();
}

// ---------------------------------------------------------------------------
// Create, then show the secret once

function mountCreate() {
  const { createDialog: dialog, createForm: form } = dom;
  trapFocus(dialog);
  dom.create.addEventListener('click', openCreate);
  for (const button of dialog.querySelectorAll('[data-close]')) {
    button.addEventListener('click', () => dialog.close());
  }
  // Whichever way the dialog closes (Cancel, Done, Escape), the secret goes.
  dialog.addEventListener('close', () => {
    dom.secret.value = '';
    dom.copyStatus.textContent = '';
    form.reset();
    clearFieldErrors(form);
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    await submitCreate();
  });
  dom.copy.addEventListener('click', () => copySecret(dom.secret, dom.copyStatus));
}

function openCreate() {
  const { createDialog: dialog, createForm: form, createResult: result } = dom;
  form.reset();
  clearFieldErrors(form);
  dom.restored.hidden = true;
  form.hidden = false;
  result.hidden = true;
  dialog.setAttribute('aria-labelledby', 'create-title');
  form.querySelector('[type=submit]').disabled = false;
  fillOwners();
  dialog.showModal();
  form.elements.namedItem('name').focus();
}

/** The Owner choices: the signed-in user (the default), then the service accounts. */
async function fillOwners() {
  const select = dom.createForm.elements.namedItem('owner');
  const you = new Option(`You (${api.getSession()?.user ?? 'the signed-in user'})`, '');
  select.replaceChildren(you);
  let accounts;
  try {
    accounts = await allAccounts();
  } catch {
    return;
  }
  if (!dom.createDialog.open || select.value !== '') return;
  select.replaceChildren(you, ...accounts.map((a) => new Option(`${a.name} (service account)`, a.id)));
}

/**
 * When the session ends while the Create dialog is being filled in, keeps
 * what it holds for `owner` (in this tab's sessionStorage), so that nothing
 * typed is lost: the dialog opens with it again once the same person has
 * signed in. True when something was kept.
 */
export function keepDraft(owner) {
  const { createDialog: dialog, createForm: form } = dom;
  if (!dialog.open || form.hidden) return false;
  const fields = Object.fromEntries(DRAFT_FIELDS.map((name) => [name, form.elements.namedItem(name).value]));
  if (!Object.values(fields).some((value) => value.trim())) return false;
  sessionStorage.setItem(DRAFT, JSON.stringify({ owner, fields }));
  return true;
}

/** Opens the Create dialog with a kept draft when `owner` kept it; any other's is dropped. */
export function restoreDraft(owner) {
  const text = sessionStorage.getItem(DRAFT);
  if (text === null) return;
  sessionStorage.removeItem(DRAFT);
  let draft = null;
  try {
    draft = JSON.parse(text);
  } catch {
    return;
  }
  if (draft?.owner !== owner || !draft.fields) return;
  openCreate();
  for (const name of DRAFT_FIELDS) dom.createForm.elements.namedItem(name).value = String(draft.fields[name] ?? '');
  dom.restored.hidden = false;
}

async function submitCreate() {
  const { createForm: form } = dom;
  clearFieldErrors(form);
  const field = (name) => form.elements.namedItem(name);
  const body = { name: field('name').value };
  const description = field('description').value.trim();
  if (description) body.description = description;
  if (field('owner').value) body.owner = field('owner').value;
  const expires = field('expires_at').value;
  if (expires) {
    body.expires_at = localToRfc3339(expires);
    if (!body.expires_at) {
      showFieldErrors(form, [{ field: 'expires_at', message: 'is not a valid date and time' }], FIELD_LABELS)?.focus();
      return;
    }
  }
  const submit = form.querySelector('[type=submit]');
  submit.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    const created = await api.createKey(body);
    showSecret(created);
    announce(`API key “${created.name}” created.`);
    view.load();
  } catch (error) {
    if (error.endsSession) {
      dom.createDialog.close();
      return;
    }
    const errors = error.code === 'name_taken'
      ? [{ field: 'name', message: 'is already used by another active key. Choose another name.' }]
      : error.errors.map((e) => (e.field === 'owner' ? { ...e, message: lifecycle.ownerMessage(e.message) } : e));
    const first = errors.length ? showFieldErrors(form, errors, FIELD_LABELS) : null;
    if (first) first.focus();
    else showFormError(form, error.message);
  } finally {
    submit.disabled = false;
    form.removeAttribute('aria-busy');
  }
}

function showSecret(created) {
  const { createDialog: dialog, createForm: form, createResult: result } = dom;
  form.hidden = true;
  result.hidden = false;
  dialog.setAttribute('aria-labelledby', 'secret-title');
  dom.secretLabel.textContent = `API key for “${created.name}”`;
  dom.secret.value = created.secret;
  dom.copyStatus.textContent = '';
  dom.secret.focus();
  dom.secret.select();
}

// ---------------------------------------------------------------------------
// Delete, after a confirmation that names the key

let keyToDelete = null;

function mountDelete() {
  const { deleteDialog: dialog, deleteConfirm: confirm } = dom;
  trapFocus(dialog);
  dialog.querySelector('[data-close]').addEventListener('click', () => dialog.close());
  confirm.addEventListener('click', async () => {
    const key = keyToDelete;
    if (!key) return;
    confirm.disabled = true;
    try {
      await api.deleteKey(key.id);
      dialog.close();
      announce(`API key “${key.name}” deleted.`);
    } catch (error) {
      if (error.endsSession) {
        dialog.close();
        return;
      }
      if (error.code !== 'key_not_found') {
        showFormError(dialog, error.message);
        return;
      }
      dialog.close();
      announce(`API key “${key.name}” was already deleted.`);
    } finally {
      confirm.disabled = false;
    }
    keyToDelete = null;
    await view.load();
    // The row (and the button that opened the menu) is gone: keep focus in the table.
    (view.wrap.hidden ? dom.create : view.wrap).focus();
  });
}

function openDelete(key) {
  const { deleteDialog: dialog } = dom;
  keyToDelete = key;
  dialog.querySelector('[data-key-name]').textContent = key.name;
  const error = dialog.querySelector('[data-form-error]');
  error.hidden = true;
  error.textContent = '';
  dialog.showModal();
}
