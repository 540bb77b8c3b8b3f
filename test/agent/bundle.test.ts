/**
 * The host agent's bundle (services/agent/build.ts), as the DaemonSet runs it: built into a fresh
 * directory, run with the deployed Node flags in check mode on a configuration that needs a task type
 * loaded on first use (tcp, from a lazily evaluated module of the bundle), the schemas (Avro), the
 * package version and the host's /proc — so a rewrite of the build that breaks any of them fails here.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { AGENT_NODE_FLAGS, buildAgent } from '../../services/agent/build.ts';
import { tempDir } from './kit.ts';

test('the bundle runs in check mode with the deployed flags: a lazily loaded task type, basereport and selfstats all run', async (t) => {
  const dir = tempDir(t);
  const built = await buildAgent(join(dir, 'out', 'agent.cjs'));
  t.true(existsSync(built.file));
  const text = readFileSync(built.file, 'utf8');
  t.false(text.includes('import.meta'), 'no import.meta is left in the CommonJS bundle');
  t.false(/require\("(pg|@electric-sql\/pglite)"\)/.test(text), 'the database drivers are not in the agent');
  const listener = createServer((s) => s.end());
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  t.teardown(() => listener.close());
  const port = (listener.address() as { port: number }).port;
  const main = join(dir, 'bkmonitorbeat.conf');
  mkdirSync(join(dir, 'conf.d'), { recursive: true });
  writeFileSync(
    main,
    `bkmonitorbeat:\n  node_id: 0\n  ip: 127.0.0.1\n  bk_cloud_id: 0\n  bk_biz_id: 2\n  mode: check\n  include: conf.d\n  host_id_path: ${join(dir, 'hostid')}\n` +
      `  selfstats_task:\n    dataid: 1100030\n    task_id: 88\n    period: 1m\n` +
      `  basereport_task:\n    dataid: 1001\n    task_id: 89\n    period: 1m\n` +
      `  tcp_task:\n    dataid: 1009\n    tasks:\n      - task_id: 90\n        period: 1m\n        target_host: 127.0.0.1\n        target_port: ${port}\n`,
  );
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, built.file], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AGENT_CONFIG: main, AGENT_STATE_DIR: join(dir, 'state'), AGENT_ADMIN_PORT: '0', KAFKA_BROKERS: '127.0.0.1:1', AGENT_SHUTDOWN_TIMEOUT_MS: '300', LOG_LEVEL: 'error' },
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(killer);
  t.is(code, 0, `${out}\n${err}`);
  t.regex(out, /^task {4}selfstats #88 \(main:selfstats_task\): ok in [\d.]+ s, 1 output$/m);
  t.regex(out, /^task {4}basereport #89 .*: ok in [\d.]+ s/m);
  t.regex(out, /^task {4}tcp #90 .*: ok in [\d.]+ s, 1 output$/m);
  t.regex(out, /^3 tasks run, 0 failed$/m);
});
