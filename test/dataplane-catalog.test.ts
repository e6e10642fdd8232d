// openCatalog: one watch view at a time, failover to the next registry URL after repeated failures, and the last
// contents kept while no registry answers. Views are fakes here (the real one is exercised by proxy-e2e.test.ts).
import { EventEmitter } from 'node:events';
import t from 'tap';
import { openCatalog, type CatalogView } from '../src/dataplane/catalog.js';
import type { ServiceRecord } from '../src/dataplane/desired-state.js';
import type { Instance } from '../src/schemas/instance.js';
import { SERVICES, INSTANCES } from './dataplane-fixtures.js';

class FakeView extends EventEmitter implements CatalogView {
  revision = 0;
  closed = false;
  svcs: ServiceRecord[] = [];
  insts: Instance[] = [];
  readonly ready: Promise<void>;
  private resolve!: () => void;
  private reject!: (err: Error) => void;
  constructor(readonly url: string) {
    super();
    this.ready = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
  services() {
    return this.svcs;
  }
  instances() {
    return this.insts;
  }
  close() {
    this.closed = true;
  }
  snapshot(revision: number, svcs: ServiceRecord[], insts: Instance[]) {
    Object.assign(this, { revision, svcs, insts });
    this.resolve();
    this.emit('change');
  }
  fail(message: string) {
    this.emit('error', new Error(message));
  }
  refuse(err: Error) {
    this.reject(err);
  }
}

t.test('fails over to the next URL after repeated failures, keeping the last contents until the new snapshot', async (t) => {
  const views: FakeView[] = [];
  const logs: string[] = [];
  const catalog = openCatalog({
    urls: ['http://a', 'http://b'],
    failoverAfter: 3,
    log: (l) => logs.push(l),
    open: (url) => {
      const v = new FakeView(url);
      views.push(v);
      return v;
    },
  });
  let changes = 0;
  catalog.on('change', () => changes++);
  views[0]!.snapshot(5, SERVICES, INSTANCES);
  await catalog.ready;
  t.equal(catalog.revision, 5);
  t.equal(catalog.services().length, SERVICES.length);
  t.ok(catalog.connected);

  views[0]!.fail('unreachable');
  views[0]!.fail('unreachable');
  t.equal(views.length, 1, 'two failures: still on a');
  t.notOk(catalog.connected);
  views[0]!.fail('unreachable');
  t.equal(views.length, 2, 'the third: a fresh view on b');
  t.ok(views[0]!.closed, 'the view on a is closed');
  t.equal(catalog.url, 'http://b');
  t.equal(catalog.instances().length, INSTANCES.length, 'the last contents stay until b answers');
  views[0]!.emit('change');
  t.equal(changes, 1, 'a closed view is not listened to any more');

  views[1]!.snapshot(7, SERVICES.slice(1), []);
  t.equal(changes, 2);
  t.same([catalog.revision, catalog.services().length, catalog.instances().length], [7, SERVICES.length - 1, 0]);
  t.match(logs.join('\n'), /watch http:\/\/a: unreachable\nhttp:\/\/a keeps failing; switching to http:\/\/b\nfollowing http:\/\/b at revision 7/);
  t.equal(logs.filter((l) => l.includes('unreachable')).length, 1, 'the same failure is said once');
  catalog.close();
  t.ok(views[1]!.closed);
});

t.test('one URL: no failover, the view keeps retrying by itself; a refusal before the first snapshot rejects ready', async (t) => {
  const views: FakeView[] = [];
  const catalog = openCatalog({ urls: ['http://a'], failoverAfter: 3, log: () => {}, open: (url) => (views.push(new FakeView(url)), views.at(-1)!) });
  for (let i = 0; i < 5; i++) views[0]!.fail('unreachable');
  t.equal(views.length, 1);
  views[0]!.refuse(new Error('401 unauthorized'));
  await t.rejects(catalog.ready, /401 unauthorized/);
  catalog.close();
});
