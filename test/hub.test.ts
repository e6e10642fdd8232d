// The watch hub: indexed fan-out, one serialization per event, and the last-change index for long-poll.
import t from 'tap';
import type { ChangeEvent } from '../src/registry/types.js';
import { createWatchHub, type PublishedEvent } from '../src/watch/hub.js';

function event(revision: number, namespace: string, service: string): ChangeEvent {
  return {
    type: 'ADDED',
    revision,
    reason: 'registered',
    instance: {
      namespace, service, id: 'a', address: '10.0.0.1', port: 80, status: 'up', weight: 1, zone: null, tags: [], metadata: {},
      ttlSeconds: 30, registeredAt: '', lastHeartbeatAt: '', expiresAt: '', revision, createRevision: revision,
    },
  };
}

t.test('events reach exactly the matching subscribers, and are serialized once for all of them', async (t) => {
  const hub = createWatchHub();
  const got: Record<string, PublishedEvent[]> = { all: [], ns: [], web: [], api: [], other: [] };
  hub.subscribe({}, (e) => got.all!.push(e));
  hub.subscribe({ namespace: 'default' }, (e) => got.ns!.push(e));
  const unsubscribeWeb = hub.subscribe({ namespace: 'default', service: 'web' }, (e) => got.web!.push(e));
  hub.subscribe({ namespace: 'default', service: 'web' }, () => {});
  hub.subscribe({ namespace: 'default', service: 'api' }, (e) => got.api!.push(e));
  hub.subscribe({ namespace: 'other' }, (e) => got.other!.push(e));
  hub.publish([event(1, 'default', 'web'), event(2, 'default', 'api')]);
  t.same(got.all!.map((e) => e.event.revision), [1, 2]);
  t.same(got.ns!.map((e) => e.event.revision), [1, 2]);
  t.same(got.web!.map((e) => e.event.revision), [1]);
  t.same(got.api!.map((e) => e.event.revision), [2]);
  t.same(got.other, []);
  t.equal(got.all![0]!.json, got.web![0]!.json, 'the same bytes go to every watcher');
  t.same(JSON.parse(got.web![0]!.json.toString()), { type: 'ADDED', revision: 1, reason: 'registered', instance: event(1, 'default', 'web').instance });
  t.match(got.web![0]!.sse.toString(), /^id: 1\nevent: ADDED\ndata: \{.*\}\n\n$/);
  unsubscribeWeb();
  hub.publish([event(3, 'default', 'web')]);
  t.same(got.web!.map((e) => e.event.revision), [1], 'unsubscribed');
  t.equal(hub.stats().subscribers, 5);
});

t.test('last change per service and namespace; waitForChange wakes only on its filter', async (t) => {
  const hub = createWatchHub();
  hub.seedLastChange([{ namespace: 'default', service: 'web', revision: 5 }, { namespace: 'default', service: 'api', revision: 7 }]);
  t.equal(hub.lastChange({ namespace: 'default', service: 'web' }), 5);
  t.equal(hub.lastChange({ namespace: 'default' }), 7);
  t.equal(hub.lastChange({}), 7);
  t.equal(await hub.waitForChange({ namespace: 'default', service: 'web' }, 4, 10_000), true, 'already changed');
  const waiting = hub.waitForChange({ namespace: 'default', service: 'web' }, 5, 10_000);
  hub.publish([event(8, 'default', 'api')]);
  hub.publish([event(9, 'default', 'web')]);
  t.equal(await waiting, true);
  t.equal(hub.stats().subscribers, 0, 'a finished wait leaves no subscriber behind');
  const controller = new AbortController();
  const aborted = hub.waitForChange({ namespace: 'x' }, 9, 10_000, controller.signal);
  controller.abort();
  t.equal(await aborted, false);
  t.equal(await hub.waitForChange({ namespace: 'x' }, 9, 20), false, 'times out');
});
