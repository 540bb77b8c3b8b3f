import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { kafkaSettings, startKafka } from '../../services/cli/local-kafka.ts';
import { brokers } from '../helpers/kafka.ts';

test('a port held by something that is not Kafka is a clear error', async (t) => {
  // A server that accepts connections and never answers.
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  const port = (server.address() as AddressInfo).port;
  const err = await t.throwsAsync(startKafka(kafkaSettings({ ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(port + 1) })));
  t.regex(err?.message ?? '', new RegExp(`port ${port} in use by something that is not a Kafka broker`));
});

test('a broker that already answers on the port is used, not started again', async (t) => {
  const [host, port] = (brokers()[0] ?? '').split(':');
  t.is(host, '127.0.0.1');
  const r = await startKafka(kafkaSettings({ ...process.env, KAFKA_PORT: port, KAFKA_CONTROLLER_PORT: String(Number(port) + 1) }));
  t.false(r.started);
  t.deepEqual(r.brokers, [`127.0.0.1:${port}`]);
});

test('without java on the PATH the install says so', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'bkhome-'));
  const r = spawnSync(process.execPath, ['scripts/kafka.ts', 'install'], { env: { PATH: '/nonexistent', BKSTREAM_HOME: home }, encoding: 'utf8' });
  t.is(r.status, 1);
  t.regex(r.stderr, /kafka: java not found: install a Java 17\+ runtime/);
});
