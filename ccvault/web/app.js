/**
 * The page for security staff: sign in, then one view per address — #/cameras,
 * #/day?date=&camera=, #/storage, #/exports (operator), #/audit (admin). What it offers
 * follows the role the session reports; the API refuses the rest anyway.
 */
import * as api from './api.js';
import { auditView } from './audit.js';
import { camerasView } from './cameras.js';
import { dayView } from './day.js';
import { button, h } from './dom.js';
import { exportsView } from './exports.js';
import { lang, t } from './i18n.js';
import { signInView } from './signin.js';
import { storageView } from './storage.js';
import { setZone } from './time.js';

const ROLES = ['viewer', 'operator', 'admin'];
const VIEWS = { cameras: camerasView, day: dayView, storage: storageView,
  exports: exportsView, audit: auditView };
// A view's least role (as the API decides it): the others are neither offered nor shown.
const NAV = [['cameras', 'nav_cameras'], ['day', 'nav_day'], ['storage', 'nav_storage'],
  ['exports', 'nav_exports', 'operator'], ['audit', 'nav_audit', 'admin']];

/** Who is signed in; `can(role)`: holds that role or a higher one. */
const session = {
  user: null,
  role: null,
  can(role) {
    return this.user !== null && ROLES.indexOf(this.role) >= ROLES.indexOf(role);
  },
};
let leave = null; // the shown view's clean-up (timers, playback)

function route() {
  const [name, query] = window.location.hash.replace(/^#\/?/, '').split('?');
  const params = Object.fromEntries(new URLSearchParams(query ?? ''));
  const least = NAV.find(([view]) => view === name)?.[2];
  const allowed = VIEWS[name] && (!least || session.can(least));
  return { name: allowed ? name : 'cameras', params };
}

function renderHeader(active) {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!session.user) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  nav.replaceChildren(...NAV.filter(([, , role]) => !role || session.can(role)).map(([name, key]) =>
    h('a', { href: `#/${name}`, 'aria-current': name === active ? 'page' : null }, t(key))));
  who.replaceChildren(
    h('span', { class: 'user' }, `${session.user} (${t(`role_${session.role}`)})`),
    button(t('sign_out'), signOut, { class: 'link' }));
}

async function show() {
  leave?.();
  leave = null;
  const root = document.getElementById('view');
  root.replaceChildren();
  if (!session.user) {
    renderHeader(null);
    signInView(root, signedIn);
    return;
  }
  const { name, params } = route();
  renderHeader(name);
  try {
    leave = (await VIEWS[name](root, params, session)) ?? null;
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) return; // back to sign-in already
    root.append(h('p', { class: 'error', role: 'alert' }, t('error', { message: err.message })));
  }
}

function signedIn(info) {
  session.user = info.user;
  session.role = info.role;
  setZone(info.timezone);
  show();
}

function signedOut() {
  if (session.user === null) return;
  session.user = session.role = null;
  show();
}

async function signOut() {
  try {
    await api.signOut();
  } catch {
    // the session had ended already: signed out either way
  }
  signedOut();
}

document.documentElement.lang = lang;
document.title = t('title');
window.addEventListener('hashchange', show);
window.addEventListener('ccvault:signed-out', signedOut);
api.resume().then(signedIn, () => show());
