/**
 * PGlite's gate (services/common/store): with many concurrent queries the event loop still gets turns
 * (timers fire while queries are pending), and results, errors and transactions are unchanged; the same
 * holds for PostgreSQL, whose pool works over the network.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from '../../services/common/store/index.ts';
import { DRIVERS, freshStore } from '../helpers/store.ts';

/** Runs 32 loops of 20 queries; resolves whether a 1 ms timer fired before all of them were done. */
async function timerFiresDuringQueries(store: Store): Promise<boolean> {
  let done = 0;
  const total = 32 * 20;
  const loops = Promise.all(Array.from({ length: 32 }, async () => {
    for (let i = 0; i < 20; i++) {
      await store.query('SELECT count(*) FROM bkdata_flow');
      done++;
    }
  }));
  await sleep(1);
  const early = done < total;
  await loops;
  return early;
}

for (const driver of DRIVERS) {
  test.serial(`timers fire while many queries are pending [${driver}]`, async (t) => {
    const store = await freshStore(t, driver);
    await store.migrate();
    t.true(await timerFiresDuringQueries(store));
  });

  test.serial(`results, errors and transactions are unchanged under the gate [${driver}]`, async (t) => {
    const store = await freshStore(t, driver);
    await store.migrate();
    const n = await store.transaction(async (tx) => {
      await tx.query("INSERT INTO bkdata_flow_command (command_id, flow_key, outcome) VALUES ('g1', 'k', 'accepted')");
      return (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM bkdata_flow_command')).rows[0]?.n;
    });
    t.is(n, 1);
    await t.throwsAsync(store.transaction(async (tx) => {
      await tx.query("INSERT INTO bkdata_flow_command (command_id, flow_key, outcome) VALUES ('g2', 'k', 'accepted')");
      throw new Error('roll back');
    }), { message: 'roll back' });
    await t.throwsAsync(store.query('SELECT nope FROM nowhere'));
    t.deepEqual((await store.query<{ id: string }>('SELECT command_id AS id FROM bkdata_flow_command')).rows.map((r) => ({ ...r })), [{ id: 'g1' }], 'the failed transaction left nothing');
  });
}
