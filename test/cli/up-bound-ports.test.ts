/**
 * `bkstream up` with listener ports configured as 0 ("any free port", as every service's config allows):
 * the services configured from other services' ports (services.ts: the console's upstream and OTLP URLs,
 * the orchestrator's BKDATA_API_URL at bkdata-sim) are started with the ports those bound, not `:0`
 * (they were, found while writing test/cli/up-demo.e2e.test.ts). Pure: fake running services tell ports.
 */
import test from 'ava';
import { checkUpConfig, configWithBoundPorts, describeUp, envWithBoundPorts, withBoundPorts } from '../../services/cli/commands/up.ts';

const ZERO = {
  BKDATA_SIM_PORT: '0', DISCOVERY_HTTP_PORT: '0', STORAGE_HTTP_PORT: '0', ORCH_HTTP_PORT: '0',
  COLLECTOR_ADMIN_PORT: '0', COLLECTOR_OTLP_HTTP_PORT: '0', COLLECTOR_OTLP_GRPC_PORT: '0', CONSOLE_PORT: '0',
};

const RUNNING = new Map<string, unknown>([
  ['bkdata-sim', { port: () => 41090 }],
  ['orchestrator', { httpPort: () => 41082, grpcPort: () => 41051 }],
  ['discovery', { http: { port: () => 41081 } }],
  ['storage', { http: { port: () => 41083 } }],
  ['collector', { ports: () => ({ grpc: 41317, http: 41318, admin: 41310 }) }],
]);

test('the console and the orchestrator are configured with the ports the services before them bound', async (t) => {
  const own = { ...ZERO };
  const planned = await checkUpConfig({ ...own });
  const names = planned.map((p) => p.module.name);
  t.true(names.indexOf('collector') < names.indexOf('console'), 'the console starts after the collector, whose admin API it proxies');
  const consolePlan = planned.find((p) => p.module.name === 'console')!;
  t.like(consolePlan.config, { discoveryUrl: 'http://127.0.0.1:0' }, 'planned before anything is bound');

  t.like(configWithBoundPorts(consolePlan, own, planned, RUNNING), {
    port: 0,
    discoveryUrl: 'http://127.0.0.1:41081',
    storageUrl: 'http://127.0.0.1:41083',
    orchestratorUrl: 'http://127.0.0.1:41082',
    collectorAdminUrl: 'http://127.0.0.1:41310',
    otlpHttpUrl: 'http://127.0.0.1:41318/v1/traces',
    otlpGrpcUrl: 'http://127.0.0.1:41317',
  });
  const orchestrator = planned.find((p) => p.module.name === 'orchestrator')!;
  t.like(configWithBoundPorts(orchestrator, own, planned, new Map([['bkdata-sim', RUNNING.get('bkdata-sim')]])), { httpPort: 0, bkdataApiUrl: 'http://127.0.0.1:41090/' });
});

test('only ports configured as 0 are replaced, and only by a port a running service tells', async (t) => {
  const own = { ...ZERO, STORAGE_HTTP_PORT: '9183' };
  const planned = await checkUpConfig({ ...own });
  const env = envWithBoundPorts(own, planned, new Map([...RUNNING, ['discovery', { name: 'discovery' }]]));
  t.is(env.STORAGE_HTTP_PORT, '9183', 'a configured port stays');
  t.is(env.DISCOVERY_HTTP_PORT, '0', 'a service that does not tell its port');
  t.is(env.ORCH_HTTP_PORT, '41082');
  t.is(env.COLLECTOR_ADMIN_PORT, '41310');
  t.is(env.CONSOLE_PORT, '0', 'not running yet');
  t.is(own.ORCH_HTTP_PORT, '0', 'the given environment is left as it was');
});

test('no port configured as 0: every service starts with its planned config', async (t) => {
  const planned = await checkUpConfig({});
  for (const p of planned) t.is(configWithBoundPorts(p, {}, planned, RUNNING), p.config, p.module.name);
});

test('the sampler tells the port it bound: the summary names it, not "(a free port)"', async (t) => {
  const planned = await checkUpConfig({ SAMPLER_HTTP_PORT: '0' });
  const text = describeUp(withBoundPorts(planned, new Map([['sampler', { http: { port: () => 41084 } }]])), { brokers: '127.0.0.1:9092', store: 'postgresql' }).join('\n');
  t.regex(text, /\n {2}sampler +http:\/\/127\.0\.0\.1:41084 +tail sampling/);
});
