/**
 * Storage at a glance: each volume's free space and headroom, each camera's forecast against
 * the days policy promises it (min_days), and the alerts firing now.
 */
import * as api from './api.js';
import { h } from './dom.js';
import { t } from './i18n.js';
import { dateTime } from './time.js';

// Sizes come as text from the API (`*_text`): one formatter for CLI, API and page, binary
// units (GiB, MiB) only.
function days(n) {
  return n === null || n === undefined ? '–' : t('n_days', { n: n.toFixed(1) });
}

function table(head, rows) {
  return h('table', {}, h('thead', {}, h('tr', {}, head.map((k) => h('th', {}, t(k))))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))))));
}

export async function storageView(root) {
  const [status, alerts] = await Promise.all([api.get('/api/status'), api.get('/api/alerts')]);
  const volumes = table(['volume', 'role', 'state', 'free', 'footage', 'forecast_days', 'headroom'],
    status.volumes.map((v) => [
      v.name, v.role, h('span', { class: `state ${v.state}` },
        t(`vstate_${v.state}`) + (v.reason ? `: ${v.reason}` : '')),
      v.total_bytes ? `${v.free_text} / ${v.total_text}`
        + ` (${Math.round((v.free_bytes / v.total_bytes) * 100)}%)` : '–',
      v.footage_text, days(v.forecast?.days), days(v.forecast?.headroom_days)]));
  const cameras = table(['camera', 'state', 'per_day', 'forecast_days', 'min_days', 'verdict'],
    status.cameras.map((c) => [
      c.name, h('span', { class: `state ${c.state}` }, t(`state_${c.state}`)),
      c.forecast.bytes_per_day_text, days(c.forecast.forecast_days), days(c.forecast.min_days),
      c.forecast.at_risk ? h('span', { class: 'bad' }, t('at_risk'))
        : h('span', { class: 'good' },
          c.forecast.forecast_days === null ? t('no_rate') : t('ok'))]));
  const firing = alerts.active.length
    ? h('ul', { class: 'alerts' }, alerts.active.map((a) => h('li',
      { class: `severity ${a.severity}` },
      h('strong', {}, `${t(`severity_${a.severity}`)} · ${a.name}`), ' ', a.summary, ' ',
      h('span', { class: 'hint' }, t('since', { time: dateTime(Date.parse(a.started)) })))))
    : h('p', { class: 'good' }, t('no_alerts'));
  root.append(h('h1', {}, t('storage_title')),
    status.daemon.running ? '' : h('p', { class: 'error' }, t('daemon_down')),
    h('h2', {}, t('alerts_title')), firing,
    h('h2', {}, t('volumes_title')), volumes,
    h('h2', {}, t('forecast_title')), h('p', { class: 'hint' }, t('forecast_hint')), cameras);
}
