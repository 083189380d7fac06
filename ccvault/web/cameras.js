/**
 * Every camera at a glance: state, last footage, today's motion count and the camera live (a
 * still of its latest footage where it cannot be: disabled, another node's, not recording);
 * one click on a card's picture leads to the camera's day — its timeline, today's.
 */
import * as api from './api.js';
import { h } from './dom.js';
import { t } from './i18n.js';
import { livePlayer } from './live.js';
import { addDays, dateTime, iso, localDate } from './time.js';

const STATE_EVERY_MS = 5000;

export function dayHash(camera, date) {
  return `#/day?${new URLSearchParams({ date, camera })}`;
}

export async function camerasView(root) {
  const cameras = await api.get('/api/cameras');
  const today = localDate(Date.now());
  const yesterday = addDays(today, -1);
  const cards = cameras.map((cam) => card(cam, today, yesterday));
  root.append(h('h1', {}, t('cameras_title')), h('p', { class: 'hint' }, t('cameras_hint')),
    cameras.length ? h('div', { class: 'cards' }, cards.map((c) => c.el))
      : h('p', {}, t('no_cameras')));
  await Promise.all(cards.map((c) => c.fill()));
  const timer = setInterval(() => refreshStates(cards), STATE_EVERY_MS);
  return () => {
    clearInterval(timer);
    cards.forEach((c) => c.live?.stop());
  };
}

/** Each card's state as the daemon sees it now (a camera lost or back shows within seconds). */
async function refreshStates(cards) {
  try {
    const now = new Map((await api.get('/api/cameras')).map((cam) => [cam.name, cam.state]));
    for (const c of cards) {
      const state = now.get(c.name);
      if (state && c.state.dataset.state !== state) {
        c.state.className = `state ${state}`;
        c.state.dataset.state = state;
        c.state.textContent = t(`state_${state}`);
      }
    }
  } catch {
    // the next round asks again
  }
}

/** The camera live, over its latest still, for a camera this node records. */
function liveOf(cam, still) {
  if (cam.node || !cam.enabled) return null;
  const player = livePlayer(cam.name, t('live_alt', { camera: cam.name }));
  if (still) player.el.poster = still;
  return player;
}

function card(cam, today, yesterday) {
  const motion = h('dd', { class: 'motion-today' }, '…');
  const still = cam.last_footage_ms === null ? null
    : api.url(`/api/cameras/${encodeURIComponent(cam.name)}/still.jpg`,
      { at: iso(cam.last_footage_ms - 1) });
  const live = liveOf(cam, still);
  const state = h('span', { class: `state ${cam.state}`, dataset: { state: cam.state } },
    t(`state_${cam.state}`));
  const picture = live?.el ?? (still === null
    ? h('div', { class: 'still none' }, t('no_footage'))
    : h('img', { class: 'still', alt: t('still_alt', { camera: cam.name }), src: still }));
  const el = h('article', { class: 'card', dataset: { camera: cam.name } },
    h('a', { href: dayHash(cam.name, today), class: 'still-link', title: t('open_today') },
      picture),
    h('h2', {}, cam.name, ' ', state,
      cam.node ? h('span', { class: 'mark node', dataset: { node: cam.node } }, t('mark_node', { node: cam.node })) : ''),
    cam.unavailable
      ? h('p', { class: 'unavailable', dataset: { unavailable: cam.unavailable } },
        t('camera_unavailable', { reason: cam.unavailable }))
      : '',
    h('dl', {},
      h('dt', {}, t('last_footage')),
      h('dd', {}, cam.last_footage_ms === null ? t('none') : dateTime(cam.last_footage_ms)),
      h('dt', {}, t('motion_today')), motion),
    h('p', { class: 'actions' },
      h('a', { class: 'button primary', href: dayHash(cam.name, today) }, t('open_today')),
      h('a', { class: 'button', href: dayHash(cam.name, yesterday) }, t('open_yesterday'))));
  const fill = async () => {
    try {
      const day = await api.get('/api/timeline', { camera: cam.name, date: today });
      motion.textContent = String(day.motion_count);
    } catch {
      motion.textContent = '–';
    }
  };
  return { el, fill, live, state, name: cam.name };
}
