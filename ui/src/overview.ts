// Overview: totals by status, then every service (paged) with its counts; with a search, the matching instances.
import { h, num, pager, statusBadge } from './dom.js';
import { serviceKey } from './model.js';
import { matcher, serviceNameMatches } from './search.js';
import { serviceHref, type State } from './state.js';
import { STATUSES, type Instance } from './types.js';

export const SERVICES_PER_PAGE = 100;
const MATCHES_PER_PAGE = 50;

export function renderOverview(state: State, go: (patch: Partial<State>) => void): Node[] {
  const { model, query } = state;
  const totals = model.totals();
  const summary = h(
    'section',
    { class: 'summary', 'aria-label': 'Totals' },
    h('div', { class: 'tile' }, h('span', { class: 'n', 'data-total': 'namespaces' }, totals.namespaces), ' namespaces'),
    h('div', { class: 'tile' }, h('span', { class: 'n', 'data-total': 'services' }, totals.services), ' services'),
    h('div', { class: 'tile' }, h('span', { class: 'n', 'data-total': 'instances' }, num(totals.total)), ' instances'),
    ...STATUSES.map((s) => h('div', { class: 'tile' }, h('span', { class: 'n', 'data-total': s }, num(totals[s])), ' ', statusBadge(s))),
  );

  const match = matcher(query);
  const matches: Instance[] = [];
  let keys = model.serviceKeys();
  if (match !== null) {
    const hit = new Set<string>();
    for (const [key, m] of model.instances) {
      for (const i of m.values()) {
        if (match(i)) {
          matches.push(i);
          hit.add(key);
        }
      }
    }
    keys = keys.filter((k) => hit.has(k) || serviceNameMatches(query, k));
  }

  const pages = Math.max(1, Math.ceil(keys.length / SERVICES_PER_PAGE));
  const page = Math.min(state.servicePage, pages - 1);
  const rows = keys.slice(page * SERVICES_PER_PAGE, (page + 1) * SERVICES_PER_PAGE).map((key) => {
    const counts = model.countsOf(key);
    const svc = model.services.get(key);
    const [namespace, service] = key.split('/') as [string, string];
    return h(
      'tr',
      { 'data-service': key },
      h('td', {}, namespace),
      h('th', { scope: 'row' }, h('a', { href: serviceHref(namespace, service), 'data-focus': `svc-${key}` }, service)),
      h('td', { class: 'mono' }, svc?.virtualIP ?? '—'),
      h('td', { class: 'num', 'data-count': 'total' }, counts.total),
      ...STATUSES.map((s) => h('td', { class: `num${counts[s] > 0 ? '' : ' zero'}`, 'data-count': s }, counts[s])),
    );
  });
  const table = h(
    'table',
    { class: 'services' },
    h('caption', {}, match === null ? 'Services' : `Services matching “${query}”`),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Namespace'),
        h('th', { scope: 'col' }, 'Service'),
        h('th', { scope: 'col' }, 'Virtual IP'),
        h('th', { scope: 'col', class: 'num' }, 'Instances'),
        ...STATUSES.map((s) => h('th', { scope: 'col', class: 'num' }, s)),
      ),
    ),
    h('tbody', {}, ...rows),
  );
  const out: Node[] = [summary, table];
  if (keys.length > SERVICES_PER_PAGE) out.push(pager('services', page, SERVICES_PER_PAGE, keys.length, (p) => go({ servicePage: p })));
  if (keys.length === 0) out.push(h('p', { class: 'empty' }, match === null ? 'Nothing is registered yet.' : 'No service or instance matches.'));

  if (match !== null) {
    matches.sort((a, b) => serviceKey(a.namespace, a.service).localeCompare(serviceKey(b.namespace, b.service)) || a.id.localeCompare(b.id));
    const ipages = Math.max(1, Math.ceil(matches.length / MATCHES_PER_PAGE));
    const ipage = Math.min(state.instancePage, ipages - 1);
    out.push(
      h(
        'table',
        { class: 'matches' },
        h('caption', {}, `Instances matching “${query}”: ${num(matches.length)}`),
        h(
          'thead',
          {},
          h('tr', {}, ...['Service', 'ID', 'Address', 'Status', 'Zone', 'Tags'].map((c) => h('th', { scope: 'col' }, c))),
        ),
        h(
          'tbody',
          {},
          ...matches.slice(ipage * MATCHES_PER_PAGE, (ipage + 1) * MATCHES_PER_PAGE).map((i) =>
            h(
              'tr',
              { 'data-id': i.id },
              h('td', {}, h('a', { href: serviceHref(i.namespace, i.service) }, `${i.namespace}/${i.service}`)),
              h('th', { scope: 'row', class: 'mono' }, i.id),
              h('td', { class: 'mono' }, `${i.address}:${i.port}`),
              h('td', {}, statusBadge(i.status)),
              h('td', {}, i.zone ?? '—'),
              h('td', {}, i.tags.join(', ')),
            ),
          ),
        ),
      ),
    );
    if (matches.length > MATCHES_PER_PAGE) out.push(pager('matches', ipage, MATCHES_PER_PAGE, matches.length, (p) => go({ instancePage: p })));
  }
  return out;
}
