/**
 * Sign-in: the token is typed into a password field, traded for the session cookie and then
 * cleared. It never enters a URL (the form posts nothing by itself) or any storage.
 */
import * as api from './api.js';
import { h } from './dom.js';
import { t } from './i18n.js';

export function signInView(root, done) {
  const token = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true,
  });
  const message = h('p', { class: 'error', role: 'alert' });
  const submit = async (ev) => {
    ev.preventDefault();
    message.textContent = '';
    const value = token.value.trim();
    token.value = '';
    try {
      done(await api.signIn(value));
    } catch (err) {
      message.textContent = err.status === 401 ? t('signin_bad')
        : err.status === 429 ? t('signin_locked') : t('error', { message: err.message });
      token.focus();
    }
  };
  root.append(h('form', { class: 'signin', method: 'post', onsubmit: submit },
    h('h1', {}, t('signin_title')),
    h('label', { for: 'token' }, t('signin_token')), token,
    h('p', { class: 'hint' }, t('signin_hint')),
    h('button', { type: 'submit', class: 'primary' }, t('signin_button')),
    message));
  token.focus();
}
