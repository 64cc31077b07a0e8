// A key's lifecycle from its Actions menu (v2): Edit… (name, description,
// expiry: PATCH), Transfer… (to a service account or a user: same secret,
// new owner) and Roll… (a new secret, shown once like create shows it, the
// previous one working for a while or not at all).

import * as api from './api.js';
import { allAccounts, ownerElement } from './accounts.js';
import { localToRfc3339, rfc3339ToLocal, zonedTime } from './format.js';
import {
  announce, clearFieldErrors, copySecret, showFieldErrors, showFormError, trapFocus,
} from './ui.js';

/** How the API's field names read in messages: "Token name must not be empty". */
const FIELD_LABELS = {
  name: 'Token name',
  description: 'Description',
  expires_at: 'Expiry',
  expires_previous_in: 'The time the current secret keeps working',
};

const GRACE_TEXT = { 300: '5 minutes', 3600: '1 hour', 86400: '1 day', 604800: '7 days' };

let dom;
/** `changed(keyId)`: reload the overview and put focus on that key's row. */
let changed;
/** `refocus(keyId)`: focus back on the key's Actions button (after Cancel). */
let refocus;

export function mount(hooks) {
  ({ changed, refocus } = hooks);
  dom = {
    edit: document.getElementById('edit-dialog'),
    editForm: document.getElementById('edit-form'),
    transfer: document.getElementById('transfer-dialog'),
    transferForm: document.getElementById('transfer-form'),
    roll: document.getElementById('roll-dialog'),
    rollForm: document.getElementById('roll-form'),
    rollResult: document.getElementById('roll-result'),
    rollSecret: document.getElementById('roll-secret-value'),
    rollLabel: document.getElementById('roll-secret-label'),
    rollCopyStatus: document.getElementById('roll-copy-status'),
    rollPrevious: document.getElementById('roll-previous'),
  };
  for (const dialog of [dom.edit, dom.transfer, dom.roll]) {
    trapFocus(dialog);
    for (const button of dialog.querySelectorAll('[data-close]')) {
      button.addEventListener('click', () => dialog.close());
    }
  }
  mountEdit();
  mountTransfer();
  mountRoll();
}

/** The dialog's key, and what happens to focus when it closes. */
function openFor(dialog, key) {
  dialog.dataset.keyId = key.id;
  for (const slot of dialog.querySelectorAll('[data-key-name]')) slot.textContent = key.name;
}

/** A refused change: at the fields it names, else near the form (the API's `detail`). */
function showRefusal(form, error, { nameTaken } = {}) {
  const errors = error.code === 'name_taken' && nameTaken ? [{ field: 'name', message: nameTaken }] : error.errors;
  const first = errors.length ? showFieldErrors(form, errors, FIELD_LABELS) : null;
  if (first) first.focus();
  else showFormError(form, error.message);
}

/** Runs `call` with the form's submit disabled; a session that ended closes the dialog. */
async function submitting(form, dialog, call) {
  const submit = form.querySelector('[type=submit]');
  submit.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    return await call();
  } catch (error) {
    if (error.endsSession) {
      dialog.close();
      return null;
    }
    throw error;
  } finally {
    submit.disabled = false;
    form.removeAttribute('aria-busy');
  }
}

/** Once a dialog closed without a change: focus back on the key's Actions button. */
function closing(dialog) {
  dialog.addEventListener('close', () => {
    if (dialog.dataset.changed !== 'true') refocus(dialog.dataset.keyId);
    delete dialog.dataset.changed;
  });
}

// ---------------------------------------------------------------------------
// Edit: only the fields that differ are sent (an expired key keeps its past
// expiry unless it is changed, which create's rule would refuse).

let editing = null;
let editExpires = '';

function mountEdit() {
  const { edit: dialog, editForm: form } = dom;
  closing(dialog);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = editing;
    if (!key) return;
    clearFieldErrors(form);
    const field = (name) => form.elements.namedItem(name);
    const body = {};
    const name = field('name').value;
    if (name.trim() !== key.name) body.name = name;
    const description = field('description').value.trim();
    if (description !== (key.description ?? '')) body.description = description || null;
    const expires = field('expires_at').value;
    if (expires !== editExpires) {
      body.expires_at = expires ? localToRfc3339(expires) : null;
      if (expires && !body.expires_at) {
        showFieldErrors(form, [{ field: 'expires_at', message: 'is not a valid date and time' }], FIELD_LABELS)?.focus();
        return;
      }
    }
    if (!Object.keys(body).length) {
      dialog.close();
      announce(`Nothing changed in “${key.name}”.`);
      return;
    }
    try {
      const updated = await submitting(form, dialog, () => api.updateKey(key.id, body));
      if (!updated) return;
      dialog.dataset.changed = 'true';
      dialog.close();
      announce(`API key “${updated.name}” saved.`);
      await changed(key.id);
    } catch (error) {
      showRefusal(form, error, { nameTaken: 'is already used by another active key. Choose another name.' });
    }
  });
}

export function openEdit(key) {
  const { edit: dialog, editForm: form } = dom;
  editing = key;
  form.reset();
  clearFieldErrors(form);
  openFor(dialog, key);
  form.elements.namedItem('name').value = key.name;
  form.elements.namedItem('description').value = key.description ?? '';
  editExpires = key.expires_at ? rfc3339ToLocal(key.expires_at) : '';
  form.elements.namedItem('expires_at').value = editExpires;
  dialog.showModal();
  form.elements.namedItem('name').focus();
}

// ---------------------------------------------------------------------------
// Transfer: to a service account (picked from the list) or a user (typed).

let transferring = null;

function mountTransfer() {
  const { transfer: dialog, transferForm: form } = dom;
  closing(dialog);
  for (const radio of form.querySelectorAll('input[name=kind]')) {
    radio.addEventListener('change', () => showKind(radio.value, { focus: true }));
  }
  // A new choice: the message about the last one goes.
  form.elements.namedItem('account').addEventListener('change', clearTransferErrors);
  form.elements.namedItem('user').addEventListener('input', clearTransferErrors);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = transferring;
    if (!key) return;
    clearTransferErrors();
    const kind = form.elements.namedItem('kind').value;
    const control = transferControl(kind);
    const owner = control.value.trim();
    if (!owner) {
      showOwnerError(kind === 'user' ? 'The user id is required.' : 'Choose a service account.');
      return;
    }
    if (owner.toLowerCase() === (key.owner ?? key.created_by).toLowerCase()) {
      showOwnerError('That owner already owns this key: choose another.');
      return;
    }
    try {
      const moved = await submitting(form, dialog, () => api.transferKey(key.id, owner));
      if (!moved) return;
      dialog.dataset.changed = 'true';
      dialog.close();
      const to = kind === 'account' ? control.selectedOptions[0]?.textContent : owner;
      announce(`API key “${moved.name}” transferred to ${to}.`);
      await changed(key.id);
    } catch (error) {
      const problem = error.errors.find((e) => e.field === 'owner');
      if (problem) showOwnerError(ownerMessage(problem.message));
      else showFormError(form, error.message);
    }
  });
}

const transferControl = (kind) => dom.transferForm.elements.namedItem(kind === 'user' ? 'user' : 'account');

function showKind(kind, { focus = false } = {}) {
  const form = dom.transferForm;
  for (const section of form.querySelectorAll('[data-kind]')) section.hidden = section.dataset.kind !== kind;
  clearTransferErrors();
  if (focus) transferControl(kind).focus();
}

/** The API's owner messages as sentences ("this user has been removed…"). */
export function ownerMessage(message) {
  const text = String(message);
  if (/^(is|must|cannot)\b/.test(text)) return `The new owner ${text}.`.replace(/\.\.$/, '.');
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? '' : '.'}`;
}

function showOwnerError(message) {
  const form = dom.transferForm;
  const slot = form.querySelector('[data-error-for="owner"]');
  slot.textContent = message;
  slot.hidden = false;
  const control = transferControl(form.elements.namedItem('kind').value);
  control.setAttribute('aria-invalid', 'true');
  control.focus();
}

function clearTransferErrors() {
  clearFieldErrors(dom.transferForm);
}

export async function openTransfer(key) {
  const { transfer: dialog, transferForm: form } = dom;
  transferring = key;
  form.reset();
  clearTransferErrors();
  openFor(dialog, key);
  dialog.querySelector('[data-key-owner]').replaceChildren(ownerElement(key.owner ?? key.created_by));
  const select = form.elements.namedItem('account');
  select.replaceChildren(new Option('Loading service accounts…', ''));
  select.disabled = true;
  form.querySelector('input[name=kind][value=account]').disabled = false;
  showKind('account');
  dialog.showModal();
  form.querySelector('input[name=kind][value=account]').focus();
  let accounts = [];
  try {
    accounts = (await allAccounts()).filter((a) => a.id !== key.owner);
  } catch (error) {
    if (error.endsSession) return;
    if (transferring === key) showFormError(form, `The service accounts could not be loaded: ${error.message}`);
  }
  if (transferring !== key || !dialog.open) return;
  select.replaceChildren(
    new Option(accounts.length ? 'Choose a service account' : 'No service accounts yet', ''),
    ...accounts.map((a) => new Option(a.name, a.id)),
  );
  select.disabled = accounts.length === 0;
  const accountChoice = form.querySelector('input[name=kind][value=account]');
  accountChoice.disabled = accounts.length === 0;
  // With none to choose from, a user is the only choice (focus follows it
  // when it was still on the choices).
  if (!accounts.length && form.elements.namedItem('kind').value === 'account') {
    const choosing = document.activeElement === accountChoice;
    form.querySelector('input[name=kind][value=user]').checked = true;
    showKind('user', { focus: choosing });
  }
}

// ---------------------------------------------------------------------------
// Roll, then the new secret once

let rolling = null;

function mountRoll() {
  const { roll: dialog, rollForm: form } = dom;
  closing(dialog);
  // Whichever way the dialog closes (Cancel, Done, Escape), the secret goes:
  // at once on Escape (`cancel` comes before the dialog hides; `close` only
  // after, as a task), and on every close.
  const forget = () => {
    dom.rollSecret.value = '';
    dom.rollCopyStatus.textContent = '';
  };
  dialog.addEventListener('cancel', forget);
  dialog.addEventListener('close', forget);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = rolling;
    if (!key) return;
    clearFieldErrors(form);
    const seconds = Number(form.elements.namedItem('expires_previous_in').value);
    try {
      const rolled = await submitting(form, dialog, () => api.rollKey(key.id, seconds));
      if (!rolled) return;
      // The row changed (its hint): it is redrawn, and focus returns to it after Done.
      dialog.dataset.changed = 'false';
      showRolled(rolled, seconds, Date.now());
      announce(`Secret of “${rolled.name}” rolled.`);
      await changed(key.id, { focus: false });
    } catch (error) {
      showRefusal(form, error);
    }
  });
  dialog.querySelector('#roll-secret-copy').addEventListener('click',
    () => copySecret(dom.rollSecret, dom.rollCopyStatus));
}

function showRolled(rolled, seconds, now) {
  const { roll: dialog, rollForm: form, rollResult: result } = dom;
  form.hidden = true;
  result.hidden = false;
  dialog.setAttribute('aria-labelledby', 'roll-secret-title');
  dom.rollLabel.textContent = `New API key for “${rolled.name}”`;
  dom.rollSecret.value = rolled.secret;
  dom.rollCopyStatus.textContent = '';
  dom.rollPrevious.textContent = seconds > 0
    ? `The previous secret keeps working until ${zonedTime(new Date(now + seconds * 1000).toISOString())} `
      + `(${GRACE_TEXT[seconds] ?? `${seconds} seconds`}), then it is refused.`
    : 'The previous secret no longer works.';
  dom.rollSecret.focus();
  dom.rollSecret.select();
}

export function openRoll(key) {
  const { roll: dialog, rollForm: form, rollResult: result } = dom;
  rolling = key;
  form.reset();
  clearFieldErrors(form);
  form.hidden = false;
  result.hidden = true;
  dialog.setAttribute('aria-labelledby', 'roll-title');
  openFor(dialog, key);
  dialog.showModal();
  form.elements.namedItem('expires_previous_in').focus();
}
