/**
 * Every evidence export (operator): who exported which cameras and range, when and why, where
 * the bundle is, its state and its verification — read from the catalog, so exports made by
 * the CLI, before a restart or on another node are here too. A bundle still kept can be
 * downloaded again (audited like any download).
 */
import * as api from './api.js';
import { h } from './dom.js';
import { t } from './i18n.js';
import { clock, dateTime } from './time.js';

const COLUMNS = ['id', 'created', 'actor', 'what', 'range', 'reason', 'state', 'where',
  'manifest', 'verification'];

export async function exportsView(root) {
  const jobs = await api.get('/api/exports');
  const body = h('tbody', {}, jobs.map(row));
  root.append(h('h1', {}, t('exports_title')), h('p', { class: 'hint' }, t('exports_hint')),
    jobs.length ? h('table', { class: 'exports' },
      h('thead', {}, h('tr', {}, COLUMNS.map((k) => h('th', { scope: 'col' }, t(`exp_${k}`))))),
      body) : h('p', {}, t('exports_none')));
}

function row(job) {
  const from = Date.parse(job.from);
  const to = Date.parse(job.to);
  const check = job.verification;
  const what = job.visit === null ? job.cameras.join(', ')
    : `${job.cameras.join(', ')} (${t('visit_n', { id: job.visit })})`;
  const state = job.state === 'failed' ? t('export_failed', { error: job.error ?? '' })
    : t(`export_${job.state}`);
  const verdict = [t(`verify_${check.state}`),
    check.checked ? t('verify_checked', { time: dateTime(Date.parse(check.checked)) }) : '',
    check.problem ?? ''].filter(Boolean).join(' · ');
  return h('tr', { dataset: { export: job.id, state: job.state, verification: check.state } },
    h('td', {}, String(job.id)),
    h('td', {}, dateTime(Date.parse(job.created))),
    h('td', {}, job.actor),
    h('td', {}, what),
    h('td', {}, `${dateTime(from)} – ${clock(to)}`),
    h('td', { class: 'reason' }, job.reason),
    h('td', {}, state),
    h('td', {}, job.available
      ? h('a', { href: `/api/exports/${job.id}/download`, download: '' }, job.bundle)
      : job.bundle, job.node ? h('span', { class: 'hint' }, ` (${t('mark_node', { node: job.node })})`) : ''),
    h('td', { class: 'sha', title: job.manifest_sha256 ?? '' },
      job.manifest_sha256 ? job.manifest_sha256.slice(0, 16) : '–'),
    h('td', { class: `verify ${check.state}` }, verdict));
}
