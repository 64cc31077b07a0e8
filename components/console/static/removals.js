// Removed users, as the audit trail tells it: by which channel (the identity
// webhook, SCIM, an Okta Event Hook, Shared Signals) and when a user was
// removed, and how many keys that revoked. The overview says so above the
// table when its owner filter names a removed user, and a key revoked at its
// owner's removal says through which channel.

import * as api from './api.js';
import { exactTime, plural, zonedTime } from './format.js';
import { h } from './ui.js';

/** `details.channel` of `user.removed`, as people read it. */
export const CHANNELS = {
  webhook: 'the identity webhook',
  scim: 'SCIM provisioning',
  okta: 'an Okta Event Hook',
  ssf: 'Shared Signals (SSF)',
};

/** The delivery-id prefixes of the channels, for entries written before `channel` was. */
const PREFIXES = [['scim:', 'scim'], ['okta:', 'okta'], ['ssf:', 'ssf']];

/** `webhook`, `scim`, `okta` or `ssf`: the channel of a `user.removed` entry. */
export function channelOf(entry) {
  const details = entry?.details ?? {};
  if (typeof details.channel === 'string' && details.channel) return details.channel;
  const delivery = String(details.webhook_id ?? '');
  return PREFIXES.find(([prefix]) => delivery.startsWith(prefix))?.[1] ?? 'webhook';
}

/** "SCIM provisioning", "the identity webhook", …; an unknown channel by its own name. */
export const channelName = (entry) => {
  const channel = channelOf(entry);
  return CHANNELS[channel] ?? channel.replaceAll('_', ' ');
};

/**
 * User ids match case-insensitively (ASCII), so the cache does too. Only
 * removals are kept: a user not removed now may be removed later.
 */
const removals = new Map();
const cacheKey = (user) => user.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** The newest audit entry of `action` for `user`, or null. */
async function newest(user, action, signal) {
  const page = await api.listAudit({ user, action, per_page: 1 }, signal);
  return page?.items?.[0] ?? null;
}

/**
 * The user's newest `user.removed` entry, or null when they were never
 * removed. Asked once per user while found (`fresh` asks again); concurrent
 * calls share one request.
 */
export function removalOf(user, { fresh = false } = {}) {
  const id = cacheKey(user);
  const cached = removals.get(id);
  if (cached && !(fresh && cached.settled)) return cached.promise;
  const entry = { settled: false, promise: null };
  entry.promise = newest(user, 'user.removed').then(
    (found) => {
      entry.settled = true;
      if (!found && removals.get(id) === entry) removals.delete(id);
      return found;
    },
    (error) => {
      if (removals.get(id) === entry) removals.delete(id);
      throw error;
    },
  );
  removals.set(id, entry);
  return entry.promise;
}

/**
 * What the overview says about `user`, filtered by them, when they are
 * removed: by which channel and when, and how many keys that revoked. With
 * `summary` (GET /api/users/{id}, whose `removed_at` is the removal in force)
 * the time is that removal's; the audit trail's `user.removed`, written once
 * per user, names its channel when it is the same removal (a user readmitted
 * through SCIM and removed again has only the first). Without a summary,
 * null when the trail has no removal. Rejects when the trail cannot be read.
 */
export async function removalNotice(user, summary = null) {
  const removed = await removalOf(user, { fresh: true });
  if (!removed && !summary?.removed_at) return null;
  const at = summary?.removed_at ?? removed.at;
  const same = removed && Math.abs(Date.parse(removed.at) - Date.parse(at)) < 1000;
  const who = (same && removed.user) || summary?.user_id || user;
  const count = same ? removed.details?.revoked_keys : undefined;
  const revoked = typeof count !== 'number' ? '.'
    : count === 0 ? ' — they had no keys to revoke.'
      : count === 1 ? ' — their 1 key was revoked.'
        : ` — their ${plural(count, 'key')} were revoked.`;
  const trail = `/audit?${new URLSearchParams({ user: who })}`;
  return [
    h('p', { class: 'notice-text' },
      `${who} was removed`, same ? ` through ${channelName(removed)}` : '', ' on ',
      h('time', { datetime: at, title: exactTime(at) }, zonedTime(at)),
      revoked),
    h('p', { class: 'notice-link' },
      h('a', { href: trail, 'data-nav': '' }, `See ${who}'s audit trail`)),
  ];
}
