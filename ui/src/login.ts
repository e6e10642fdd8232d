// The token prompt. The token is kept in memory; "remember" stores it in this browser's localStorage (in clear,
// as the label says), never in a URL.
import { auth } from './api.js';
import { h } from './dom.js';

export function loginForm(message: string): HTMLElement {
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const remember = h('input', { id: 'remember', type: 'checkbox' });
  const form = h(
    'form',
    { class: 'login', 'aria-labelledby': 'login-title' },
    h('h2', { id: 'login-title' }, 'This registry needs a token'),
    h('p', { role: 'alert', class: 'login-message' }, message),
    h('p', {}, h('label', { for: 'token' }, 'Bearer token'), h('br'), input),
    h('p', {}, remember, ' ', h('label', { for: 'remember' }, 'Remember on this device (kept in this browser’s local storage, in clear)')),
    h('button', { type: 'submit', class: 'primary' }, 'Open the dashboard'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    if (value !== '') auth.set(value, remember.checked);
  });
  queueMicrotask(() => input.focus());
  return form;
}
