// The watch hub with two kinds of change: delivery gated by `resources`, and the long-poll index per kind.
import t from 'tap';
import type { RegistryChange } from '../src/registry/types.js';
import { createWatchHub, type PublishedEvent } from '../src/watch/hub.js';

const instanceEvent = (revision: number, service: string): RegistryChange => ({
  type: 'ADDED',
  revision,
  reason: 'registered',
  instance: {
    namespace: 'default', service, id: 'a', address: '10.0.0.1', port: 80, status: 'up', weight: 1, zone: null, tags: [], metadata: {},
    ttlSeconds: 30, registeredAt: '', lastHeartbeatAt: '', expiresAt: '', revision, createRevision: revision,
  },
});
const serviceEvent = (revision: number, name: string): RegistryChange => ({
  type: 'ADDED',
  revision,
  reason: 'created',
  service: { namespace: 'default', name, virtualIP: '127.77.0.1', ports: [], revision, createRevision: revision, createdAt: '' },
});

t.test('subscribers get only the kinds they asked for; the wire form carries service or instance', async (t) => {
  const hub = createWatchHub();
  const got: Record<string, number[]> = { plain: [], services: [], both: [], web: [] };
  const wire: PublishedEvent[] = [];
  hub.subscribe({}, (e) => got.plain!.push(e.event.revision));
  hub.subscribe({ resources: ['services'] }, (e) => {
    got.services!.push(e.event.revision);
    wire.push(e);
  });
  hub.subscribe({ namespace: 'default', resources: ['services', 'instances'] }, (e) => got.both!.push(e.event.revision));
  hub.subscribe({ namespace: 'default', service: 'web', resources: ['services', 'instances'] }, (e) => got.web!.push(e.event.revision));
  hub.publish([instanceEvent(1, 'web'), serviceEvent(2, 'web'), serviceEvent(3, 'api'), instanceEvent(4, 'api')]);
  t.same(got, { plain: [1, 4], services: [2, 3], both: [1, 2, 3, 4], web: [1, 2] });
  const body = JSON.parse(wire[0]!.json.toString());
  t.same(Object.keys(body), ['type', 'revision', 'reason', 'service']);
  t.equal(wire[0]!.kind, 'services');
});

t.test('the long-poll index is kept per kind', async (t) => {
  const hub = createWatchHub();
  hub.seedLastChange([
    { namespace: 'default', service: 'web', revision: 5 },
    { kind: 'services', namespace: 'default', service: 'web', revision: 7 },
  ]);
  t.equal(hub.lastChange({ namespace: 'default', service: 'web' }), 5, 'instances by default');
  t.equal(hub.lastChange({ namespace: 'default', service: 'web', resources: ['services'] }), 7);
  t.equal(hub.lastChange({ resources: ['services', 'instances'] }), 7);
  const instancesOnly = hub.waitForChange({ namespace: 'default', service: 'web' }, 5, 10_000);
  const servicesOnly = hub.waitForChange({ namespace: 'default', service: 'web', resources: ['services'] }, 7, 10_000);
  hub.publish([serviceEvent(8, 'web')]);
  t.equal(await servicesOnly, true);
  const controller = new AbortController();
  const stillWaiting = hub.waitForChange({ namespace: 'default', service: 'web' }, 5, 10_000, controller.signal);
  controller.abort();
  t.equal(await stillWaiting, false, 'a Service change does not wake an instance long-poll');
  hub.publish([instanceEvent(9, 'web')]);
  t.equal(await instancesOnly, true);
});
