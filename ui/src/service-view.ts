// One service: its Service object (virtual IP, ports) and its instances, paged, with lease countdowns and actions.
import { deregister, drain, setWeight } from './actions.js';
import { h, leaseLeft, num, pager, since, statusBadge } from './dom.js';
import { serviceKey } from './model.js';
import { matcher } from './search.js';
import { canWrite, type State } from './state.js';
import type { Instance } from './types.js';

export const INSTANCES_PER_PAGE = 50;

export function renderService(state: State, namespace: string, service: string, go: (patch: Partial<State>) => void): Node[] {
  const key = serviceKey(namespace, service);
  const svc = state.model.services.get(key);
  const now = Date.now();
  const writable = canWrite(state.whoami, namespace);
  const match = matcher(state.query);
  const all = [...(state.model.instances.get(key)?.values() ?? [])];
  const list = (match === null ? all : all.filter(match)).sort((a, b) => a.id.localeCompare(b.id));
  const pages = Math.max(1, Math.ceil(list.length / INSTANCES_PER_PAGE));
  const page = Math.min(state.instancePage, pages - 1);

  const serviceObject = h(
    'section',
    { class: 'service-object', 'aria-labelledby': 'svc-object-title' },
    h('h3', { id: 'svc-object-title' }, 'Service object'),
    svc === undefined
      ? h('p', { class: 'muted' }, 'None: instances only. A Service (PUT on this service) gives it a stable virtual IP.')
      : h(
          'dl',
          { class: 'kv' },
          h('dt', {}, 'Virtual IP'),
          h('dd', { class: 'mono', 'data-field': 'virtual-ip' }, svc.virtualIP ?? '—'),
          h('dt', {}, 'Ports'),
          h('dd', { class: 'mono' }, svc.ports.map((p) => `${p.name} ${p.port}→${p.targetPort ?? p.port}/${p.protocol}`).join(', ') || '—'),
          h('dt', {}, 'Created'),
          h('dd', {}, `${since(svc.createdAt, now)} (revision ${svc.createRevision})`),
        ),
  );

  const row = (i: Instance) =>
    h(
      'tr',
      { 'data-id': i.id, 'data-status': i.status },
      h('th', { scope: 'row', class: 'mono' }, i.id),
      h('td', { class: 'mono' }, `${i.address}:${i.port}`),
      h('td', { class: 'status-cell' }, statusBadge(i.status)),
      h('td', { class: 'num weight' }, i.weight),
      h('td', {}, i.zone ?? '—'),
      h('td', { class: 'tags' }, ...i.tags.map((t) => h('span', { class: 'tag' }, t))),
      h('td', { class: 'meta' }, Object.entries(i.metadata).map(([k, v]) => `${k}=${v}`).join(' ')),
      h('td', { class: 'num lease', 'data-expires': Date.parse(i.expiresAt), title: `expires ${i.expiresAt}` }, leaseLeft(Date.parse(i.expiresAt), now)),
      h('td', { title: i.registeredAt }, since(i.registeredAt, now)),
      writable
        ? h(
            'td',
            { class: 'actions' },
            h('button', { type: 'button', 'data-focus': `drain-${i.id}`, 'data-action': 'drain', onclick: () => drain(i) }, i.status === 'draining' ? 'Undrain' : 'Drain'),
            h('button', { type: 'button', 'data-focus': `weight-${i.id}`, 'data-action': 'weight', onclick: () => setWeight(i) }, 'Weight…'),
            h('button', { type: 'button', class: 'danger', 'data-focus': `dereg-${i.id}`, 'data-action': 'deregister', onclick: () => deregister(i) }, 'Deregister…'),
          )
        : null,
    );

  const table = h(
    'table',
    { class: 'instances' },
    h('caption', {}, `Instances: ${num(list.length)}${match === null ? '' : ` matching “${state.query}” of ${num(all.length)}`}`),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['ID', 'Address', 'Status', 'Weight', 'Zone', 'Tags', 'Metadata', 'Lease left', 'Registered'].map((c) => h('th', { scope: 'col' }, c)),
        writable ? h('th', { scope: 'col' }, 'Actions') : null,
      ),
    ),
    h('tbody', {}, ...list.slice(page * INSTANCES_PER_PAGE, (page + 1) * INSTANCES_PER_PAGE).map(row)),
  );

  const out: Node[] = [
    h('h2', { id: 'service-title' }, h('a', { href: '#/', class: 'back' }, 'All services'), ' / ', `${namespace} / `, h('strong', {}, service)),
    serviceObject,
    table,
  ];
  if (list.length > INSTANCES_PER_PAGE) out.push(pager('instances', page, INSTANCES_PER_PAGE, list.length, (p) => go({ instancePage: p })));
  if (list.length === 0) out.push(h('p', { class: 'empty' }, all.length === 0 ? 'No instances registered.' : 'No instance matches.'));
  if (!writable && state.whoami !== null) out.push(h('p', { class: 'muted' }, `Signed in as ${state.whoami.name ?? 'anonymous'} (${state.whoami.role}): read only here.`));
  return out;
}
