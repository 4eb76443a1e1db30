import assert from "node:assert/strict";
import { test } from "node:test";

import { LatestQuery, type Timers } from "../../src/debounce";

/** Timers driven by hand, so the test does not depend on the clock. */
function fakeTimers() {
  let next = 1;
  const pending = new Map<number, () => void>();
  const timers: Timers = {
    set: (fn) => {
      const id = next++;
      pending.set(id, fn);
      return id;
    },
    clear: (id) => {
      pending.delete(id as number);
    },
  };
  const fire = () => {
    const fns = [...pending.values()];
    pending.clear();
    fns.forEach((fn) => fn());
  };
  return { timers, fire, pending };
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

test("typing quickly sends one request, for the last query", async () => {
  const { timers, fire } = fakeTimers();
  const started: string[] = [];
  const delivered: Array<[string, string]> = [];
  const runner = new LatestQuery<string>({
    delayMs: 150,
    timers,
    start: (q) => {
      started.push(q);
      return { promise: Promise.resolve(`answer:${q}`), cancel: () => {} };
    },
    deliver: (q, r) => delivered.push([q, r]),
    fail: () => assert.fail("no failure expected"),
  });
  runner.update("p");
  runner.update("pa");
  runner.update("parse");
  fire();
  await tick();
  assert.deepEqual(started, ["parse"]);
  assert.deepEqual(delivered, [["parse", "answer:parse"]]);
});

test("a newer query cancels the request in flight and its late answer is dropped", async () => {
  const { timers, fire } = fakeTimers();
  const calls: Array<{ q: string; d: ReturnType<typeof deferred<string>>; cancelled: boolean }> = [];
  const delivered: string[] = [];
  const busy: boolean[] = [];
  const runner = new LatestQuery<string>({
    delayMs: 150,
    timers,
    start: (q) => {
      const call = { q, d: deferred<string>(), cancelled: false };
      calls.push(call);
      return { promise: call.d.promise, cancel: () => (call.cancelled = true) };
    },
    deliver: (_q, r) => delivered.push(r),
    fail: () => {},
    busy: (b) => busy.push(b),
  });
  runner.update("first");
  fire();
  runner.update("second");
  assert.equal(calls[0].cancelled, true);
  fire();
  calls[0].d.resolve("stale");
  calls[1].d.resolve("fresh");
  await tick();
  assert.deepEqual(delivered, ["fresh"]);
  assert.deepEqual(busy, [true, false, true, false]);
});

test("errors reach fail(), and cancel() drops everything", async () => {
  const { timers, fire, pending } = fakeTimers();
  const failed: unknown[] = [];
  const runner = new LatestQuery<string>({
    delayMs: 150,
    timers,
    start: () => ({ promise: Promise.reject(new Error("boom")), cancel: () => {} }),
    deliver: () => assert.fail("nothing to deliver"),
    fail: (_q, e) => failed.push(e),
  });
  runner.update("x");
  fire();
  await tick();
  assert.equal((failed[0] as Error).message, "boom");
  runner.update("y");
  runner.cancel();
  assert.equal(pending.size, 0);
});

test("the real timer waits for the delay", async () => {
  const started: string[] = [];
  const runner = new LatestQuery<string>({
    delayMs: 30,
    start: (q) => {
      started.push(q);
      return { promise: Promise.resolve(q), cancel: () => {} };
    },
    deliver: () => {},
    fail: () => {},
  });
  runner.update("q");
  assert.deepEqual(started, []);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(started, ["q"]);
  runner.dispose();
});
