// Times and counts as people read them. Times are shown in the browser's own
// time zone; the exact time (with its zone) is always in the `title`.

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
const exact = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'long' });
const short = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat('en', { dateStyle: 'medium' });
const zoned = new Intl.DateTimeFormat('en-GB', {
  day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short',
});

const MINUTE = 60;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** "just now", "3 minutes ago", "yesterday", "in 5 days", "2 years ago". */
export function relativeTime(iso, now = Date.now()) {
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  const size = Math.abs(seconds);
  if (size < 45) return 'just now';
  if (size < 45 * MINUTE) return relative.format(Math.round(seconds / MINUTE), 'minute');
  if (size < 22 * HOUR) return relative.format(Math.round(seconds / HOUR), 'hour');
  if (size < 45 * DAY) return relative.format(Math.round(seconds / DAY), 'day');
  if (size < 320 * DAY) return relative.format(Math.round(seconds / (30 * DAY)), 'month');
  return relative.format(Math.round(seconds / (365 * DAY)), 'year');
}

/** "Nov 26, 2026, 5:00:00 PM UTC" */
export const exactTime = (iso) => exact.format(new Date(iso));

/** "Nov 26, 2026, 5:00 PM" */
export const shortTime = (iso) => short.format(new Date(iso));

/** "1 Dec 2026, 03:00 UTC": a moment stated in a sentence, with its zone. */
export const zonedTime = (iso) => zoned.format(new Date(iso));

/** "Nov 26, 2026" */
export const shortDate = (iso) => dateOnly.format(new Date(iso));

/** "26–50 of 123" */
export function rangeText(page, perPage, total) {
  if (total === 0) return '0 of 0';
  const first = Math.min((page - 1) * perPage + 1, total);
  const last = Math.min(page * perPage, total);
  return `${first}–${last} of ${total}`;
}

/** A `datetime-local` value (local time) as RFC 3339 UTC, without fractions. */
export function localToRfc3339(value) {
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) return null;
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** RFC 3339 as a `datetime-local` value in local time, to the minute: "2026-12-01T17:00". */
export function rfc3339ToLocal(iso) {
  const time = new Date(iso);
  if (Number.isNaN(time.getTime())) return '';
  const two = (n) => String(n).padStart(2, '0');
  return `${time.getFullYear()}-${two(time.getMonth() + 1)}-${two(time.getDate())}`
    + `T${two(time.getHours())}:${two(time.getMinutes())}`;
}

/** "1 key", "2 keys" */
export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
