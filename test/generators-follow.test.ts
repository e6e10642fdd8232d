// The --watch loop's timing, with a fake clock: debounce quiet period, maximum delay, no overlapping renders.
import { EventEmitter } from 'node:events';
import t from 'tap';
import { createDebouncer, type Timers } from '../src/generators/debounce.js';
import { followSource } from '../src/generators/follow.js';

function fakeTimers() {
  let now = 0;
  let seq = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  const timers: Timers = {
    now: () => now,
    setTimeout: (fn, ms) => {
      pending.set(++seq, { at: now + ms, fn });
      return seq;
    },
    clearTimeout: (h) => void pending.delete(h as number),
  };
  /** Advance the clock, firing due timers in order. */
  const advance = (ms: number) => {
    const end = now + ms;
    for (;;) {
      const next = [...pending.entries()].filter(([, p]) => p.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!next) break;
      pending.delete(next[0]);
      now = next[1].at;
      next[1].fn();
    }
    now = end;
  };
  return { timers, advance, now: () => now };
}

t.test('debounce: fires after the quiet period, once per burst', async (t) => {
  const clock = fakeTimers();
  const fired: number[] = [];
  const d = createDebouncer(() => fired.push(clock.now()), { quietMs: 250, maxDelayMs: 2000 }, clock.timers);
  d.trigger();
  clock.advance(100);
  d.trigger();
  clock.advance(100);
  d.trigger();
  clock.advance(249);
  t.same(fired, [], 'still quiet-waiting');
  clock.advance(1);
  t.same(fired, [450], 'fires 250 ms after the last trigger');
  clock.advance(10_000);
  t.same(fired, [450], 'nothing more without triggers');
});

t.test('debounce: a constant stream still fires every maxDelay', async (t) => {
  const clock = fakeTimers();
  const fired: number[] = [];
  const d = createDebouncer(() => fired.push(clock.now()), { quietMs: 250, maxDelayMs: 1000 }, clock.timers);
  for (let i = 0; i < 50; i++) {
    d.trigger();
    clock.advance(100);
  }
  // Triggers at 0, 100, …, 4900: every burst is cut at 1000 ms, and the last trigger (4900) is covered by 5000.
  t.same(fired, [1000, 2000, 3000, 4000, 5000], 'bounded by the maximum delay, never starved');
  clock.advance(1000);
  t.same(fired.length, 5, 'nothing left over after the stream stops');
  d.trigger();
  d.cancel();
  clock.advance(5000);
  t.equal(fired.length, 5, 'cancel drops a pending fire');
});

t.test('follow: renders at start, coalesces a burst, never overlaps, and stop waits for the render in flight', async (t) => {
  const clock = fakeTimers();
  const source = new EventEmitter();
  let state = 0;
  const applied: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let release: (() => void) | null = null;
  const follower = followSource({
    source,
    render: () => `state ${state}`,
    apply: async (content) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise<void>((resolve) => (release = resolve));
      applied.push(content);
      inFlight--;
    },
    debounceMs: 250,
    maxDelayMs: 2000,
    onError: (err) => t.fail(String(err)),
    timers: clock.timers,
  });
  const finish = async () => {
    while (!release) await new Promise((r) => setImmediate(r));
    const r = release as () => void;
    release = null;
    r();
    await new Promise((r) => setImmediate(r));
  };
  await finish();
  t.same(applied, ['state 0'], 'first render at start');

  for (let i = 1; i <= 50; i++) {
    state = i;
    source.emit('change');
    clock.advance(10);
  }
  clock.advance(250);
  await finish();
  t.same(applied, ['state 0', 'state 50'], '50 changes → one render of the latest state');

  state = 51;
  source.emit('change');
  clock.advance(250);
  // The render for 51 is in flight; changes now must wait for it, then give exactly one more render.
  state = 52;
  source.emit('change');
  clock.advance(250);
  state = 53;
  source.emit('change');
  clock.advance(250);
  await finish();
  await finish();
  t.same(applied, ['state 0', 'state 50', 'state 51', 'state 53']);
  t.equal(maxInFlight, 1, 'applies never overlap');

  const idle = follower.idle();
  await idle;
  state = 54;
  source.emit('change');
  const stopped = follower.stop();
  clock.advance(1000);
  await stopped;
  t.same(applied.length, 4, 'a change pending at stop is dropped, not half-applied');
  t.equal(source.listenerCount('change'), 0, 'stop unsubscribes');
});

t.test('follow: a render that throws is reported and following continues', async (t) => {
  const clock = fakeTimers();
  const source = new EventEmitter();
  const errors: string[] = [];
  const applied: string[] = [];
  let fail = true;
  const follower = followSource({
    source,
    render: () => {
      if (fail) throw new Error('template: boom');
      return 'fine';
    },
    apply: async (c) => void applied.push(c),
    debounceMs: 10,
    maxDelayMs: 100,
    onError: (err) => errors.push((err as Error).message),
    timers: clock.timers,
  });
  await follower.idle();
  t.same(errors, ['template: boom']);
  fail = false;
  source.emit('change');
  clock.advance(10);
  await follower.idle();
  t.same(applied, ['fine']);
  await follower.stop();
});
