/**
 * One local day as stacked camera rows on one time axis: footage (its absence shows as gaps),
 * motion spans (with the people counted on them), holds, a selected range and the playhead; a
 * camera that watches a room also shows the room's door events (marks) and visits (bars, each a
 * button: a click or Enter shows the visit and plays it from its entry). The axis is real elapsed time from
 * local midnight, so a day when the clocks change is 23 or 25 hours long and its labels show
 * the repeated or skipped hour, with the zone's name where it changes. Zoom runs from the whole
 * day down to one minute; a click picks a moment, a drag selects a range.
 */
import { button, h, place } from './dom.js';
import { t } from './i18n.js';
import { clock, zoneName } from './time.js';

const MIN_VIEW_MS = 60_000;
const TICK_STEPS = [5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800]
  .map((s) => s * 1000);
const TICK_PX = 70; // at least this far apart
const DRAG_PX = 4; // less than this between press and release is a click
// A motion mark is never narrower than this: a 1 s event is 0.01 px of a whole day, and a guard
// must still see (and hit) it. It grows rightwards from its start, so its left edge stays true.
export const MIN_MARK_PX = 6;
// Shift + ← / → moves a selection's end by the largest of these that is at most 1/50 of the view.
const KEY_STEPS = [1, 5, 10, 30, 60, 300, 900, 3600].map((s) => s * 1000);

export class Timeline {
  /** handlers: pick(camera, ms), select(camera, from, to), hold(hold, camera), focus(camera),
   * visit(visit, camera). */
  constructor(root, handlers) {
    this.handlers = handlers;
    this.axis = h('div', { class: 'axis' });
    this.rowsEl = h('div', { class: 'rows' });
    this.el = h('div', { class: 'timeline' },
      h('div', { class: 'row axis-row' }, h('span', { class: 'label' }), this.axis), this.rowsEl);
    root.append(this.el);
    this.day = null;
    this.view = null;
    this.rows = new Map(); // camera → { data, row, track, sel, head }
    this.selection = null; // { camera, from, to }
    this.playhead = null; // { camera, ms }
    this.focused = null;
    this.keyed = null; // { camera, anchor, end }: the range shift + arrows are extending
    this.rowsEl.addEventListener('wheel', (ev) => this.wheel(ev), { passive: false });
    new ResizeObserver(() => this.renderAxis()).observe(this.axis);
  }

  /** A new day (or new data for it): rows of { camera, covered, spans, holds }. */
  setDay(day, rows, keepView = false) {
    const same = keepView && this.day?.start_ms === day.start_ms;
    this.day = day;
    if (!same) this.view = [day.start_ms, day.end_ms];
    this.el.dataset.hours = String(Math.round((day.end_ms - day.start_ms) / 3_600_000));
    const cameras = rows.map((r) => r.camera);
    for (const camera of [...this.rows.keys()]) {
      if (!cameras.includes(camera)) {
        this.rows.get(camera).row.remove();
        this.rows.delete(camera);
      }
    }
    for (const data of rows) {
      const entry = this.rows.get(data.camera) ?? this.makeRow(data.camera);
      entry.data = data;
      entry.track.classList.toggle('room', Boolean(data.room));
      this.rowsEl.append(entry.row); // in the given order
    }
    this.render();
  }

  makeRow(camera) {
    // Focusable: shift + arrows select a range from the keyboard (`key`).
    const track = h('div', { class: 'track', dataset: { camera }, tabindex: 0, role: 'group',
      'aria-label': t('track_label', { camera }) });
    const entry = {
      track,
      sel: h('div', { class: 'sel' }),
      head: h('div', { class: 'playhead' }),
      row: h('div', { class: 'row', dataset: { camera } },
        button(camera, () => this.handlers.focus(camera), { class: 'label' }), track),
    };
    this.listen(camera, track);
    this.rows.set(camera, entry);
    return entry;
  }

  focus(camera) {
    this.focused = camera;
    for (const [name, entry] of this.rows) entry.row.classList.toggle('focused', name === camera);
  }

  render() {
    if (!this.day) return;
    const [a, b] = this.view;
    const now = Date.now();
    for (const entry of this.rows.values()) {
      const { camera, covered, spans, holds, visits = [], doors = [] } = entry.data;
      const pieces = [];
      const piece = (cls, from, to, attrs = {}, tag = 'div', ...children) => {
        if (to < a || from > b) return null;
        const el = place(h(tag, { class: cls, ...attrs }, ...children), from, to, a, b);
        pieces.push(el);
        return el;
      };
      for (const [from, to] of covered) piece('cov', from, to);
      if (now < this.day.end_ms) piece('future', Math.max(now, this.day.start_ms), this.day.end_ms);
      for (const s of spans) {
        const counted = s.people_max !== null && s.people_max !== undefined;
        const mark = piece('motion', s.start_ms, s.end_ms, {
          title: `${t('motion')} ${clock(s.start_ms)}–${clock(s.end_ms)}`
            + (counted ? ` · ${people(s.people_max)}` : ''),
          dataset: { startMs: s.start_ms, endMs: s.end_ms, people: counted ? s.people_max : null },
        });
        if (mark) mark.style.minWidth = `${MIN_MARK_PX}px`;
      }
      for (const e of doors) {
        piece(`door ${e.direction} ${e.result}`, e.time_ms, e.time_ms,
          { title: doorText(e), dataset: { door: e.id, ms: e.time_ms } });
      }
      for (const v of visits) {
        const from = Math.max(visitStart(v), this.day.start_ms);
        const to = Math.min(v.left_ms ?? Math.min(now, this.day.end_ms), this.day.end_ms);
        const text = visitText(v);
        piece(`visit${v.flags.length ? ' flagged' : ''}`, from, Math.max(from, to), {
          type: 'button', title: text, 'aria-label': text, dataset: { visit: v.id },
          onclick: () => this.handlers.visit(v, camera),
        }, 'button', personText(v));
      }
      for (const hold of holds) {
        const from = Math.max(hold.from_ms, this.day.start_ms);
        const to = Math.min(hold.to_ms, this.day.end_ms);
        piece('hold', from, to,
          { title: `${t('hold')}: ${hold.reason}`, dataset: { hold: hold.id } });
      }
      entry.track.replaceChildren(...pieces, entry.sel, entry.head);
    }
    this.placeOverlays();
    this.renderAxis();
  }

  renderAxis() {
    if (!this.day) return;
    const [a, b] = this.view;
    const width = this.axis.clientWidth || 800;
    const step = TICK_STEPS.find((s) => ((b - a) / s) * TICK_PX <= width) ?? TICK_STEPS.at(-1);
    const start = this.day.start_ms;
    const ticks = [];
    let previousZone = zoneName(a);
    const last = b - ((b - a) * TICK_PX) / width / 2; // a label must fit before the end
    for (let ms = start + Math.ceil((a - start) / step) * step; ms < last; ms += step) {
      const zone = zoneName(ms);
      const label = clock(ms, step < 60_000) + (zone !== previousZone ? ` ${zone}` : '');
      previousZone = zone;
      ticks.push(place(h('span', { class: 'tick', dataset: { ms } }, label), ms, ms, a, b));
    }
    this.axis.replaceChildren(...ticks);
  }

  placeOverlays() {
    const [a, b] = this.view;
    for (const [camera, entry] of this.rows) {
      const sel = this.selection?.camera === camera ? this.selection : null;
      entry.sel.hidden = !sel;
      if (sel) place(entry.sel, sel.from, sel.to, a, b);
      const at = this.playhead?.camera === camera ? this.playhead.ms : null;
      entry.head.hidden = at === null || at < a || at > b;
      if (!entry.head.hidden) place(entry.head, at, at, a, b);
    }
  }

  setSelection(selection) {
    this.selection = selection;
    if (this.keyed && (selection?.camera !== this.keyed.camera
        || Math.min(this.keyed.anchor, this.keyed.end) !== selection.from)) this.keyed = null;
    this.placeOverlays();
  }

  /** Shift + → / ←: the range from an anchor (the selection's start, else the playhead, else
   * the view's middle) to an end moved a step each press, in the view's scale; the view
   * follows the end. */
  key(camera, ev) {
    const sign = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
    if (!this.day || !ev.shiftKey || !sign) return;
    ev.preventDefault();
    const [a, b] = this.view;
    const step = [...KEY_STEPS].reverse().find((s) => s <= (b - a) / 50) ?? KEY_STEPS[0];
    let keyed = this.keyed?.camera === camera ? this.keyed : null;
    if (!keyed) {
      const sel = this.selection?.camera === camera ? this.selection : null;
      const head = this.playhead?.camera === camera ? this.playhead.ms : null;
      const anchor = Math.round(sel?.from ?? head ?? (a + b) / 2);
      keyed = { camera, anchor, end: sel?.to ?? anchor };
    }
    const { start_ms: start, end_ms: end } = this.day;
    keyed.end = Math.min(Math.max(keyed.end + sign * step, start), end);
    const from = Math.min(keyed.anchor, keyed.end);
    const to = Math.max(keyed.anchor, keyed.end);
    this.setSelection(to > from ? { camera, from, to } : null);
    this.keyed = keyed;
    if (keyed.end < a || keyed.end > b) this.pan(((keyed.end < a ? keyed.end - a : keyed.end - b)
      / (b - a)) + sign * 0.1);
    if (to > from) this.handlers.select(camera, from, to);
  }

  /** The playhead; while playing, the view follows it when it runs off the edge. */
  setPlayhead(camera, ms) {
    this.playhead = camera === null ? null : { camera, ms };
    const [a, b] = this.view ?? [0, 0];
    if (this.playhead && this.day && ms >= this.day.start_ms && ms < this.day.end_ms
        && (ms < a || ms > b)) {
      const len = b - a;
      this.setView(ms - len * 0.1, ms + len * 0.9);
    } else {
      this.placeOverlays();
    }
  }

  setView(from, to) {
    const { start_ms: start, end_ms: end } = this.day;
    const len = Math.min(Math.max(to - from, MIN_VIEW_MS), end - start);
    const a = Math.min(Math.max(from, start), end - len);
    this.view = [a, a + len];
    this.render();
  }

  /** Zoom by `factor` (< 1: in) keeping `at` where it is on screen. */
  zoom(factor, at = (this.view[0] + this.view[1]) / 2) {
    const [a, b] = this.view;
    const frac = (at - a) / (b - a);
    const len = (b - a) * factor;
    this.setView(at - frac * len, at + (1 - frac) * len);
  }

  pan(fraction) {
    const [a, b] = this.view;
    const shift = (b - a) * fraction;
    this.setView(a + shift, b + shift);
  }

  /** Show [from, to) with some margin either side. */
  show(from, to) {
    const margin = Math.max((to - from) * 0.5, 30_000);
    this.setView(from - margin, to + margin);
  }

  wholeDay() {
    this.setView(this.day.start_ms, this.day.end_ms);
  }

  msAt(track, clientX) {
    const rect = track.getBoundingClientRect();
    const frac = Math.min(Math.max((clientX - rect.left) / rect.width, 0), 1);
    return Math.round(this.view[0] + frac * (this.view[1] - this.view[0]));
  }

  wheel(ev) {
    if (!this.day) return;
    ev.preventDefault();
    const track = ev.target.closest('.track') ?? this.rowsEl.querySelector('.track');
    if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
      this.pan(Math.sign(ev.deltaX || ev.deltaY) * 0.1);
    } else {
      this.zoom(ev.deltaY > 0 ? 1.25 : 0.8, this.msAt(track, ev.clientX));
    }
  }

  /** Press and release in place: a moment (or a hold's band); press and drag: a range. */
  listen(camera, track) {
    track.addEventListener('keydown', (ev) => this.key(camera, ev));
    track.addEventListener('pointerdown', (down) => {
      // A visit's bar is a button of its own: its click (or Enter) shows the visit.
      if (down.button !== 0 || !this.day || down.target.closest('.visit')) return;
      down.preventDefault();
      track.setPointerCapture(down.pointerId);
      const from = this.msAt(track, down.clientX);
      let dragging = false;
      const move = (ev) => {
        dragging ||= Math.abs(ev.clientX - down.clientX) >= DRAG_PX;
        if (!dragging) return;
        const to = this.msAt(track, ev.clientX);
        this.setSelection({ camera, from: Math.min(from, to), to: Math.max(from, to) });
      };
      const up = (ev) => {
        track.removeEventListener('pointermove', move);
        track.removeEventListener('pointerup', up);
        track.removeEventListener('pointercancel', up);
        if (ev.type === 'pointercancel') return;
        if (dragging) {
          this.handlers.select(camera, this.selection.from, this.selection.to);
          return;
        }
        const band = down.target.closest('.hold');
        const hold = band && this.rows.get(camera).data.holds
          .find((x) => String(x.id) === band.dataset.hold);
        if (hold) this.handlers.hold(hold, camera);
        else this.handlers.pick(camera, withinMark(down.target, from));
      };
      track.addEventListener('pointermove', move);
      track.addEventListener('pointerup', up);
      track.addEventListener('pointercancel', up);
    });
  }
}

/** The legend under the timeline, in the same colours; `rooms`: a camera watches a room. */
export function legend(rooms = false) {
  const keys = [['cov', 'legend_footage'], ['gap', 'legend_gap'], ['motion', 'legend_motion'],
    ['hold', 'legend_hold'], ['sel', 'legend_selection']];
  if (rooms) keys.push(['visit', 'legend_visit'], ['door', 'legend_door']);
  return h('p', { class: 'legend' },
    keys.map(([cls, key]) => h('span', {}, h('i', { class: cls }), t(key))),
    h('span', { class: 'hint' }, t('timeline_hint')));
}

/** A click on a motion mark lands inside its event: a short event's mark is drawn wider than
 * its time (MIN_MARK_PX), and the moment under the pointer may be minutes past it. */
function withinMark(target, ms) {
  const mark = target.closest('.motion');
  if (!mark) return ms;
  const start = Number(mark.dataset.startMs);
  return ms >= start && ms <= Number(mark.dataset.endMs) ? ms : start;
}

/** "1 person", "3 people": what a motion span's people count reads as. */
export function people(n) {
  return n === 1 ? t('people_one') : t('people_n', { n });
}

/** Where a visit begins on the timeline: its entry, or its exit when no entry was seen. */
export function visitStart(visit) {
  return visit.entered_ms ?? visit.left_ms;
}

/** The person as listed ([[access.people]] name) and as the access system names them. */
export function personText(visit) {
  return visit.name ? `${visit.name} (${visit.person})` : visit.person;
}

/** A visit in one line: who, their role, entered–left, and what does not add up. */
export function visitText(visit) {
  const entered = visit.entered_ms === null ? t('visit_no_entry') : clock(visit.entered_ms);
  const left = visit.left_ms === null ? t('visit_inside') : clock(visit.left_ms);
  const flags = visit.flags.map((f) => t(`flag_${f}`));
  return [`${t('visit')}: ${personText(visit)}`, visit.role ? `(${visit.role})` : '',
    `${entered}–${left}`, flags.length ? `⚠ ${flags.join(', ')}` : '']
    .filter(Boolean).join(' ');
}

/** A door event in one line: entry or exit, the door, who, when, and how it went. */
export function doorText(e) {
  return `${t(e.direction === 'in' ? 'door_in' : 'door_out')} ${e.door}: ${e.person}`
    + `${e.role ? ` (${e.role})` : ''} ${clock(e.time_ms)} — ${t(`result_${e.result}`)}`;
}
