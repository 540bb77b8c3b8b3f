/**
 * BKData down for 30 s in the middle of a batch of flows: the breakers of the families in use open; while
 * a breaker is open no call of its family reaches BKData except one half-open probe at a time; flows wait
 * (`waiting_dependency`) instead of failing, and every flow finishes once BKData is back.
 */
import test from 'ava';
import type { BreakerState } from '../../services/common/breaker.ts';
import { FAMILIES, type Family } from '../../services/orchestrator/bkdata-client.ts';
import { waitFor } from '../helpers/kafka.ts';
import { keyOf, metricCommand, setup, tailCommand, waitForFlow } from './kit.ts';

const OUTAGE_MS = 30_000;

test('a 30 s BKData outage mid-flow: breakers open, only probes get through, every flow finishes after recovery', async (t) => {
  t.timeout(240_000);
  const { sim, orch, registry } = await setup(
    t,
    { BKDATA_SIM_LATENCY_MS: '20', BKDATA_SIM_CLEAN_START_DELAY_MS: '600' },
    {
      ORCH_BREAKER_RESET_TIMEOUT_MS: '4000',
      ORCH_BREAKER_VOLUME_THRESHOLD: '3',
      ORCH_MAX_CONCURRENT_FLOWS: '8',
      ORCH_RETRY_INITIAL_DELAY_MS: '100',
      ORCH_RETRY_MAX_DELAY_MS: '2000',
      BKDATA_CLEAN_POLL_INTERVAL_MS: '300',
    },
  );
  const transitions: { family: Family; state: BreakerState; at: number }[] = [];
  for (const family of FAMILIES) orch.breakers[family].onStateChange((state) => transitions.push({ family, state, at: Date.now() }));

  const commands = Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? tailCommand(`out${i}`, { data_id: 1_800_000 + i }) : metricCommand(`out${i}`, { data_id: 1_900_000 + i })));
  for (const c of commands) await orch.operations.submit(c, 'http');

  // Some flows are under way (a few raw data created), then BKData goes down.
  await waitFor('flows under way', () => (sim.calls.stats().writesByApi.access_deploy_plan ?? 0) >= 4);
  const outage = sim.addOutage(OUTAGE_MS);
  await waitFor('a breaker to open', () => transitions.some((x) => x.state === 'open'), 30_000);
  await waitFor('a flow waiting for a dependency', async () => (await orch.flows.list({ status: 'waiting_dependency' })).length > 0, 30_000);

  const finals = ['success', 'config_deploy_failed', 'config_cleans_failed', 'config_cleans_start_failed', 'auth_failed', 'config_flow_failed'];
  for (const c of commands) {
    const f = await waitForFlow(orch, keyOf(c), finals, 150_000);
    t.is(f.status, 'success', `${f.app_name}: ${f.message}`);
  }
  t.true(Date.now() > outage.endAt, 'flows finished only after the outage');

  // While a family's breaker was open, none of its calls was sent; in half-open, at most one (the probe).
  const calls = sim.calls.entries();
  let probes = 0;
  for (const family of FAMILIES) {
    const mine = transitions.filter((x) => x.family === family);
    mine.forEach((x, i) => {
      const until = mine[i + 1]?.at ?? Infinity;
      const sent = calls.filter((c) => c.family === family && c.sentAt !== undefined && c.sentAt > x.at && c.sentAt < until);
      if (x.state === 'open') t.is(sent.length, 0, `${family}: no call while open (${new Date(x.at).toISOString()})`);
      if (x.state === 'half_open') {
        t.true(sent.length <= 1, `${family}: one probe per half-open period, saw ${sent.length}`);
        probes += sent.length;
      }
    });
  }
  t.true(transitions.some((x) => x.state === 'half_open'), 'probes were made');
  t.true(probes >= 1);
  t.true(transitions.filter((x) => x.state === 'closed').length >= 1, 'a breaker closed again after recovery');
  const duringOutage = calls.filter((c) => c.outcome === 'outage').length;
  t.log(`calls that reached BKData during the outage: ${duringOutage} (probes ${probes}); breaker transitions: ${transitions.length}`);
  t.regex(await registry.metrics(), /bkstream_breaker_calls_total\{breaker="\w+",result="rejected"\} \d+/);
  for (const family of FAMILIES) t.is(orch.breakers[family].state(), 'closed');
});
