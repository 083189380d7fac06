/**
 * Playback from any moment on, segment after segment, in two <video> elements: the next
 * segment's original file is preloaded in the hidden one and swapped in when the shown one ends.
 * Any MP4 the browser plays works this way (recorded, imported, thinned, fragmented or not), the
 * browser's own range requests seek inside a file, and the wall-clock time shown is exact: the
 * segment's start plus the element's position. A gap in the footage is skipped and said so.
 */
import * as api from './api.js';
import { button, h } from './dom.js';
import { t } from './i18n.js';
import { clock, dateTime, duration, iso } from './time.js';

const WINDOW_MS = 30 * 60_000; // segments are asked for by aligned half hour, one search each
const LOOKAHEAD = 4; // windows searched for what follows: a longer gap ends playback
const SEAM_MS = 1000; // a later start than this after the previous end is a gap
const FRESH_MS = 10_000; // a window still being recorded is asked again after this long
const HEVC = 'video/mp4; codecs="hvc1.1.6.L93.B0"';
const RATES = [1, 2, 4, 8];

export class Player {
  /** onTime(camera, ms): the wall-clock time shown, as it advances. */
  constructor(root, { onTime }) {
    this.onTime = onTime;
    this.videos = [0, 1].map(() => h('video', { playsinline: true, preload: 'auto' }));
    this.active = 0;
    this.current = null; // { camera, seg }
    this.next = null; // the segment loaded into the hidden element
    this.windows = new Map(); // "camera:start" → { at, segments: Promise }
    this.jump = 0; // bumped by every new request: late answers to older ones are dropped
    this.cued = false; // a picture shown paused (`cue`) that nobody has played yet
    this.clockEl = h('output', { class: 'clock' }, '--:--:--');
    this.cameraEl = h('span', { class: 'camera' });
    this.marksEl = h('span', { class: 'marks' }); // imported, corrupt: what the file is
    this.statusEl = h('p', { class: 'status', role: 'status' }, t('player_idle'));
    this.toggleBtn = button(t('play'), () => this.toggle(), { disabled: true });
    this.rate = h('select', { 'aria-label': t('speed'), onchange: () => this.setRate() },
      RATES.map((r) => h('option', { value: r }, `${r}×`)));
    for (const [i, video] of this.videos.entries()) {
      video.hidden = i !== this.active;
      video.addEventListener('timeupdate', () => this.tick(video));
      video.addEventListener('ended', () => this.ended(video));
      video.addEventListener('error', () => this.failed(video));
      video.addEventListener('play', () => {
        // The cued picture's "ready: press Play" would stay under a playing picture.
        if (this.cued && this.current) this.say(t('playing', { camera: this.current.camera }));
        this.cued = false;
        this.buttons();
      });
      video.addEventListener('pause', () => this.buttons());
    }
    this.screen = h('div', { class: 'screen' }, this.videos, this.cameraEl, this.marksEl,
      this.clockEl);
    this.el = h('section', { class: 'player' }, this.screen,
      h('div', { class: 'controls' },
        button(t('back_10'), () => this.skip(-10_000)),
        this.toggleBtn,
        button(t('forward_10'), () => this.skip(10_000)),
        this.rate,
        button(t('fullscreen'), () => this.screen.requestFullscreen?.())),
      this.statusEl);
    root.append(this.el);
  }

  get video() {
    return this.videos[this.active];
  }

  /** Play `camera` from `ms`, or from its next footage when there is none at that moment;
   * `paused`: only show that first frame (see `cue`). */
  async play(camera, ms, paused = false) {
    const jump = ++this.jump;
    this.cued = paused;
    const same = this.current?.camera === camera && this.current.seg;
    if (same && ms >= same.start_ms && ms < same.end_ms && !this.video.error) {
      this.video.currentTime = (ms - same.start_ms) / 1000;
      if (!paused) this.video.play().catch(() => {});
      return;
    }
    this.say(t('loading'));
    let seg;
    try {
      seg = await this.segmentAt(camera, ms);
    } catch (err) {
      if (jump === this.jump) this.say(t('error', { message: err.message }), true);
      return;
    }
    if (jump !== this.jump) return;
    if (!seg) {
      this.say(t('no_footage_after', { time: dateTime(ms) }), true);
      return;
    }
    this.start(camera, seg, Math.max(0, ms - seg.start_ms), paused);
    if (seg.start_ms > ms + SEAM_MS && this.canPlay(seg) && !paused) {
      this.say(t('jumped', { time: clock(ms), start: clock(seg.start_ms) }));
    }
  }

  /** The picture at `ms`, paused, before anyone presses play: the browser fetches the file's
   * index and first pictures with range requests and decodes that frame itself — no server
   * work (a poster endpoint would decode a JPEG per view), exact to the frame, and Play then
   * starts from what is already buffered. */
  cue(camera, ms) {
    return this.play(camera, ms, true);
  }

  start(camera, seg, offsetMs, paused = false) {
    this.current = { camera, seg };
    this.cameraEl.textContent = camera;
    this.shown(seg);
    this.discard(this.other());
    this.next = null;
    if (!this.playable(seg)) return;
    const video = this.video;
    video.src = this.source(seg);
    video.addEventListener('loadedmetadata', () => {
      video.currentTime = offsetMs / 1000;
      video.playbackRate = Number(this.rate.value);
      if (!paused) video.play().catch(() => {});
    }, { once: true });
    this.say(paused ? t('cued', { camera }) : t('playing', { camera }));
    this.showTime(seg.start_ms + offsetMs);
    this.preload(camera, seg);
  }

  /** Load what follows `seg` into the hidden element, ready to swap in. */
  async preload(camera, seg) {
    let next;
    try {
      next = await this.following(camera, seg);
    } catch {
      return; // found out again when `seg` ends
    }
    if (this.current?.seg !== seg) return; // moved on meanwhile
    this.next = next;
    if (next && this.canPlay(next)) {
      const standby = this.other();
      standby.src = this.source(next);
      standby.load();
    }
  }

  async ended(video) {
    if (video !== this.video || !this.current) return;
    const { camera, seg } = this.current;
    const next = this.next ?? await this.following(camera, seg).catch(() => null);
    if (this.current?.seg !== seg) return; // the user went elsewhere meanwhile
    if (!next) {
      this.say(t('end_of_footage', { time: dateTime(seg.end_ms) }));
      return;
    }
    const gap = next.start_ms - seg.end_ms;
    if (!this.canPlay(next) || !this.other().src || this.other().error) {
      this.start(camera, next, 0);
    } else {
      const standby = this.other();
      standby.playbackRate = Number(this.rate.value);
      standby.play().catch(() => {});
      standby.hidden = false;
      video.hidden = true;
      this.active = 1 - this.active;
      this.discard(video);
      this.current = { camera, seg: next };
      this.shown(next);
      this.next = null;
      this.preload(camera, next);
    }
    this.say(gap > SEAM_MS ? t('gap_skipped', { length: duration(gap), time: clock(next.start_ms) })
      : t('playing', { camera }));
  }

  /** Which segment is on screen, and what it is: imported footage (times as claimed) and a
   * file found corrupt are marked on the picture itself. */
  shown(seg) {
    this.el.dataset.segment = seg.id;
    const marks = [];
    if (seg.origin === 'imported') marks.push(['imported', t('mark_imported'), t('mark_imported_hint')]);
    if (seg.integrity === 'corrupt') marks.push(['corrupt', t('mark_corrupt'), t('mark_corrupt_hint')]);
    this.marksEl.replaceChildren(...marks.map(([kind, label, hint]) =>
      h('span', { class: `mark ${kind}`, title: hint, dataset: { mark: kind } }, label)));
  }

  tick(video) {
    if (video !== this.video || !this.current) return;
    this.showTime(this.current.seg.start_ms + video.currentTime * 1000);
  }

  showTime(ms) {
    this.clockEl.textContent = dateTime(Math.floor(ms));
    this.el.dataset.wallMs = String(Math.round(ms));
    this.onTime(this.current.camera, ms);
    this.buttons();
  }

  toggle() {
    if (this.video.paused) this.video.play().catch(() => {});
    else this.video.pause();
  }

  /** The camera and wall-clock time on screen, or null before anything has played. */
  position() {
    return this.current ? { camera: this.current.camera, ms: Number(this.el.dataset.wallMs) } : null;
  }

  skip(ms) {
    const at = this.position();
    if (at) this.play(at.camera, at.ms + ms);
  }

  setRate() {
    for (const video of this.videos) video.playbackRate = Number(this.rate.value);
  }

  stop() {
    this.jump += 1;
    for (const video of this.videos) this.discard(video);
  }

  buttons() {
    this.toggleBtn.disabled = !this.current || !this.video.src;
    this.toggleBtn.textContent = this.video.paused ? t('play') : t('pause');
  }

  other() {
    return this.videos[1 - this.active];
  }

  discard(video) {
    video.pause();
    video.removeAttribute('src');
    video.load();
  }

  source(seg) {
    return api.url(`/api/segments/${seg.id}/file`);
  }

  canPlay(seg) {
    return seg.codec !== 'hevc' || this.video.canPlayType(HEVC) !== '';
  }

  /** False, with the reason and a download offered, for footage this browser cannot decode;
   * false with the reason for footage whose node is down (not a gap: it is kept there). */
  playable(seg) {
    if (seg.unavailable) {
      this.discard(this.video);
      this.say(t('segment_unavailable', { reason: seg.unavailable }), true);
      this.el.dataset.unavailable = seg.unavailable;
      this.buttons();
      return false;
    }
    delete this.el.dataset.unavailable;
    if (this.canPlay(seg)) return true;
    this.discard(this.video);
    this.unplayable(seg, t('hevc_unsupported'));
    return false;
  }

  failed(video) {
    if (video !== this.video || !this.current || !video.getAttribute('src')) return;
    this.unplayable(this.current.seg, t('cannot_play'));
  }

  unplayable(seg, reason) {
    this.say(reason, true);
    this.statusEl.append(' ', h('a', { href: this.source(seg), download: '', class: 'button' },
      t('download_segment', { time: clock(seg.start_ms) })));
    this.buttons();
  }

  say(text, problem = false) {
    this.statusEl.textContent = text;
    this.statusEl.classList.toggle('error', problem);
  }

  /** The segments of one aligned window (overlapping it), asked once; a window that may still
   * grow (recording now) is asked again when its answer is old. */
  segments(camera, windowStart) {
    const key = `${camera}:${windowStart}`;
    const known = this.windows.get(key);
    const now = Date.now();
    if (known && (windowStart + WINDOW_MS < known.at || now - known.at < FRESH_MS)) {
      return known.segments;
    }
    const segments = api.get('/api/segments', {
      camera, from: iso(windowStart), to: iso(windowStart + WINDOW_MS),
    }).then((list) => list.filter((s) => s.state === 'ok'));
    segments.catch(() => this.windows.delete(key));
    this.windows.set(key, { at: now, segments });
    return segments;
  }

  /** The segment playing at `ms` (the latest starting one, if recorded twice), or the first
   * one starting after it within the look-ahead. */
  async segmentAt(camera, ms) {
    const first = Math.floor(ms / WINDOW_MS) * WINDOW_MS;
    for (let i = 0; i < LOOKAHEAD; i += 1) {
      const list = await this.segments(camera, first + i * WINDOW_MS);
      const at = list.filter((s) => s.start_ms <= ms && ms < s.end_ms).at(-1);
      const after = list.find((s) => s.start_ms > ms);
      if (at || after) return at ?? after;
    }
    return null;
  }

  /** What plays after `seg`: the first segment starting at (or just before) its end. */
  async following(camera, seg) {
    const first = Math.floor(seg.end_ms / WINDOW_MS) * WINDOW_MS;
    for (let i = 0; i < LOOKAHEAD; i += 1) {
      const list = await this.segments(camera, first + i * WINDOW_MS);
      const next = list.find((s) => s.id !== seg.id && s.start_ms >= seg.end_ms - SEAM_MS);
      if (next) return next;
    }
    return null;
  }
}
