// The event timeline: changes since the page opened, newest first. New entries are prepended (and highlighted)
// rather than the list redrawn, so a burst costs one insertion per event, once per frame.
import { clock, h } from './dom.js';
import type { TimelineEntry } from './model.js';

const SHOWN = 100;

function item(e: TimelineEntry, fresh: boolean): HTMLElement {
  const who = e.kind === 'instance' ? `${e.namespace}/${e.service}/${e.id}` : `Service ${e.namespace}/${e.service}`;
  return h(
    'li',
    { class: `event event-${e.type.toLowerCase()}${fresh ? ' new' : ''}`, 'data-revision': e.revision, 'data-reason': e.reason },
    h('span', { class: 'rev mono' }, `r${e.revision}`),
    ' ',
    h('span', { class: 'type' }, e.type),
    ' ',
    h('span', { class: 'reason' }, e.reason),
    ' ',
    h('span', { class: 'who mono' }, who),
    ' ',
    h('span', { class: 'detail muted' }, e.detail),
    ' ',
    h('time', { datetime: new Date(e.receivedAt).toISOString() }, clock(e.receivedAt)),
  );
}

export function timelineSection(): { section: HTMLElement; list: HTMLOListElement } {
  const list = h('ol', { id: 'timeline', class: 'timeline', 'aria-live': 'off' });
  const section = h(
    'section',
    { class: 'timeline-section', 'aria-labelledby': 'timeline-title' },
    h('h3', { id: 'timeline-title' }, 'Events since this page opened'),
    list,
  );
  return { section, list };
}

export function fillTimeline(list: HTMLOListElement, entries: TimelineEntry[], keep: (e: TimelineEntry) => boolean) {
  list.replaceChildren(...entries.filter(keep).slice(0, SHOWN).map((e) => item(e, false)));
}

/** entries oldest first; each goes on top. */
export function prependTimeline(list: HTMLOListElement, entries: TimelineEntry[], keep: (e: TimelineEntry) => boolean) {
  const kept = entries.filter(keep).slice(-SHOWN);
  if (kept.length === 0) return;
  const frag = document.createDocumentFragment();
  for (let k = kept.length - 1; k >= 0; k--) frag.append(item(kept[k]!, true));
  list.prepend(frag);
  while (list.childElementCount > SHOWN) list.lastElementChild!.remove();
}
