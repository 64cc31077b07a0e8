// Hand-over: every active key of a user who is leaving, moved to a service
// account (or another user) in one go, from the overview's Owner-filter
// notice ("Move all 7 active keys to…"). Each key is transferred on its own
// (POST /api/keys/{id}/transfer, one request at a time): the secrets do not
// change, so the automations keep working through the user's removal, and the
// audit trail has one `key.transferred` per key, by whoever moved them.
//
// The keys are the user's active ones when the dialog opens (every page of
// GET /api/keys?owner=…&status=active). Just before moving one, it is asked
// for again: a key someone has given to another owner since is left alone.
// A key that cannot be moved (deleted, revoked by the user's removal
// meanwhile, refused) is listed with the API's reason and the others go on; a
// failure that would hit every key (no connection, 503, a new owner the API
// refuses) stops the run, and running it again moves only what is still
// theirs.

import { allAccounts } from './accounts.js';
import * as api from './api.js';
import { plural } from './format.js';
import { ownerMessage } from './lifecycle.js';
import { announce, clearFieldErrors, h, showFormError, trapFocus } from './ui.js';

/** At most this many pages of 100 keys are gathered (10,000 keys). */
const MAX_PAGES = 100;

let dom;
/** `done()`: reload the overview (and its notice); `refocus()`: focus back in the overview. */
let hooks;
/** The dialog's run: `{ user, keys, target, running, stop, closed }`. */
let current = null;

const lower = (id) => String(id).replace(/[A-Z]/g, (c) => c.toLowerCase());
/** User ids match case-insensitively (ASCII). */
const sameUser = (a, b) => lower(a) === lower(b);

export function mount(given) {
  hooks = given;
  const dialog = document.getElementById('handover-dialog');
  dom = {
    dialog,
    form: document.getElementById('handover-form'),
    count: document.getElementById('handover-count'),
    keys: document.getElementById('handover-keys'),
    run: document.getElementById('handover-run'),
    runTitle: document.getElementById('handover-run-title'),
    progress: document.getElementById('handover-progress'),
    status: document.getElementById('handover-status'),
    failed: document.getElementById('handover-failed'),
    skipped: document.getElementById('handover-skipped'),
    again: document.getElementById('handover-again'),
    trail: document.getElementById('handover-trail'),
    stop: document.getElementById('handover-stop'),
    rest: document.getElementById('handover-rest'),
    done: document.getElementById('handover-done'),
  };
  trapFocus(dialog);
  for (const button of dialog.querySelectorAll('[data-close]')) {
    button.addEventListener('click', () => dialog.close());
  }
  const { form } = dom;
  for (const radio of form.querySelectorAll('input[name=kind]')) {
    radio.addEventListener('change', () => showKind(radio.value, { focus: true }));
  }
  form.elements.namedItem('account').addEventListener('change', () => clearFieldErrors(form));
  form.elements.namedItem('user').addEventListener('input', () => clearFieldErrors(form));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
  // Escape while keys are being moved asks to stop after the current one
  // (the browser may still close the dialog: then the run stops the same way).
  dialog.addEventListener('cancel', (event) => {
    if (!current?.running) return;
    event.preventDefault();
    askToStop();
  });
  dialog.addEventListener('close', () => {
    const run = current;
    if (run?.running) {
      askToStop();
      run.closed = true;
      return;
    }
    current = null;
    hooks.refocus();
  });
  dom.stop.addEventListener('click', askToStop);
  dom.rest.addEventListener('click', moveTheRest);
  dom.trail.addEventListener('click', () => dialog.close());
}

/** "Move all N active keys to…" for `user` (the Owner filter, as typed). */
export function open(user) {
  const { dialog, form } = dom;
  // A run still finishing its key after the dialog was closed: show it again, not a second one.
  if (current?.running) {
    current.closed = false;
    dialog.showModal();
    dom.stop.focus();
    return;
  }
  const run = { user, keys: null, target: null, running: false, stop: false, closed: false };
  current = run;
  form.reset();
  clearFieldErrors(form);
  form.hidden = false;
  dom.run.hidden = true;
  dialog.setAttribute('aria-labelledby', 'handover-title');
  for (const slot of dialog.querySelectorAll('[data-user]')) slot.textContent = user;
  dom.count.textContent = `Finding the active keys of ${user}…`;
  dom.keys.hidden = true;
  dom.keys.replaceChildren();
  setSubmit(null);
  showKind('account');
  dialog.showModal();
  form.querySelector('input[name=kind][value=account]').focus();
  fillAccounts(run);
  gather(run);
}

/** The submit button: "Move 3 keys", disabled while there is nothing (yet) to move. */
function setSubmit(count) {
  const button = dom.form.querySelector('[type=submit]');
  button.disabled = !count;
  button.textContent = count ? `Move ${plural(count, 'key')}` : 'Move keys';
}

/** Every active key of `user`, by name (all pages). */
async function activeKeys(user) {
  const found = new Map();
  for (let page = 1; page <= MAX_PAGES; page += 1) {
    const answer = await api.listKeys({
      owner: user, status: 'active', sort: 'name', order: 'asc', per_page: 100, page,
    });
    for (const key of answer.items) found.set(key.id, key);
    if (page >= answer.total_pages) break;
  }
  return [...found.values()];
}

async function gather(run) {
  let keys;
  try {
    keys = await activeKeys(run.user);
  } catch (error) {
    if (error.endsSession || current !== run) return;
    dom.count.textContent = '';
    showFormError(dom.form, `The keys of ${run.user} could not be listed: ${error.message}`);
    return;
  }
  if (current !== run || run.running) return;
  run.keys = keys;
  if (!keys.length) {
    dom.count.textContent = `${run.user} owns no active keys now: there is nothing to move.`;
    return;
  }
  dom.count.textContent = `${plural(keys.length, 'active key')} ${keys.length === 1 ? 'acts' : 'act'} as ${run.user}:`;
  dom.keys.replaceChildren(h('ul', {}, keys.map((key) =>
    h('li', {}, h('span', { class: 'key-name' }, key.name), ' ', h('code', { class: 'key-hint' }, key.hint)))));
  dom.keys.hidden = false;
  setSubmit(keys.length);
}

/** The service accounts to choose from (as the Transfer dialog offers them). */
async function fillAccounts(run) {
  const { form } = dom;
  const select = form.elements.namedItem('account');
  const accountChoice = form.querySelector('input[name=kind][value=account]');
  select.replaceChildren(new Option('Loading service accounts…', ''));
  select.disabled = true;
  accountChoice.disabled = false;
  let accounts = [];
  try {
    accounts = await allAccounts();
  } catch (error) {
    if (error.endsSession) return;
    if (current === run) showFormError(form, `The service accounts could not be loaded: ${error.message}`);
  }
  if (current !== run || !dom.dialog.open || run.running) return;
  select.replaceChildren(
    new Option(accounts.length ? 'Choose a service account' : 'No service accounts yet', ''),
    ...accounts.map((a) => new Option(a.name, a.id)),
  );
  select.disabled = accounts.length === 0;
  accountChoice.disabled = accounts.length === 0;
  if (!accounts.length && form.elements.namedItem('kind').value === 'account') {
    const choosing = document.activeElement === accountChoice;
    form.querySelector('input[name=kind][value=user]').checked = true;
    showKind('user', { focus: choosing });
  }
}

const ownerControl = (kind) => dom.form.elements.namedItem(kind === 'user' ? 'user' : 'account');

function showKind(kind, { focus = false } = {}) {
  for (const section of dom.form.querySelectorAll('[data-kind]')) section.hidden = section.dataset.kind !== kind;
  clearFieldErrors(dom.form);
  if (focus) ownerControl(kind).focus();
}

function showOwnerError(message) {
  const slot = dom.form.querySelector('[data-error-for="owner"]');
  slot.textContent = message;
  slot.hidden = false;
  const control = ownerControl(dom.form.elements.namedItem('kind').value);
  control.setAttribute('aria-invalid', 'true');
  control.focus();
}

function submit() {
  const run = current;
  if (!run?.keys?.length || run.running) return;
  const { form } = dom;
  clearFieldErrors(form);
  const kind = form.elements.namedItem('kind').value;
  const control = ownerControl(kind);
  const owner = control.value.trim();
  if (!owner) {
    showOwnerError(kind === 'user' ? 'The user id is required.' : 'Choose a service account.');
    return;
  }
  if (sameUser(owner, run.user)) {
    showOwnerError(`The keys already act as ${run.user}: choose another owner.`);
    return;
  }
  const label = kind === 'account'
    ? `the service account ${control.selectedOptions[0]?.textContent ?? owner}`
    : owner;
  run.target = { owner, label };
  move(run, run.keys);
}

function askToStop() {
  if (!current?.running) return;
  current.stop = true;
  dom.stop.disabled = true;
  dom.stop.textContent = 'Stopping after this key…';
}

/** "Move the rest" after a run that stopped: the user's active keys now, to the same owner. */
async function moveTheRest() {
  const run = current;
  if (!run?.target || run.running) return;
  dom.rest.disabled = true;
  dom.status.textContent = `Finding the active keys ${run.user} still owns…`;
  let keys;
  try {
    keys = await activeKeys(run.user);
  } catch (error) {
    if (!error.endsSession) dom.status.textContent = `The keys of ${run.user} could not be listed: ${error.message}`;
    return;
  } finally {
    dom.rest.disabled = false;
  }
  if (current !== run || !dom.dialog.open) return;
  move(run, keys);
}

/** Why a key's transfer failed, when the others may still go: gone, revoked, or refused for it alone. */
const forThisKey = (error) => error.status === 404 || error.status === 409
  || (error.status === 422 && !ownerProblem(error));

/** The API's reason when the new owner itself is refused (removed user, deleted account): every key would be. */
const ownerProblem = (error) => (error.status === 422 ? error.errors.find((e) => e.field === 'owner') : undefined);

/** Moves `keys` to the run's target, one at a time, then shows what happened. */
async function move(run, keys) {
  const { owner, label } = run.target;
  run.running = true;
  run.stop = false;
  showRun(keys.length);
  const moved = [];
  const failed = [];
  const skipped = [];
  let stopped = null;
  const progress = () => {
    const done = moved.length + failed.length + skipped.length;
    dom.progress.value = done;
    dom.status.textContent = `Moved ${moved.length} of ${keys.length}…`
      + (failed.length ? ` (${plural(failed.length, 'key')} could not be moved)` : '');
  };
  progress();
  for (const key of keys) {
    if (run.stop) {
      stopped = { asked: true };
      break;
    }
    try {
      // Still theirs? A key given to someone else since the list was made stays where it is.
      const now = await api.getKey(key.id);
      const holder = now.owner ?? now.created_by;
      if (!sameUser(holder, run.user)) {
        skipped.push({ key: now, owner: holder });
      } else {
        await api.transferKey(key.id, owner);
        moved.push(key);
      }
    } catch (error) {
      if (error.endsSession) {
        run.running = false;
        if (dom.dialog.open) dom.dialog.close();
        return;
      }
      if (forThisKey(error)) {
        failed.push({ key, message: error.message });
      } else {
        stopped = { error, owner: ownerProblem(error) };
        break;
      }
    }
    progress();
  }
  run.running = false;
  // The new owner refused before anything moved: back to the form, the reason at the field.
  if (stopped?.owner && !moved.length && !run.closed) {
    dom.form.hidden = false;
    dom.run.hidden = true;
    dom.dialog.setAttribute('aria-labelledby', 'handover-title');
    showOwnerError(ownerMessage(stopped.owner.message));
    return;
  }
  const summary = showSummary(run, keys.length, { moved, failed, skipped, stopped, label });
  // Whatever happened, the overview and its notice say what is left.
  await hooks.done();
  if (run.closed) {
    // Closed while moving: the page says it instead, and focus goes back to the overview.
    announce(summary);
    current = null;
    hooks.refocus();
  }
}

/** The dialog's second step: a progress bar and its live status. */
function showRun(total) {
  const { dialog, form } = dom;
  form.hidden = true;
  dom.run.hidden = false;
  dialog.setAttribute('aria-labelledby', 'handover-run-title');
  dom.runTitle.textContent = `Moving the keys of ${current.user}`;
  dom.progress.max = Math.max(total, 1);
  dom.progress.value = 0;
  for (const part of [dom.failed, dom.skipped, dom.again, dom.trail.parentElement, dom.rest, dom.done]) part.hidden = true;
  dom.stop.hidden = false;
  dom.stop.disabled = false;
  dom.stop.textContent = 'Stop';
  dom.stop.focus();
}

/** What happened, in the live status (one sentence) and below it (the keys left behind). Returns the sentence. */
function showSummary(run, total, { moved, failed, skipped, stopped, label }) {
  const keysOf = (n) => (n === 1 ? 'key' : 'keys');
  let sentence;
  if (stopped?.asked) {
    sentence = `Stopped as you asked, after moving ${moved.length} of ${total} ${keysOf(total)} to ${label}.`;
  } else if (stopped) {
    const reason = stopped.owner ? ownerMessage(stopped.owner.message) : stopped.error.message;
    sentence = `Stopped after moving ${moved.length} of ${total} ${keysOf(total)} to ${label}: ${reason}`;
  } else if (!total) {
    sentence = `${run.user} owns no active keys now: there was nothing left to move.`;
  } else {
    sentence = `Moved ${moved.length} of ${total} ${keysOf(total)} to ${label}.`;
  }
  if (moved.length && !stopped) {
    sentence += ` The secrets did not change: the automations using ${moved.length === 1 ? 'it' : 'them'} keep working, now as ${label}.`;
  }
  let title = `Keys of ${run.user} moved`;
  if (stopped) title = 'Moving stopped';
  else if (failed.length) title = moved.length ? `Not every key of ${run.user} moved` : `No keys of ${run.user} moved`;
  dom.runTitle.textContent = title;
  dom.progress.value = moved.length + failed.length + skipped.length;
  dom.status.textContent = sentence;

  dom.failed.hidden = !failed.length;
  if (failed.length) {
    dom.failed.replaceChildren(
      h('p', {}, `${plural(failed.length, 'key')} could not be moved:`),
      h('ul', { class: 'handover-list' }, failed.map(({ key, message }) =>
        h('li', {}, h('span', { class: 'key-name' }, key.name), ' ', h('code', { class: 'key-hint' }, key.hint),
          h('span', { class: 'handover-reason' }, sentenceOf(message))))),
    );
  }
  dom.skipped.hidden = !skipped.length;
  if (skipped.length) {
    dom.skipped.replaceChildren(
      h('p', {}, `${plural(skipped.length, 'key')} ${skipped.length === 1 ? 'was' : 'were'} no longer ${run.user}'s, so ${skipped.length === 1 ? 'it was' : 'they were'} left as ${skipped.length === 1 ? 'it was' : 'they were'}:`),
      h('ul', { class: 'handover-list' }, skipped.map(({ key, owner }) =>
        h('li', {}, h('span', { class: 'key-name' }, key.name), ' ', h('code', { class: 'key-hint' }, key.hint),
          h('span', { class: 'handover-reason' }, `Now owned by ${owner}.`)))),
    );
  }
  const again = Boolean(stopped);
  dom.again.hidden = !again;
  dom.again.textContent = `Run it again to move the rest: it moves only the keys ${run.user} still owns.`;
  const acting = api.getSession()?.user;
  dom.trail.href = `/audit?${new URLSearchParams({ ...(acting ? { user: acting } : {}), action: 'key.transferred' })}`;
  dom.trail.parentElement.hidden = !moved.length;
  dom.stop.hidden = true;
  dom.rest.hidden = !again;
  dom.done.hidden = false;
  if (!run.closed) (again ? dom.rest : dom.done).focus();
  return sentence;
}

/** The API's `detail` as a sentence: "The key was revoked (…) and cannot be changed." */
function sentenceOf(message) {
  const text = String(message);
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? '' : '.'}`;
}
