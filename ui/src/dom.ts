// A tiny element builder: the page is plain DOM, no framework (see README "Dashboard").

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((ev: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, ''), value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? String(c) : c);
  }
  return el;
}

/** Replaces a container's children while keeping keyboard focus on the element with the same data-focus key. */
export function replaceKeepingFocus(container: Element, ...nodes: Node[]) {
  const active = document.activeElement;
  const key = active instanceof HTMLElement && container.contains(active) ? active.dataset.focus : undefined;
  container.replaceChildren(...nodes);
  if (key !== undefined) container.querySelector<HTMLElement>(`[data-focus="${CSS.escape(key)}"]`)?.focus();
}

// Formatters built once: toLocaleString/toLocaleTimeString build a new Intl formatter per call (~0.5 ms each),
// which made a frame drawing 100 new timeline entries take ~90 ms.
const NUMBER = new Intl.NumberFormat('en');
const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
export const num = (n: number) => NUMBER.format(n);
export const clock = (ms: number) => TIME.format(ms);

const STATUS_MARK: Record<string, string> = { up: '●', draining: '◐', starting: '◌', down: '○' };

/** Status as a word with a shape, so colour is never the only signal. */
export function statusBadge(status: string): HTMLElement {
  return h('span', { class: `status status-${status}` }, h('span', { 'aria-hidden': 'true' }, STATUS_MARK[status] ?? '?'), ` ${status}`);
}

export function since(iso: string, now: number): string {
  return `${ago(now - Date.parse(iso))} ago`;
}

export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  const hr = Math.round(m / 60);
  return hr < 48 ? `${hr} h` : `${Math.round(hr / 24)} d`;
}

export function leaseLeft(expiresAt: number, now: number): string {
  const left = Math.ceil((expiresAt - now) / 1000);
  return left > 0 ? `${left} s` : 'due';
}

/** Pager: "1–50 of 1,000" with previous/next buttons. */
export function pager(label: string, page: number, pageSize: number, total: number, go: (page: number) => void): HTMLElement {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const from = total === 0 ? 0 : page * pageSize + 1;
  const to = Math.min(total, (page + 1) * pageSize);
  return h(
    'nav',
    { class: 'pager', 'aria-label': `${label} pages` },
    h('button', { type: 'button', disabled: page === 0, 'data-focus': `${label}-prev`, onclick: () => go(page - 1) }, '‹ Previous'),
    h('span', { class: 'pager-range' }, `${num(from)}–${num(to)} of ${num(total)}`),
    h('button', { type: 'button', disabled: page >= pages - 1, 'data-focus': `${label}-next`, onclick: () => go(page + 1) }, 'Next ›'),
  );
}
