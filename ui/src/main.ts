// The dashboard: one watch stream feeds the model; the model is drawn once per animation frame.
import { ApiError, auth, request } from './api.js';
import { clock, h, leaseLeft, replaceKeepingFocus } from './dom.js';
import { loginForm } from './login.js';
import { Model, type TimelineEntry } from './model.js';
import { renderOverview } from './overview.js';
import { renderService } from './service-view.js';
import { createScheduler, parseRoute, type State } from './state.js';
import { fillTimeline, prependTimeline, timelineSection } from './timeline.js';
import type { Instance, Ready, Whoami } from './types.js';
import { startWatch } from './watch.js';

const READY_POLL_MS = 5000;
const LEASE_REFRESH_MS = 5000;

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} missing from index.html`);
  return el as T;
}

const state: State = {
  model: new Model(),
  connection: { kind: 'connecting' },
  downSince: null,
  ready: null,
  whoami: null,
  route: parseRoute(location.hash),
  query: '',
  servicePage: 0,
  instancePage: 0,
};

const connEl = byId('conn');
const statsEl = byId('stats');
const mainEl = byId('main');
const searchEl = byId<HTMLInputElement>('search');
const forgetEl = byId<HTMLButtonElement>('forget');

let mounted: { kind: 'login'; message: string } | { kind: 'view'; route: string; content: HTMLElement; timeline: HTMLOListElement } | null = null;
let dataDirty = true;
let firstRender = true;

const schedule = createScheduler(draw);
const touch = () => {
  dataDirty = true;
  schedule();
};
const go = (patch: Partial<State>) => {
  Object.assign(state, patch);
  touch();
};

function timelineFilter(): (e: TimelineEntry) => boolean {
  const r = state.route;
  if (r.view === 'overview') return () => true;
  return (e) => e.namespace === r.namespace && e.service === r.service;
}

function draw() {
  drawHeader();
  const c = state.connection;
  if (c.kind === 'unauthorized') {
    // No data is drawn without a credential: whatever the model held is gone (see onConnection).
    if (mounted?.kind !== 'login' || mounted.message !== c.message) {
      mainEl.replaceChildren(loginForm(c.message));
      mounted = { kind: 'login', message: c.message };
    }
    return;
  }
  const routeKey = JSON.stringify(state.route);
  if (mounted?.kind !== 'view' || mounted.route !== routeKey) {
    const content = h('div', { class: 'content' });
    const { section, list } = timelineSection();
    fillTimeline(list, state.model.timeline, timelineFilter());
    state.model.fresh = [];
    mainEl.replaceChildren(content, section);
    mounted = { kind: 'view', route: routeKey, content, timeline: list };
    dataDirty = true;
  }
  if (dataDirty) {
    dataDirty = false;
    const r = state.route;
    const nodes = !state.model.loaded
      ? [h('p', { class: 'empty' }, 'Loading…')]
      : r.view === 'overview'
        ? renderOverview(state, go)
        : renderService(state, r.namespace, r.service, go);
    replaceKeepingFocus(mounted.content, ...nodes);
  }
  if (state.model.fresh.length > 0) {
    prependTimeline(mounted.timeline, state.model.fresh, timelineFilter());
    state.model.fresh = [];
  }
  if (firstRender && state.model.loaded) {
    firstRender = false;
    performance.mark('rollcall:first-render');
    document.body.dataset.rendered = 'true';
  }
}

function drawHeader() {
  const c = state.connection;
  document.body.dataset.connection = c.kind;
  let text: string;
  switch (c.kind) {
    case 'connecting':
      text = 'Connecting…';
      break;
    case 'live':
      text = c.resumedFrom === null ? 'Live' : `Live · caught up from revision ${c.resumedFrom}`;
      break;
    case 'reconnecting': {
      const down = state.downSince === null ? '' : ` since ${clock(state.downSince)}`;
      text =
        c.attempt <= 1
          ? 'Connection dropped · reconnecting…'
          : `Registry unreachable${down} · reconnecting… (attempt ${c.attempt}; showing the last view, revision ${state.model.revision})`;
      break;
    }
    case 'unauthorized':
      text = 'Token needed';
      break;
  }
  if (connEl.textContent !== text) connEl.textContent = text;
  forgetEl.hidden = !auth.hasToken();

  const ready = state.ready;
  const body: Ready | null = ready?.kind === 'ready' ? ready.body : null;
  const readiness =
    ready === null ? '…' : ready.kind === 'ready' ? 'ready' : ready.kind === 'unreachable' ? 'unreachable' : `not ready: ${ready.message}`;
  const items: [string, string, string][] = [
    ['Revision', String(state.model.revision), 'revision'],
    ['History from', body?.compactedRevision === undefined ? '—' : `revision ${body.compactedRevision}`, 'history'],
    ['Watchers', body?.watchers === undefined ? '—' : String(body.watchers), 'watchers'],
    ['Registry', readiness, 'ready'],
  ];
  const signature = items.map((i) => i[1]).join('|');
  if (statsEl.dataset.signature !== signature) {
    statsEl.dataset.signature = signature;
    statsEl.replaceChildren(
      ...items.flatMap(([label, value, key]) => [
        h('dt', { title: key === 'history' ? 'Oldest revision a watcher can resume from' : null }, label),
        h('dd', { 'data-stat': key }, value),
      ]),
    );
  }
}

async function pollReady() {
  try {
    state.ready = { kind: 'ready', body: await request<Ready>('/readyz') };
  } catch (err) {
    state.ready = err instanceof ApiError ? { kind: 'not-ready', message: err.message } : { kind: 'unreachable' };
  }
  schedule();
}

let whoamiAsked = false;
async function askWhoami() {
  whoamiAsked = true;
  try {
    state.whoami = await request<Whoami>('/v1/auth/whoami');
  } catch (err) {
    // 404: a registry without scoped tokens; writes are offered and a refusal shows the API's message.
    state.whoami = null;
    if (!(err instanceof ApiError && err.status === 404)) whoamiAsked = false;
  }
  touch();
}

async function refreshLeases() {
  const r = state.route;
  if (r.view !== 'service' || state.connection.kind !== 'live') return;
  try {
    const list = await request<{ items: Instance[] }>(
      `/v1/namespaces/${encodeURIComponent(r.namespace)}/services/${encodeURIComponent(r.service)}/instances`,
    );
    state.model.refreshLeases(list.items);
    touch();
  } catch {
    // the connection banner already says when the registry is away
  }
}

startWatch({
  snapshot(msg) {
    state.model.snapshot(msg);
    touch();
  },
  change(msg) {
    state.model.apply(msg);
    touch();
  },
  revision(revision) {
    state.model.revision = Math.max(state.model.revision, revision);
    schedule();
  },
  connection(c) {
    const was = state.connection.kind;
    state.connection = c;
    if (c.kind === 'reconnecting' && state.downSince === null) state.downSince = Date.now();
    if (c.kind === 'live') {
      state.downSince = null;
      void pollReady();
      if (!whoamiAsked) void askWhoami();
      void refreshLeases();
    }
    if (c.kind === 'reconnecting' && c.attempt === 2) void pollReady();
    if (c.kind === 'unauthorized') {
      state.model.clear();
      state.whoami = null;
      whoamiAsked = false;
    }
    if (was !== c.kind) touch();
    else schedule();
  },
});

setInterval(() => void pollReady(), READY_POLL_MS);
setInterval(() => void refreshLeases(), LEASE_REFRESH_MS);
// Lease countdowns tick in place: only the cells on screen, no redraw.
setInterval(() => {
  const now = Date.now();
  for (const cell of mainEl.querySelectorAll<HTMLElement>('td.lease[data-expires]')) {
    const text = leaseLeft(Number(cell.dataset.expires), now);
    if (cell.textContent !== text) cell.textContent = text;
  }
}, 1000);

window.addEventListener('hashchange', () => {
  go({ route: parseRoute(location.hash), servicePage: 0, instancePage: 0 });
  mainEl.focus({ preventScroll: true });
});
searchEl.addEventListener('input', () => go({ query: searchEl.value, servicePage: 0, instancePage: 0 }));
searchEl.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && searchEl.value !== '') {
    searchEl.value = '';
    go({ query: '', servicePage: 0, instancePage: 0 });
  }
});
// "/" jumps to the search box, as on most dashboards.
document.addEventListener('keydown', (ev) => {
  const t = ev.target as HTMLElement | null;
  if (ev.key === '/' && !(t instanceof HTMLInputElement) && !(t instanceof HTMLTextAreaElement) && document.querySelector('dialog[open]') === null) {
    ev.preventDefault();
    searchEl.focus();
  }
});
forgetEl.addEventListener('click', () => {
  auth.forget();
  location.reload();
});

schedule();
