import test from 'ava';
import { Lifecycle, type Component } from '../../services/common/lifecycle.ts';
import { silentLogger } from '../../services/common/log.ts';

function part(name: string, log: string[], opts: { failStart?: boolean; failStop?: boolean; hangStop?: boolean } = {}): Component {
  return {
    name,
    async start() {
      if (opts.failStart) throw new Error(`${name} cannot start`);
      log.push(`start ${name}`);
    },
    async stop() {
      if (opts.hangStop) await new Promise(() => undefined);
      log.push(`stop ${name}`);
      if (opts.failStop) throw new Error(`${name} cannot stop`);
    },
  };
}

test('starts in order, stops in reverse; stop is idempotent and safe without start', async (t) => {
  const log: string[] = [];
  const lc = new Lifecycle({ logger: silentLogger });
  lc.add(part('store', log));
  lc.add(part('consumer', log));
  await lc.stop();
  t.deepEqual(log, []);
  await lc.start();
  await lc.stop();
  await lc.stop();
  t.deepEqual(log, ['start store', 'start consumer', 'stop consumer', 'stop store']);
});

test('every stop runs even if one fails, and the failure is reported', async (t) => {
  const log: string[] = [];
  const lc = new Lifecycle({ logger: silentLogger });
  lc.add(part('a', log));
  lc.add(part('b', log, { failStop: true }));
  lc.add(part('c', log));
  await lc.start();
  await t.throwsAsync(lc.stop(), { message: /b: b cannot stop/ });
  t.deepEqual(log.slice(3), ['stop c', 'stop b', 'stop a']);
});

test('a failed start stops what already started', async (t) => {
  const log: string[] = [];
  const lc = new Lifecycle({ logger: silentLogger });
  lc.add(part('a', log));
  lc.add(part('b', log, { failStart: true }));
  await t.throwsAsync(lc.start(), { message: 'b cannot start' });
  t.deepEqual(log, ['start a', 'stop a']);
});

test('a stop that hangs hits its deadline and the rest still stop', async (t) => {
  const log: string[] = [];
  const lc = new Lifecycle({ logger: silentLogger, stopTimeoutMs: 50 });
  lc.add(part('a', log));
  lc.add(part('hang', log, { hangStop: true }));
  await lc.start();
  await t.throwsAsync(lc.stop(), { message: /hang: stop did not finish within 50 ms/ });
  t.deepEqual(log.at(-1), 'stop a');
});

test('an overall stop deadline bounds the parts together: the last part gets only what is left', async (t) => {
  const log: string[] = [];
  const lc = new Lifecycle({ logger: silentLogger, stopTimeoutMs: 10_000, stopDeadlineMs: 120 });
  lc.add(part('hang-b', log, { hangStop: true }));
  lc.add(part('hang-a', log, { hangStop: true }));
  await lc.start();
  const started = Date.now();
  const err = await t.throwsAsync(lc.stop());
  const took = Date.now() - started;
  t.regex(err?.message ?? '', /hang-a: stop did not finish within 1\d\d ms/);
  t.regex(err?.message ?? '', /hang-b: stop did not finish within \d+ ms/);
  t.true(took < 1_000, `stopped within the overall deadline, took ${took} ms`);
});
