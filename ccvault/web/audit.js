/**
 * The audit log (admin): filter by user, action and time — typed in the site's zone, read by
 * the API like every command reads times — a page at a time, oldest first.
 */
import * as api from './api.js';
import { button, h } from './dom.js';
import { t } from './i18n.js';
import { clock, currentZone, dateTime, localDate } from './time.js';

const PAGE = 50;
const DAY_MS = 86_400_000;

export async function auditView(root) {
  const field = (id, placeholder = '') => h('input', { id, name: id, type: 'text', placeholder });
  // Times are text: the API reads 'yesterday 22:00' or '2026-03-29 09:00' in the site's zone.
  const inputs = { user: field('user'), action: field('action'),
    from: field('from', t('time_example')), to: field('to', t('time_example')) };
  // The last day first (the log runs oldest first): the site's wall time, as the API reads it.
  const since = Date.now() - DAY_MS;
  inputs.from.value = `${localDate(since)} ${clock(since, false)}`;
  const body = h('tbody');
  const message = h('p', { class: 'message', role: 'status' });
  const earlier = button(t('page_prev'), () => show(pages.pop() ?? null, false));
  const later = button(t('page_next'), () => show(next, true));
  let filters = { from: inputs.from.value };
  let cursor = null; // of the page shown
  let next = null;
  let pages = []; // cursors of the pages before it

  async function show(at, forward) {
    let page;
    try {
      page = await api.get('/api/audit', { ...filters, cursor: at, limit: PAGE });
    } catch (err) {
      message.textContent = t('error', { message: err.message });
      return;
    }
    if (forward) pages.push(cursor);
    cursor = at;
    next = page.next_cursor;
    message.textContent = page.records.length ? '' : t('audit_empty');
    body.replaceChildren(...page.records.map((r) => h('tr', { dataset: { action: r.action } },
      h('td', {}, String(r.seq)), h('td', {}, dateTime(Date.parse(r.time))), h('td', {}, r.actor),
      h('td', {}, r.action), h('td', {}, r.object),
      h('td', { class: 'details' }, JSON.stringify(r.details)))));
    earlier.disabled = cursor === null;
    later.disabled = next === null;
  }

  const search = (ev) => {
    ev.preventDefault();
    filters = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
    pages = [];
    cursor = null;
    show(null, false);
  };
  root.append(h('h1', {}, t('audit_title')),
    h('form', { class: 'filters', method: 'post', onsubmit: search },
      Object.entries(inputs).map(([key, el]) => h('label', {}, t(`audit_${key}`), el)),
      h('button', { type: 'submit', class: 'primary' }, t('filter')),
      h('span', { class: 'hint' }, t('times_in', { zone: currentZone() }))),
    message,
    h('table', { class: 'audit' },
      h('thead', {}, h('tr', {}, ['seq', 'time', 'actor', 'action', 'object', 'details']
        .map((k) => h('th', {}, t(`col_${k}`))))), body),
    h('p', { class: 'actions' }, earlier, later));
  await show(null, false);
}
