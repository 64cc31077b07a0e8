// The audit trail: newest first, filtered by user, key, action and dates.

import * as api from './api.js';
import { exactTime, shortTime, zonedTime } from './format.js';
import { ListView } from './list.js';
import { channelName } from './removals.js';
import { h, relativeTimeElement } from './ui.js';

const DEFAULTS = {
  user: '',
  key_id: '',
  action: '',
  from: '',
  to: '',
  page: '1',
  per_page: '25',
};
const FILTERS = ['user', 'key_id', 'action', 'from', 'to'];

const ACTIONS = {
  'key.created': 'Key created',
  'key.deleted': 'Key deleted',
  'key.used': 'Key used',
  'key.revoked': 'Key revoked',
  'user.removed': 'User removed',
  'user.reactivated': 'User reactivated',
  'key.updated': 'Key edited',
  'key.transferred': 'Key transferred',
  'key.rolled': 'Secret rolled',
  'service_account.created': 'Service account created',
  'service_account.deleted': 'Service account deleted',
};

const FIELD_NAMES = { name: 'name', description: 'description', expires_at: 'expiry' };

let view;

export function mount() {
  view = new ListView({
    section: document.getElementById('audit-view'),
    defaults: DEFAULTS,
    filters: FILTERS,
    fetch: (state, signal) => api.listAudit(state, signal),
    rows: (items) => items.map(entryRow),
    empty: (filtered) => filtered
      ? {
          title: 'No audit entries match these filters',
          text: 'Change or clear the filters to see more.',
          actions: [{ label: 'Clear filters', onClick: () => view.clearFilters() }],
        }
      : { title: 'No activity yet', text: 'Creating, using and deleting keys is recorded here.' },
    noun: 'the audit trail',
  });
}

export const show = () => view.show();
export const hide = () => view.hide();

function entryRow(entry) {
  return h('tr', { 'data-entry-id': entry.id, 'data-action': entry.action },
    h('td', { class: 'when' },
      h('time', { datetime: entry.at, title: exactTime(entry.at) }, shortTime(entry.at)),
      h('span', { class: 'muted' }, relativeTimeElement(entry.at))),
    h('td', { class: 'user' }, entry.user),
    h('td', { class: 'action' },
      h('span', { class: `badge badge-${entry.action.replace('.', '-')}` }, ACTIONS[entry.action] ?? entry.action)),
    h('td', { class: 'key' }, entry.key_id
      ? [
          h('span', { class: 'key-name' }, entry.key_name ?? ''),
          h('a', {
            href: `/audit?key_id=${encodeURIComponent(entry.key_id)}`,
            'data-nav': '',
            class: 'mono key-id',
            title: 'Only this key',
          }, entry.key_id),
        ]
      : h('span', { class: 'muted' }, '—')),
    h('td', { class: 'details' }, details(entry)));
}

function details(entry) {
  const d = entry.details ?? {};
  if (entry.action === 'key.used') {
    const call = [d.method, d.path].filter(Boolean).join(' ');
    return [
      call ? h('code', {}, call) : 'Verified',
      d.source_ip ? [' from ', h('code', {}, d.source_ip)] : null,
    ];
  }
  if (entry.action === 'user.removed') {
    const through = `Through ${channelName(entry)}`;
    return typeof d.revoked_keys === 'number'
      ? `${through}: ${d.revoked_keys} ${d.revoked_keys === 1 ? 'key' : 'keys'} revoked`
      : through;
  }
  if (entry.action === 'key.transferred' && d.from && d.to) return ['From ', h('code', {}, d.from), ' to ', h('code', {}, d.to)];
  if (entry.action === 'key.updated' && Array.isArray(d.fields)) {
    return `Changed ${d.fields.map((f) => FIELD_NAMES[f] ?? f).join(', ')}`;
  }
  if (entry.action === 'key.rolled' && d.previous_secret_expires_at) {
    return Date.parse(d.previous_secret_expires_at) <= Date.parse(entry.at)
      ? 'The previous secret stopped at once'
      : ['Previous secret valid until ',
          h('time', { datetime: d.previous_secret_expires_at, title: exactTime(d.previous_secret_expires_at) },
            zonedTime(d.previous_secret_expires_at))];
  }
  if (entry.action.startsWith('service_account.') && d.name) {
    return [d.name, ' ', h('code', { class: 'muted' }, d.service_account_id ?? '')];
  }
  if (d.reason === 'owner_removed') return 'Owner removed';
  if (d.reason === 'owner_deleted') return 'Its service account was deleted';
  const pairs = Object.entries(d).filter(([, v]) => v !== null && v !== '');
  return pairs.length
    ? h('span', { class: 'muted' }, pairs.map(([k, v]) => `${k.replaceAll('_', ' ')}: ${v}`).join(', '))
    : h('span', { class: 'muted' }, '—');
}
