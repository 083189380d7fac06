/**
 * A day of footage: the cameras stacked on one timeline, the player, the day's motion events of
 * the focused camera and what can be done with a selected range. The way to an event: pick the
 * day (or step to the previous motion, across days), click it to play, export the selection.
 * A camera that watches a room ([[access.rooms]]) also shows the room's door events and visits:
 * a visit plays from its entry and can be exported whole.
 */
import * as api from './api.js';
import { button, h } from './dom.js';
import { t } from './i18n.js';
import { Player } from './player.js';
import { SelectionPanel } from './selection.js';
import { addDays, clock, currentZone, duration, iso, localDate } from './time.js';
import { legend, people, Timeline, visitStart } from './timeline.js';

const PAD_MS = 2000; // an event's selection starts and ends this much around its motion
const REFRESH_MS = 60_000; // today's timeline is read again this often

export async function dayView(root, params, session) {
  const listed = await api.get('/api/cameras');
  const cameras = listed.map((c) => c.name);
  const roomOf = new Map(listed.filter((c) => c.room).map((c) => [c.name, c.room]));
  if (!cameras.length) {
    root.append(h('p', {}, t('no_cameras')));
    return null;
  }
  const state = {
    date: /^\d{4}-\d{2}-\d{2}$/.test(params.date ?? '') ? params.date : localDate(Date.now()),
    camera: cameras.includes(params.camera) ? params.camera : cameras[0],
    shown: new Set(cameras),
    day: null,
    rows: new Map(),
    cursor: null, // where previous/next motion step from: the last moment picked or played
    event: null, // the motion event shown last
    loads: 0, // only the answer to the latest load is shown
  };

  const dateInput = h('input', { type: 'date', value: state.date, 'aria-label': t('date'),
    onchange: () => dateInput.value && load(dateInput.value) });
  const dayNote = h('span', { class: 'day-note' });
  const cameraPicker = h('fieldset', { class: 'shown' }, h('legend', {}, t('cameras_shown')),
    cameras.map((name) => h('label', {}, h('input', {
      type: 'checkbox', checked: true, value: name,
      onchange: (ev) => {
        if (ev.target.checked) state.shown.add(name);
        else state.shown.delete(name);
        load(state.date, true);
      },
    }), name)));
  const focusLabel = h('strong', { class: 'focus-camera' });
  const eventsTitle = h('h2', {});
  const events = h('ol', { class: 'events' });
  const message = h('p', { class: 'message', role: 'status' });

  const today = () => localDate(Date.now());
  const toolbar = h('div', { class: 'toolbar' },
    h('div', { class: 'group' },
      button('◀', () => load(addDays(state.date, -1)), { title: t('prev_day') }),
      dateInput,
      button('▶', () => load(addDays(state.date, 1)), { title: t('next_day') }),
      button(t('today'), () => load(today())),
      button(t('yesterday'), () => load(addDays(today(), -1)))),
    h('div', { class: 'group' }, focusLabel,
      button(t('prev_motion'), () => step(false), { class: 'primary' }),
      button(t('next_motion'), () => step(true), { class: 'primary' })),
    h('div', { class: 'group' },
      button('+', () => timeline.zoom(0.25), { title: t('zoom_in') }),
      button('−', () => timeline.zoom(4), { title: t('zoom_out') }),
      button('«', () => timeline.pan(-0.5), { title: t('earlier') }),
      button('»', () => timeline.pan(0.5), { title: t('later') }),
      button(t('whole_day'), () => timeline.wholeDay())));

  const stage = h('div', { class: 'stage' });
  const side = h('div', { class: 'side' });
  const below = h('div', { class: 'timeline-box' });
  root.append(h('h1', {}, t('day_title'), ' ', dayNote), toolbar, message, below, stage);
  stage.append(side);

  const player = new Player(stage, {
    onTime: (camera, ms) => {
      timeline.setPlayhead(camera, ms);
      // A cued picture is not a moment the user chose: steps still start from the day's end.
      if (camera === state.camera && !player.cued) state.cursor = ms;
    },
  });
  stage.prepend(player.el);
  const panel = new SelectionPanel(side, session, {
    onPlay: (camera, ms) => play(camera, ms),
    onChanged: () => load(state.date, true),
    onCamera: (camera, visit) => playInRoom(camera, visit),
  });
  side.append(h('section', { class: 'panel' }, eventsTitle, events));
  const timeline = new Timeline(below, {
    pick: (camera, ms) => {
      timeline.setSelection(null);
      panel.clear();
      play(camera, ms);
    },
    select: (camera, from, to) => {
      focus(camera);
      panel.showRange(camera, from, to);
    },
    hold: (hold, camera) => panel.showHold(hold, camera),
    visit: (visit, camera) => showVisit(visit, camera),
    focus: (camera) => focus(camera),
  });
  below.append(cameraPicker, legend(roomOf.size > 0));

  function focus(camera) {
    if (camera !== state.camera) state.cursor = state.event = null;
    state.camera = camera;
    focusLabel.textContent = camera;
    timeline.focus(camera);
    renderEvents();
    remember();
  }

  function remember() {
    const query = new URLSearchParams({ date: state.date, camera: state.camera });
    window.history.replaceState(null, '', `#/day?${query}`);
  }

  function play(camera, ms) {
    focus(camera);
    state.cursor = ms;
    player.play(camera, ms);
  }

  /** A visit: its details beside the player, and its camera playing from the entry. */
  function showVisit(visit, camera) {
    timeline.setSelection(null);
    panel.showVisit(visit, camera,
      cameras.filter((c) => roomOf.get(c) === visit.room && state.shown.has(c)));
    play(camera, visitStart(visit));
  }

  /** Another camera of the visit's room: from the moment playing now when that is the same
   * room (the same instant seen from elsewhere), else from the entry. */
  function playInRoom(camera, visit) {
    const at = player.position();
    play(camera, at && roomOf.get(at.camera) === visit.room ? at.ms : visitStart(visit));
  }

  /** Read the day for every shown camera; `keep`: same day, keep zoom and selection. */
  async function load(date, keep = false) {
    const mine = ++state.loads;
    message.textContent = '';
    const names = cameras.filter((c) => state.shown.has(c));
    let rows;
    let day;
    try {
      rows = await Promise.all(names.map(async (camera) => {
        const one = await api.get('/api/timeline', { camera, date });
        const spans = await api.get('/api/motion', { camera, from: one.start, to: one.end });
        return { camera, day: one, spans, holds: one.holds, covered: covered(one) };
      }));
      // With every camera hidden, the day's bounds still come from one (unaudited) timeline.
      day = rows[0]?.day ?? await api.get('/api/timeline', { camera: state.camera, date });
    } catch (err) {
      message.textContent = t('error', { message: err.message });
      return;
    }
    await readRooms(rows, day);
    if (mine !== state.loads) return;
    const sameDay = date === state.date;
    state.date = date;
    dateInput.value = date;
    state.rows = new Map(rows.map((r) => [r.camera, r]));
    if (!sameDay) state.cursor = state.event = null;
    state.day = day;
    const hours = Math.round(state.day.minutes / 60);
    dayNote.textContent = t('day_note', { date, zone: currentZone() })
      + (hours === 24 ? '' : ` — ${t('day_hours', { hours })}`);
    timeline.setDay(state.day, rows, keep && sameDay);
    if (!(keep && sameDay)) {
      timeline.setSelection(null);
      panel.clear();
    }
    focus(state.camera);
    if (!(keep && sameDay) && (player.cued || !player.position())) cue();
  }

  /** Before anything is played: the focused camera's latest motion that day (where "Previous
   * motion" leads first), else its first footage, shown paused — Play plays it. */
  function cue() {
    const row = state.rows.get(state.camera);
    const span = row?.spans.at(-1);
    const at = span ? span.start_ms - PAD_MS : row?.covered[0]?.[0];
    if (at !== undefined) player.cue(state.camera, at);
  }

  /** The door events and visits of the rooms the shown cameras watch, onto their rows. Without
   * them (the API refused, too many) the footage is still shown, and the problem said. */
  async function readRooms(rows, day) {
    const names = [...new Set(rows.map((r) => roomOf.get(r.camera)).filter(Boolean))];
    const rooms = new Map(names.map((room) => [room, { visits: [], doors: [] }]));
    if (!names.length) return;
    const range = { from: iso(day.start_ms), to: iso(day.end_ms) };
    try {
      const [events, ...visits] = await Promise.all([api.get('/api/access-events', range),
        ...names.map((room) => api.get('/api/visits', { ...range, room }))]);
      names.forEach((room, i) => {
        rooms.set(room, { visits: visits[i], doors: events.filter((e) => e.room === room) });
      });
    } catch (err) {
      message.textContent = t('access_error', { message: err.message });
    }
    for (const row of rows) {
      row.room = roomOf.get(row.camera) ?? null;
      Object.assign(row, rooms.get(row.room) ?? { visits: [], doors: [] });
    }
  }

  function covered(day) {
    const out = [];
    let at = day.start_ms;
    for (const gap of day.gaps) {
      if (gap.start_ms > at) out.push([at, gap.start_ms]);
      at = Math.max(at, gap.end_ms);
    }
    if (at < day.end_ms) out.push([at, day.end_ms]);
    return out;
  }

  function renderEvents() {
    const row = state.rows.get(state.camera);
    const spans = row ? row.spans : [];
    eventsTitle.textContent = t('events_title', { camera: state.camera, n: spans.length });
    events.replaceChildren(...spans.map((s) => h('li', { dataset: { startMs: s.start_ms } },
      h('span', { class: 'when' }, `${clock(s.start_ms)} – ${clock(s.end_ms)}`), ' ',
      h('span', { class: 'hint' }, `(${duration(s.end_ms - s.start_ms)})`), ' ',
      s.people_max === null || s.people_max === undefined ? ''
        : h('span', { class: 'people' }, `${people(s.people_max)} `),
      button(t('play_event'), () => showEvent(s)))));
    if (!spans.length) {
      events.append(h('li', { class: 'hint' }, row ? t('no_motion_day') : t('camera_hidden')));
    }
  }

  /** Zoom to an event, select it (ready to export) and play it. */
  function showEvent(span) {
    const from = span.start_ms - PAD_MS;
    const to = span.end_ms + PAD_MS;
    timeline.show(from, to);
    timeline.setSelection({ camera: state.camera, from, to });
    panel.showRange(state.camera, from, to);
    play(state.camera, from);
    state.event = span;
  }

  /** Where a step starts: the event being watched counts as its start, so "previous" never
   * finds the same event again; else the last moment picked or played, else the day's end
   * (previous) or start (next). */
  function reference(forward) {
    const { event, cursor, day } = state;
    if (event && cursor !== null && cursor >= event.start_ms - PAD_MS
        && cursor <= event.end_ms + PAD_MS) {
      return event.start_ms;
    }
    return cursor ?? (forward ? day.start_ms - 1 : Math.min(day.end_ms, Date.now()));
  }

  /** The previous or next motion of the focused camera, however many days away. */
  async function step(forward) {
    if (!state.day) return;
    const from = reference(forward);
    let span;
    try {
      span = await api.get(`/api/motion/${forward ? 'next' : 'prev'}`,
        { camera: state.camera, [forward ? 'after' : 'before']: iso(from) });
    } catch (err) {
      message.textContent = err.status === 404
        ? t(forward ? 'no_next_motion' : 'no_prev_motion', { camera: state.camera })
        : t('error', { message: err.message });
      return;
    }
    const date = localDate(span.start_ms);
    if (date !== state.date) await load(date);
    showEvent(span);
  }

  await load(state.date);
  const refresh = setInterval(() => {
    if (state.day && Date.now() < state.day.end_ms + REFRESH_MS) load(state.date, true);
  }, REFRESH_MS);
  return () => {
    clearInterval(refresh);
    player.stop();
    panel.stop();
  };
}
