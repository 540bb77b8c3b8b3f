/**
 * Where the CLI looks for a service's API (services/cli/api.ts): its URL variable; else the service's own
 * host and port settings, so `bkstream status` / `flows` in the environment `bkstream up` ran with reach
 * the ports it listens on (found by the whole-process test of `up --demo`: with DISCOVERY_HTTP_PORT etc.
 * set, status asked the default ports); else the default port on loopback.
 */
import test from 'ava';
import { APIS, baseUrlOf } from '../../services/cli/api.ts';

test('the URL variable wins, without its trailing slashes', (t) => {
  t.is(baseUrlOf(APIS.discovery, { DISCOVERY_URL: 'http://d.example:9000//', DISCOVERY_HTTP_PORT: '7001' }), 'http://d.example:9000');
});

test('without a URL, the service\'s own port (and host) settings, as `up` ran', (t) => {
  t.is(baseUrlOf(APIS.discovery, { DISCOVERY_HTTP_PORT: '7001' }), 'http://127.0.0.1:7001');
  t.is(baseUrlOf(APIS.orchestrator, { ORCH_HTTP_PORT: '7002', ORCH_GRPC_PORT: '7003' }), 'http://127.0.0.1:7002');
  t.is(baseUrlOf(APIS.storage, { STORAGE_HTTP_PORT: '7004', STORAGE_HTTP_HOST: '10.0.0.5' }), 'http://10.0.0.5:7004');
  t.is(baseUrlOf(APIS.storage, { STORAGE_HTTP_PORT: ' 7004 ', STORAGE_HTTP_HOST: '0.0.0.0' }), 'http://127.0.0.1:7004', 'a wildcard interface is reached on loopback');
  t.is(baseUrlOf(APIS.orchestrator, { ORCH_HTTP_PORT: '7002', ORCH_HOST: '::1' }), 'http://[::1]:7002');
  t.is(baseUrlOf(APIS.orchestrator, { ORCH_HTTP_PORT: '7002', ORCH_HOST: '::' }), 'http://127.0.0.1:7002');
});

test('no URL and no usable port: the default (port 0 is any free port, it names no address)', (t) => {
  t.is(baseUrlOf(APIS.discovery, {}), 'http://127.0.0.1:8081');
  t.is(baseUrlOf(APIS.orchestrator, { ORCH_HTTP_PORT: '0' }), 'http://127.0.0.1:8082');
  t.is(baseUrlOf(APIS.storage, { STORAGE_HTTP_PORT: 'x', STORAGE_URL: '' }), 'http://127.0.0.1:8083');
});
