// Write actions, each behind a confirmation dialog that shows the API's own error message when it refuses.
import { errorText, request } from './api.js';
import { h } from './dom.js';
import type { Instance } from './types.js';

interface Confirm {
  title: string;
  text: string;
  confirmLabel: string;
  danger?: boolean;
  input?: { label: string; value: string; type: 'number' };
  run(value: string | undefined): Promise<unknown>;
}

function instanceUrl(i: Instance): string {
  return `/v1/namespaces/${encodeURIComponent(i.namespace)}/services/${encodeURIComponent(i.service)}/instances/${encodeURIComponent(i.id)}`;
}

export function confirmAction(c: Confirm) {
  const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' });
  const error = h('p', { class: 'dialog-error', role: 'alert' });
  const input = c.input === undefined ? null : h('input', { id: 'confirm-input', type: c.input.type, value: c.input.value, inputmode: 'numeric' });
  const ok = h('button', { type: 'submit', class: c.danger ? 'danger' : 'primary' }, c.confirmLabel);
  const cancel = h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel');
  const form = h(
    'form',
    { method: 'dialog' },
    h('h2', { id: 'confirm-title' }, c.title),
    h('p', {}, c.text),
    input === null || c.input === undefined ? null : h('p', {}, h('label', { for: 'confirm-input' }, c.input.label), ' ', input),
    error,
    h('div', { class: 'buttons' }, cancel, ok),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ok.disabled = true;
    error.textContent = '';
    c.run(input?.value).then(
      () => dialog.close(),
      (err: unknown) => {
        error.textContent = errorText(err);
        ok.disabled = false;
      },
    );
  });
  dialog.append(form);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  (input ?? ok).focus();
}

export function drain(i: Instance) {
  const to = i.status === 'draining' ? 'up' : 'draining';
  confirmAction({
    title: to === 'draining' ? `Drain ${i.id}?` : `Undrain ${i.id}?`,
    text:
      to === 'draining'
        ? `${i.address}:${i.port} gets no new traffic; connections already open finish.`
        : `${i.address}:${i.port} goes back to status up and gets traffic again.`,
    confirmLabel: to === 'draining' ? 'Drain' : 'Undrain',
    run: () => request(instanceUrl(i), { method: 'PATCH', body: { status: to } }),
  });
}

export function setWeight(i: Instance) {
  confirmAction({
    title: `Set the weight of ${i.id}`,
    text: `Share of new traffic relative to the other instances (0 = none). Now ${i.weight}.`,
    confirmLabel: 'Set weight',
    input: { label: 'Weight', value: String(i.weight), type: 'number' },
    // The API judges the value (0–256); an empty or odd entry is sent as-is so its message is the one shown.
    run: (value) => request(instanceUrl(i), { method: 'PATCH', body: { weight: value === undefined || value === '' ? null : Number(value) } }),
  });
}

export function deregister(i: Instance) {
  confirmAction({
    title: `Deregister ${i.id}?`,
    text: `${i.address}:${i.port} leaves ${i.namespace}/${i.service} now. If its agent still runs, it registers again at its next heartbeat.`,
    confirmLabel: 'Deregister',
    danger: true,
    run: () => request(instanceUrl(i), { method: 'DELETE' }),
  });
}
