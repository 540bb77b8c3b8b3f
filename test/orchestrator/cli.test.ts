/**
 * `bkstream flows` against a running orchestrator, and how `bkstream up` wires bkdata-sim and the
 * orchestrator together.
 */
import test from 'ava';
import { runFlows } from '../../services/cli/commands/flows.ts';
import { UP_SERVICES } from '../../services/cli/services.ts';
import { ADMIN_ENV } from '../common/auth-kit.ts';
import { keyOf, setup, waitForFlow } from './kit.ts';

test.serial('bkstream flows: submit, list, get, retry, breakers, usage and errors', async (t) => {
  const { orch } = await setup(t);
  const env = { ORCHESTRATOR_URL: `http://127.0.0.1:${orch.httpPort()}`, ...ADMIN_ENV };
  const out: string[] = [];
  const flows = (...args: string[]): Promise<number> => runFlows(args, env, (line) => out.push(line));

  t.is(await runFlows(['list'], { ORCHESTRATOR_URL: env.ORCHESTRATOR_URL }, (line) => out.push(line)), 1, 'no admin token: refused');
  t.regex(out.pop() ?? '', /^bkstream flows: the orchestrator answered HTTP 401: credentials required.*\(set BKSTREAM_ADMIN_TOKEN/);

  t.is(await flows('submit', 'create_or_update', 'virtual_metric', '4', 'cli-app', '--config', '{"data_id": 77}', '--operator', 'me'), 0);
  t.regex(out.pop() ?? '', /^accepted: command [0-9a-f-]{36}$/);
  await waitForFlow(orch, keyOf({ bk_biz_id: 4, app_name: 'cli-app', flow_type: 'virtual_metric' }), ['success']);

  t.is(await flows('list', '--type', 'virtual_metric'), 0);
  t.regex(out[0] ?? '', /^FLOW\s+STATUS\s+STEP\s+ATTEMPT\s+UPDATED\s+MESSAGE$/);
  t.regex(out[1] ?? '', /^4:cli-app:virtual_metric\s+success\s+done\s+0 /);
  out.length = 0;
  t.is(await flows('list', '--type', 'virtual_metric', '--status', 'success', '--json'), 0);
  t.like(JSON.parse(out.join('\n')), { count: 1, flows: [{ key: '4:cli-app:virtual_metric', status: 'success' }] });
  out.length = 0;
  t.is(await flows('list', '--type', 'virtual_metric', '--offset', '1'), 0);
  t.deepEqual(out.splice(0).slice(1), [], 'past the only flow');
  t.is(await flows('list', '--limit', '0'), 2);
  t.is(out.pop(), 'bkstream flows list: --limit must be from 1 to 1000 (got 0)\nsee bkstream flows list --help');
  t.is(await flows('list', '--status', 'bogus'), 2, 'a usage error, before anything is sent');
  t.is(out.pop(), 'bkstream flows list: --status must be one of pending, running, waiting_dependency, success, stopped, deleted, config_deploy_failed, config_cleans_failed, config_cleans_start_failed, auth_failed, config_flow_failed, stop_failed, delete_failed (got "bogus")\nsee bkstream flows list --help');

  t.is(await flows('get', '4', 'cli-app', 'virtual_metric'), 0);
  t.is((JSON.parse(out.join('\n')) as { flow: { operator: string } }).flow.operator, 'me');
  out.length = 0;

  t.is(await flows('retry', '4', 'cli-app', 'virtual_metric'), 1, 'a successful flow cannot be retried');
  t.regex(out.pop() ?? '', /^bkstream flows: the orchestrator answered HTTP 409: flow 4:cli-app:virtual_metric is success/);
  t.is(await flows('submit', 'explode', 'virtual_metric', '4', 'x'), 2);
  t.regex(out.pop() ?? '', /^bkstream flows submit: <action> must be one of create_or_update, stop, delete \(got "explode"\)\nsee bkstream flows submit --help$/);

  t.is(await flows('breakers'), 0);
  t.deepEqual(out.splice(0).map((l) => l.split(/\s+/)), [['access', 'closed'], ['databus', 'closed'], ['auth', 'closed'], ['dataflow', 'closed'], ['resourcecenter', 'closed']]);
  t.is(await flows('breakers', '--json'), 0);
  t.is((JSON.parse(out.splice(0).join('\n')) as Record<string, string>).access, 'closed');
  t.is(await flows('nonsense'), 2);
  t.regex(out.pop() ?? '', /^bkstream flows: unknown subcommand "nonsense" \(one of list, get, submit, retry, breakers\)/);
  t.is(await flows('get', '4'), 2);
  t.regex(out.pop() ?? '', /^bkstream flows get: missing <app_name>\nsee bkstream flows get --help$/);
  t.is(await runFlows(['list'], { ORCHESTRATOR_URL: 'http://127.0.0.1:1' }, (line) => out.push(line)), 1);
  t.regex(out.pop() ?? '', /^bkstream flows: cannot reach the orchestrator at http:\/\/127.0.0.1:1 \(set ORCHESTRATOR_URL\): /);
});

test('bkstream up: bkdata-sim only without BKDATA_API_URL, and the orchestrator pointed at it', async (t) => {
  const named = await Promise.all(UP_SERVICES.map(async (entry) => ({ entry, name: (await entry.module()).name })));
  const names = named.map((n) => n.name);
  const sim = named.find((n) => n.name === 'bkdata-sim')?.entry;
  const orch = named.find((n) => n.name === 'orchestrator')?.entry;
  t.true(names.indexOf('bkdata-sim') >= 0 && names.indexOf('bkdata-sim') < names.indexOf('orchestrator'), 'the sim starts before the orchestrator');
  t.true(sim?.enabled?.({}));
  t.false(sim?.enabled?.({ BKDATA_API_URL: 'https://paas.example/api/bk-base/prod/' }));
  t.deepEqual(orch?.env?.({}), { BKDATA_API_URL: 'http://127.0.0.1:8090/' });
  t.deepEqual(orch?.env?.({ BKDATA_SIM_PORT: '9999' }), { BKDATA_API_URL: 'http://127.0.0.1:9999/' });
  t.deepEqual(orch?.env?.({ BKDATA_API_URL: 'https://paas.example/' }), {});
});

test('bkstream up: every service, the console after the APIs it proxies and pointed at their ports', async (t) => {
  const named = await Promise.all(UP_SERVICES.map(async (entry) => ({ entry, name: (await entry.module()).name })));
  const names = named.map((n) => n.name);
  t.deepEqual([...names].sort(), ['agent', 'bkdata-sim', 'collector', 'console', 'discovery', 'orchestrator', 'sampler', 'storage']);
  for (const api of ['discovery', 'storage', 'orchestrator']) t.true(names.indexOf(api) < names.indexOf('console'), `${api} before the console`);
  t.is(names.at(-1), 'agent', 'the intakes last (stopped first)');
  const consoleEnv = named.find((n) => n.name === 'console')?.entry.env;
  const env = consoleEnv?.({ DISCOVERY_HTTP_PORT: '9181', STORAGE_HTTP_HOST: '0.0.0.0', ORCH_HOST: '::1', COLLECTOR_OTLP_HTTP_PORT: '5318' }) ?? {};
  t.is(env.CONSOLE_DISCOVERY_URL, 'http://127.0.0.1:9181');
  t.is(env.CONSOLE_STORAGE_URL, 'http://127.0.0.1:8083', 'a wildcard interface is reached on loopback');
  t.is(env.CONSOLE_ORCHESTRATOR_URL, 'http://[::1]:8082');
  t.is(env.CONSOLE_COLLECTOR_ADMIN_URL, 'http://127.0.0.1:4310');
  t.is(env.CONSOLE_OTLP_HTTP_URL, 'http://127.0.0.1:5318/v1/traces');
  t.is(consoleEnv?.({ CONSOLE_STORAGE_URL: 'http://127.0.0.2:1' }).CONSOLE_STORAGE_URL, 'http://127.0.0.2:1', 'an explicit URL is kept');
});
