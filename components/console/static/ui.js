// Small building blocks shared by the views: elements, the URL as the view's
// state, the pager, loading/empty/error panels, announcements.

import { exactTime, rangeText, relativeTime } from './format.js';

/** `h('td', { class: 'x' }, 'text', child)`: text is always text, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** `<time>` saying "3 minutes ago", the exact time on hover; kept fresh by tickRelativeTimes. */
export function relativeTimeElement(iso) {
  return h('time', { datetime: iso, title: exactTime(iso), 'data-relative': '' }, relativeTime(iso));
}

export function tickRelativeTimes() {
  const now = Date.now();
  for (const el of document.querySelectorAll('time[data-relative]')) {
    el.textContent = relativeTime(el.getAttribute('datetime'), now);
  }
}

/**
 * The view's state lives in the query string, under the API's own parameter
 * names. Values equal to the defaults are left out, so `/` is the default view.
 */
export class UrlState {
  /** `together`: groups written whole when any member differs (`sort` with `order`). */
  constructor(defaults, together = []) {
    this.defaults = defaults;
    this.together = together;
  }

  read() {
    const search = new URLSearchParams(location.search);
    const state = {};
    for (const [name, fallback] of Object.entries(this.defaults)) {
      state[name] = search.get(name) ?? fallback;
    }
    return state;
  }

  /** The query string for `state`, `?…` or ''. */
  toSearch(state) {
    const search = new URLSearchParams();
    const differs = (name) => {
      const value = state[name];
      return value !== '' && value !== undefined && value !== null && String(value) !== this.defaults[name];
    };
    for (const name of Object.keys(this.defaults)) {
      const group = this.together.find((g) => g.includes(name));
      if (group ? group.some(differs) : differs(name)) search.set(name, String(state[name]));
    }
    const text = search.toString();
    return text ? `?${text}` : '';
  }

  /** A new history entry (or a replacement) when the state changed. */
  write(state, { replace = false } = {}) {
    const url = location.pathname + this.toSearch(state);
    if (url === location.pathname + location.search) return;
    history[replace ? 'replaceState' : 'pushState'](null, '', url);
  }
}

/** Calls `fn` once `ms` have passed without another call; `.now()` runs it at once. */
export function debounce(fn, ms) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

/** First/previous/next/last, "26–50 of 123" and the records-per-page selector. */
export class Pager {
  constructor(root, { onPage, onPerPage }) {
    this.root = root;
    this.perPage = root.querySelector('[data-per-page]');
    this.range = root.querySelector('[data-range]');
    this.pageOf = root.querySelector('[data-page-of]');
    this.buttons = Object.fromEntries(
      [...root.querySelectorAll('[data-go]')].map((b) => [b.dataset.go, b]),
    );
    this.current = { page: 1, total_pages: 1 };
    for (const [go, button] of Object.entries(this.buttons)) {
      button.addEventListener('click', () => {
        const { page, total_pages: last } = this.current;
        const target = { first: 1, prev: page - 1, next: page + 1, last }[go];
        onPage(Math.max(1, Math.min(target, Math.max(last, 1))));
      });
    }
    this.perPage.addEventListener('change', () => onPerPage(this.perPage.value));
  }

  render({ page, per_page: perPage, total, total_pages: totalPages }) {
    this.current = { page, total_pages: totalPages };
    this.root.hidden = total === 0;
    this.perPage.value = String(perPage);
    this.range.textContent = rangeText(page, perPage, total);
    this.pageOf.textContent = `Page ${page} of ${Math.max(totalPages, 1)}`;
    this.buttons.first.disabled = this.buttons.prev.disabled = page <= 1;
    this.buttons.next.disabled = this.buttons.last.disabled = page >= totalPages;
  }
}

/**
 * The panel above a table for loading, empty and error states.
 * `kind` is 'loading', 'empty' or 'error'; actions are `{label, onClick, primary}`.
 */
export function showState(panel, { kind, title, text, actions = [] }) {
  // replaceChildren would write a null as the text "null": leave those out.
  panel.replaceChildren(...[
    h('p', { class: 'state-title' }, title),
    text ? h('p', { class: 'state-text' }, text) : null,
    actions.length
      ? h('div', { class: 'state-actions' }, actions.map(({ label, onClick, primary }) =>
          h('button', { type: 'button', class: primary ? 'button primary' : 'button', onclick: onClick }, label)))
      : null,
  ].filter(Boolean));
  panel.dataset.kind = kind;
  panel.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  panel.hidden = false;
}

export function hideState(panel) {
  panel.hidden = true;
  panel.replaceChildren();
  delete panel.dataset.kind;
}

/** A short visible confirmation, also read out by screen readers. */
let toastTimer = null;
export function announce(message) {
  const toast = document.getElementById('toast');
  toast.textContent = message;
  toast.classList.add('visible');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => toast.classList.remove('visible'), 6000);
}

/** Shows server (or local) messages next to the fields they name. */
export function showFieldErrors(form, errors, labels) {
  clearFieldErrors(form);
  let first = null;
  for (const { field, message } of errors) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
    const input = form.elements.namedItem(field);
    if (!slot) continue;
    slot.textContent = labels[field] ? `${labels[field]} ${message}` : message;
    slot.hidden = false;
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      first ??= input;
    }
  }
  return first;
}

export function clearFieldErrors(form) {
  for (const slot of form.querySelectorAll('[data-error-for]')) {
    slot.hidden = true;
    slot.textContent = '';
  }
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  const formError = form.querySelector('[data-form-error]');
  if (formError) {
    formError.hidden = true;
    formError.textContent = '';
  }
}

export function showFormError(container, message) {
  const slot = container.querySelector('[data-form-error]');
  slot.textContent = message;
  slot.hidden = false;
}

/**
 * Keeps Tab and Shift+Tab inside a modal dialog. `showModal()` makes the page
 * behind inert and Escape closes it; this also stops focus leaving for the
 * browser's own controls.
 */
export function trapFocus(dialog) {
  dialog.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab') return;
    const focusable = [...dialog.querySelectorAll(
      'button, input, select, textarea, a[href], [tabindex]:not([tabindex="-1"])',
    )].filter((el) => !el.disabled && el.getClientRects().length > 0);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    const inside = dialog.contains(document.activeElement);
    if (event.shiftKey && (document.activeElement === first || !inside)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
      event.preventDefault();
      first.focus();
    }
  });
}

/** The Copy button beside a secret shown once: the clipboard, or the secret selected to copy by hand. */
export async function copySecret(input, status) {
  try {
    await navigator.clipboard.writeText(input.value);
    status.textContent = 'Copied to the clipboard.';
  } catch {
    input.focus();
    input.select();
    status.textContent = 'Copying was not allowed: the key is selected, press Ctrl+C (⌘C) to copy it.';
  }
}
