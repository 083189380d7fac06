/**
 * What can be done with a selected range, a hold or a visit: play it, and for operators export
 * it as evidence (reason, progress, download) or hold it, or release a hold. Viewers get no such
 * controls at all — the API would refuse them anyway. Exports started here stay listed while
 * the page is open.
 */
import * as api from './api.js';
import { button, h } from './dom.js';
import { t } from './i18n.js';
import { clock, dateTime, duration, iso } from './time.js';
import { personText, visitStart, visitText } from './timeline.js';

const POLL_MS = 1000;

export class SelectionPanel {
  /** onPlay(camera, ms); onChanged(): holds changed, the day should be read again;
   * onCamera(camera, visit): play another camera of the visit's room. */
  constructor(root, session, { onPlay, onChanged, onCamera }) {
    this.session = session;
    this.onPlay = onPlay;
    this.onChanged = onChanged;
    this.onCamera = onCamera;
    this.body = h('div', {}, h('p', { class: 'hint' }, t('selection_none')));
    this.jobs = h('ul', { class: 'jobs' });
    this.stopped = false; // the page moved on: stop polling
    this.title = h('h2', {}, t('selection_title'));
    root.append(h('section', { class: 'panel selection' }, this.title, this.body, this.jobs));
  }

  stop() {
    this.stopped = true;
  }

  clear() {
    this.show('selection_title', h('p', { class: 'hint' }, t('selection_none')));
  }

  /** The panel's heading (what is selected: a range, a hold, a visit) and its contents. */
  show(title, ...children) {
    this.title.textContent = t(title);
    this.body.replaceChildren(...children);
  }

  /** A click handler that runs `fn(reason)` only with a reason given, and says what the
   * server answered when it refuses (its message, and the field it names). */
  reasoned(reason, message, fn) {
    return async () => {
      if (!reason.value.trim()) {
        message.textContent = t('reason_needed');
        message.classList.add('error');
        reason.focus();
        return;
      }
      message.textContent = '';
      message.classList.remove('error');
      try {
        await fn(reason.value.trim());
        reason.value = '';
      } catch (err) {
        message.textContent = t('error', { message: err.field
          ? t('error_field', { message: err.message, field: err.field }) : err.message });
        message.classList.add('error');
      }
    };
  }

  showRange(camera, from, to) {
    const message = h('p', { class: 'message', role: 'status' });
    const reason = h('textarea', { id: 'reason', rows: 2, maxlength: 1000 });
    const act = (fn) => this.reasoned(reason, message, fn);
    const operator = this.session.can('operator') ? h('div', {},
      h('label', { for: 'reason' }, t('reason')), reason,
      h('p', { class: 'actions' },
        button(t('export_range'), act((why) => this.exportRange(camera, from, to, why)),
          { class: 'primary' }),
        button(t('hold_range'), act((why) => this.holdRange(camera, from, to, why, message)))))
      : h('p', { class: 'hint' }, t('operator_only'));
    this.show('selection_title',
      h('p', { class: 'range', dataset: { from, to, camera } },
        h('strong', {}, camera), ' ', `${dateTime(from)} – ${clock(to)}`, ' ',
        h('span', { class: 'hint' }, `(${duration(to - from)})`)),
      h('p', { class: 'actions' }, button(t('play_range'), () => this.onPlay(camera, from))),
      operator, message);
  }

  showHold(hold, camera) {
    const message = h('p', { class: 'message', role: 'status' });
    const reason = h('textarea', { id: 'release-reason', rows: 2, maxlength: 1000 });
    const release = async () => {
      if (!reason.value.trim()) {
        message.textContent = t('reason_needed');
        reason.focus();
        return;
      }
      try {
        const body = { reason: reason.value.trim() };
        await api.call('DELETE', `/api/holds/${hold.id}`, { body });
        this.clear();
        this.onChanged();
      } catch (err) {
        message.textContent = t('error', { message: err.message });
      }
    };
    const cameras = hold.cameras.length ? hold.cameras.join(', ') : t('all_cameras');
    this.show('hold_title',
      h('p', {}, h('strong', {}, t('hold_n', { id: hold.id })), ' ', cameras),
      h('p', {}, `${dateTime(hold.from_ms)} – ${dateTime(hold.to_ms)}`),
      h('p', {}, t('hold_reason', { reason: hold.reason, actor: hold.actor })),
      hold.until_ms ? h('p', {}, t('hold_until', { time: dateTime(hold.until_ms) })) : '',
      h('p', { class: 'actions' },
        button(t('play_range'), () => this.onPlay(camera, hold.from_ms))),
      this.session.can('operator') ? h('div', {},
        h('label', { for: 'release-reason' }, t('release_reason')), reason,
        h('p', { class: 'actions' }, button(t('release_hold'), release))) : '',
      message);
  }

  /** A visit: who, when, which doors; play it on each of the room's cameras; export it whole. */
  showVisit(visit, camera, cameras) {
    const message = h('p', { class: 'message', role: 'status' });
    const reason = h('textarea', { id: 'visit-reason', rows: 2, maxlength: 1000 });
    const facts = [[t('visit_room'), visit.room], [t('visit_doors'), visit.doors.join(', ')],
      [t('visit_escorted_by'), visit.escorted_by.join(', ')]].filter(([, value]) => value);
    this.show('visit_title',
      h('p', { class: 'visit-info', dataset: { visit: visit.id, camera } },
        h('strong', {}, t('visit_n', { id: visit.id })), ' ', visitText(visit)),
      h('dl', { class: 'facts' }, facts.map(([key, value]) => [h('dt', {}, key), h('dd', {}, value)])),
      h('p', { class: 'actions' },
        button(t('play_entry'), () => this.onPlay(camera, visitStart(visit))),
        cameras.filter((c) => c !== camera).map((c) =>
          button(t('play_camera', { camera: c }), () => this.onCamera(c, visit)))),
      this.session.can('operator') ? h('div', {},
        h('label', { for: 'visit-reason' }, t('reason')), reason,
        h('p', { class: 'actions' }, button(t('export_visit'),
          this.reasoned(reason, message, (why) => this.exportVisit(visit, why)),
          { class: 'primary' })))
        : h('p', { class: 'hint' }, t('operator_only')),
      message);
  }

  async holdRange(camera, from, to, reason, message) {
    const hold = await api.call('POST', '/api/holds', {
      body: { cameras: [camera], from: iso(from), to: iso(to), reason },
    });
    message.textContent = t('hold_placed', { id: hold.id });
    this.onChanged();
  }

  async exportRange(camera, from, to, reason) {
    const job = await api.call('POST', '/api/exports', { body: { camera, from, to, reason } });
    this.follow(job, `${camera} ${dateTime(from)} – ${clock(to)}`);
  }

  /** The whole visit (its room's cameras, entry to exit, padded): the server works out what. */
  async exportVisit(visit, reason) {
    const job = await api.call('POST', '/api/exports', { body: { visit: visit.id, reason } });
    this.follow(job, t('visit_export', { id: visit.id, person: personText(visit) }));
  }

  /** An export job listed with its progress until done, then its download. */
  follow(job, label) {
    const progress = h('progress', { max: 1, value: 0 });
    const state = h('span', { class: 'state' });
    const item = h('li', { dataset: { export: job.id } },
      h('strong', {}, t('export_n', { id: job.id })), ' ', label, h('br'), progress, ' ', state);
    this.jobs.prepend(item);
    const update = (current) => {
      progress.value = current.progress;
      item.dataset.state = current.state;
      state.textContent = current.state === 'failed'
        ? t('export_failed', { error: current.error ?? '' })
        : `${t(`export_${current.state}`)} ${Math.round(current.progress * 100)}%`;
      if (current.state === 'done' && current.available) {
        const href = `/api/exports/${current.id}/download`;
        item.append(' ', h('a', { class: 'button primary', href, download: '' },
          t('download_bundle')));
      }
      return current.state === 'done' || current.state === 'failed';
    };
    const poll = async () => {
      if (this.stopped) return;
      let finished = false;
      try {
        finished = update(await api.get(`/api/exports/${job.id}`));
      } catch (err) {
        state.textContent = t('error', { message: err.message });
      }
      if (!finished) setTimeout(poll, POLL_MS);
    };
    if (!update(job)) setTimeout(poll, POLL_MS);
  }
}
