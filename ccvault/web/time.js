/**
 * Times as the site's configured zone shows them — never the browser's: a guard in another
 * zone, or a laptop set wrong, must read the same clock as the footage and the CLI. The API
 * speaks UTC; Intl formats in `zone`, which the session names.
 */
import { locale, t } from './i18n.js';

let zone = 'UTC';
const formats = new Map();

export function setZone(name) {
  zone = name;
  formats.clear();
}

export function currentZone() {
  return zone;
}

function parts(ms, options) {
  const key = JSON.stringify(options);
  if (!formats.has(key)) {
    const format = { timeZone: zone, hourCycle: 'h23', ...options };
    formats.set(key, new Intl.DateTimeFormat(locale, format));
  }
  return Object.fromEntries(formats.get(key).formatToParts(ms).map((p) => [p.type, p.value]));
}

/** YYYY-MM-DD: the local calendar day the instant falls on. */
export function localDate(ms) {
  const p = parts(ms, { year: 'numeric', month: '2-digit', day: '2-digit' });
  return `${p.year}-${p.month}-${p.day}`;
}

/** HH:MM or HH:MM:SS, local. */
export function clock(ms, seconds = true) {
  const p = parts(ms, { hour: '2-digit', minute: '2-digit',
    ...(seconds ? { second: '2-digit' } : {}) });
  return seconds ? `${p.hour}:${p.minute}:${p.second}` : `${p.hour}:${p.minute}`;
}

/** The zone's abbreviation at that instant (CET, CEST, JST…): tells a repeated hour apart. */
export function zoneName(ms) {
  return parts(ms, { timeZoneName: 'short' }).timeZoneName;
}

/** Date, time and zone: unambiguous on a day when the clocks change. */
export function dateTime(ms) {
  return `${localDate(ms)} ${clock(ms)} ${zoneName(ms)}`;
}

/** The calendar day `days` after `date` (YYYY-MM-DD), whatever the zone does that day. */
export function addDays(date, days) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/** The API's form: YYYY-MM-DDTHH:MM:SS.sssZ. */
export function iso(ms) {
  return new Date(ms).toISOString();
}

/** A length of time people read: "15 s", "2 min 5 s", "1 h 3 min". */
export function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return t('dur_s', { s });
  if (s < 3600) return t('dur_min_s', { m: Math.floor(s / 60), s: s % 60 });
  return t('dur_h_min', { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
}
