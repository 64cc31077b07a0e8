// What the keys overview and the audit trail have in common: a filter form, a
// table filled from one paginated API call, a pager, and the URL as the state.

import { Pager, UrlState, debounce, hideState, showState } from './ui.js';

const TYPING_PAUSE_MS = 300;

export class ListView {
  /**
   * @param {object} o
   * @param {HTMLElement} o.section   the view's <section>
   * @param {object} o.defaults       every URL/API parameter with its default
   * @param {string[]} o.filters      the parameters set by the filter form (none: no form)
   * @param {(params, signal) => Promise} o.fetch   one page from the API
   * @param {(items) => Node[]} o.rows              table rows for a page
   * @param {(filtered: boolean) => object} o.empty what to say for no rows
   * @param {string} o.noun           "API keys", "audit entries"
   * @param {string[][]} [o.together] parameters the URL keeps together
   */
  constructor({ section, defaults, filters, fetch, rows, empty, noun, together = [] }) {
    Object.assign(this, { section, defaults, filters, fetch, rows, empty, noun });
    this.url = new UrlState(defaults, together);
    this.state = { ...defaults };
    this.active = false;
    this.controller = null;
    this.form = section.querySelector('form.filters');
    this.table = section.querySelector('table');
    this.wrap = section.querySelector('.table-wrap');
    this.body = this.table.tBodies[0];
    this.panel = section.querySelector('.state');
    this.pager = new Pager(section.querySelector('.pager'), {
      onPage: (page) => this.apply({ page: String(page) }),
      onPerPage: (perPage) => this.apply({ per_page: perPage, page: '1' }),
    });

    this.typed = debounce(() => {}, 0);
    // A list without filters (service accounts) has no form.
    if (this.form) this.mountFilters(filters);
  }

  mountFilters(filters) {
    // Text filters apply once typing pauses; choices and dates at once; Enter now.
    // One pause applies every text field, so a change to one field is not
    // lost when another is typed in before the pause.
    const isText = (input) => input.type === 'text' || input.type === 'search';
    const textFilters = filters.filter((name) => isText(this.form.elements.namedItem(name)));
    const typed = debounce(() => this.apply({
      ...Object.fromEntries(textFilters.map((name) => [name, this.form.elements.namedItem(name).value.trim()])),
      page: '1',
    }), TYPING_PAUSE_MS);
    this.typed = typed;
    for (const name of filters) {
      const input = this.form.elements.namedItem(name);
      input.addEventListener(isText(input) ? 'input' : 'change', () => {
        if (isText(input)) typed();
        else this.apply({ [name]: input.value, page: '1' });
      });
    }
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      typed.cancel();
      this.apply({ ...this.formValues(), page: '1' });
    });
    this.form.querySelector('[data-clear-filters]').addEventListener('click', () => this.clearFilters());
  }

  /** Shows the view for the current URL. */
  show() {
    this.active = true;
    this.section.hidden = false;
    this.state = this.url.read();
    this.syncControls();
    return this.load();
  }

  hide() {
    this.active = false;
    this.typed.cancel();
    this.controller?.abort();
    this.section.hidden = true;
  }

  formValues() {
    return Object.fromEntries(this.filters.map((name) => {
      const input = this.form.elements.namedItem(name);
      return [name, input.value.trim()];
    }));
  }

  filtered() {
    return this.filters.some((name) => this.state[name] !== this.defaults[name]);
  }

  clearFilters() {
    for (const name of this.filters) this.form.elements.namedItem(name).value = this.defaults[name];
    this.typed.cancel();
    this.apply({ ...Object.fromEntries(this.filters.map((n) => [n, this.defaults[n]])), page: '1' });
  }

  /** Changes the view: a new history entry (so Back undoes it), then a load. */
  apply(changes, { replace = false } = {}) {
    if (!this.active) return;
    this.state = { ...this.state, ...changes };
    this.url.write(this.state, { replace });
    this.syncControls();
    this.load();
  }

  syncControls() {
    for (const name of this.filters) {
      const input = this.form.elements.namedItem(name);
      // Leave the field being typed in alone, unless the URL says otherwise.
      if (input.value.trim() !== this.state[name]) input.value = this.state[name];
    }
  }

  /** Loads the rows for the current state; a newer load supersedes this one. */
  load() {
    const loading = this.loadNow();
    this.loading = loading;
    return loading;
  }

  /** Resolves once no load is in flight (the rows on the page are the latest). */
  async settled() {
    let seen;
    do {
      seen = this.loading;
      await seen?.catch(() => {});
    } while (seen !== this.loading);
  }

  async loadNow() {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.table.setAttribute('aria-busy', 'true');
    this.wrap.classList.add('is-loading');
    if (!this.body.rows.length) {
      this.wrap.hidden = true;
      showState(this.panel, { kind: 'loading', title: `Loading ${this.noun}…` });
    }
    let page;
    try {
      page = await this.fetch(this.state, controller.signal);
    } catch (error) {
      if (controller.signal.aborted) return;
      this.finishLoading();
      if (!error.endsSession) this.showError(error);
      return;
    }
    if (controller.signal.aborted) return;
    // Past the last page (a bookmark, or the last row of the last page deleted).
    if (page.items.length === 0 && page.total > 0 && page.page > page.total_pages) {
      this.apply({ page: String(page.total_pages) }, { replace: true });
      return;
    }
    this.finishLoading();
    this.render(page);
  }

  finishLoading() {
    this.table.setAttribute('aria-busy', 'false');
    this.wrap.classList.remove('is-loading');
  }

  render(page) {
    this.body.replaceChildren(...this.rows(page.items));
    // For measurements: when the rows were in the document (ms from navigation start).
    performance.mark('keygate:rendered');
    this.pager.render(page);
    if (page.items.length) {
      hideState(this.panel);
      this.wrap.hidden = false;
    } else {
      this.wrap.hidden = true;
      const filtered = this.filtered();
      showState(this.panel, { kind: 'empty', ...this.empty(filtered) });
    }
    this.section.dispatchEvent(new CustomEvent('rendered', { detail: page }));
  }

  showError(error) {
    this.body.replaceChildren();
    this.wrap.hidden = true;
    this.section.querySelector('.pager').hidden = true;
    const badQuery = error.code === 'invalid_query';
    showState(this.panel, {
      kind: 'error',
      title: badQuery ? `These filters cannot be applied` : `Could not load ${this.noun}`,
      text: error.message,
      actions: badQuery
        ? [{ label: 'Reset the view', primary: true, onClick: () => this.reset() }]
        : [{ label: 'Try again', primary: true, onClick: () => this.load() }],
    });
  }

  /** Back to the defaults (for a URL with parameters the API refuses). */
  reset() {
    for (const name of this.filters) this.form.elements.namedItem(name).value = this.defaults[name];
    this.apply({ ...this.defaults });
  }
}
