/**
 * Helpers of the probe tests: task configs cleaned the way the config engine cleans them, runs through the
 * real run wrapper (deadline = the task's timeout, the type's concurrency limiter), and local targets
 * (HTTP/HTTPS with a self-signed certificate made here, TCP/UDP echo and silent servers, refused ports,
 * an HTTP proxy). Nothing here talks to an address off this machine.
 */
import type { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { ConfigProblem } from '../../../services/common/errors.ts';
import { systemClock } from '../../../services/agent/clock.ts';
import { fields, type RawMap } from '../../../services/agent/config-fields.ts';
import { runDeadlineMs } from '../../../services/agent/schedulers/daemon.ts';
import { startRun, type RunStatus } from '../../../services/agent/schedulers/runner.ts';
import { ConcurrencyLimiter } from '../../../services/agent/schedulers/semaphore.ts';
import type { BaseTaskConfig, EventOutput, MetricsOutput, ProbeResources, TaskOutput, TaskType } from '../../../services/agent/task.ts';
import { cleanTiming, readBase, readMeta, taskIdent } from '../../../services/agent/task-config.ts';
import { recordingEnv } from '../kit.ts';

export { testHost } from '../kit.ts';

/** The cleaned config of one entry (`meta` = the section / child file fields), or the problems. */
export function configure<C extends BaseTaskConfig>(type: TaskType<C>, entry: RawMap, meta: RawMap = {}): { config?: C; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const m = readMeta(fields({ dataid: 1011, ...meta }, problems, 'meta'), type.metaDefaults);
  const raw = readBase(fields({ task_id: 1, ...entry }, problems, 'entry'));
  const timing = cleanTiming(raw, m);
  const partial = { type: type.type, taskId: raw.taskId, bkBizId: raw.bizIdField, ...timing, labels: raw.labels, tags: raw.tags };
  const base: BaseTaskConfig = { ...partial, ident: taskIdent(type.type, partial, entry) };
  const own: ConfigProblem[] = [];
  const config = type.parse({ task_id: 1, ...entry }, base, own, { dataid: 1011, ...meta });
  problems.push(...own);
  return problems.length > 0 ? { problems } : { config, problems };
}

/** The config, failing the test on problems. */
export function mustConfigure<C extends BaseTaskConfig>(t: ExecutionContext, type: TaskType<C>, entry: RawMap, meta: RawMap = {}): C {
  const r = configure(type, entry, meta);
  if (!r.config) t.fail(`config problems: ${JSON.stringify(r.problems)}`);
  return r.config;
}

export interface RunResult {
  outputs: TaskOutput[];
  events: EventOutput[];
  metrics: MetricsOutput[];
  status: RunStatus;
  ms: number;
}

/**
 * One run of a task through the real run wrapper (deadline = timeout); `limits` are `concurrency_limit.task`,
 * `probes` the agent's probe resources (default: the process defaults).
 */
export async function runOnce<C extends BaseTaskConfig>(type: TaskType<C>, config: C, limits: ConstructorParameters<typeof ConcurrencyLimiter>[0] = {}, probes?: ProbeResources): Promise<RunResult> {
  const env = recordingEnv(systemClock, new ConcurrencyLimiter(limits), probes ? { probes } : {});
  const task = type.create(config);
  const started = performance.now();
  const handle = startRun(env, task, new AbortController().signal, runDeadlineMs(config));
  const status = await handle.outcome;
  await handle.settled;
  await task.stop?.();
  const outputs = env.outputs;
  return {
    outputs,
    events: outputs.filter((o): o is EventOutput => o.kind === 'event'),
    metrics: outputs.filter((o): o is MetricsOutput => o.kind === 'metrics'),
    status,
    ms: performance.now() - started,
  };
}

/** A fresh directory removed after the test. */
export function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'bkstream-probes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let certificate: Promise<{ key: Buffer; cert: Buffer }> | undefined;

/** A self-signed certificate for `localhost` / 127.0.0.1 / ::1, made once per test file with openssl (off the event loop). */
export function selfSignedCert(): Promise<{ key: Buffer; cert: Buffer }> {
  certificate ??= new Promise((resolve, reject) => {
    const dir = mkdtempSync(join(tmpdir(), 'bkstream-probes-cert-'));
    const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'];
    execFile('openssl', args, (err) => {
      try {
        if (err) reject(new Error(`openssl failed: ${err.message}`));
        else resolve({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
  return certificate;
}

/** Routes of the test HTTP(S) server. */
function route(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const p = url.pathname;
  let m: RegExpExecArray | null;
  if (p === '/ok') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': '11' });
    res.end('hello world');
  } else if ((m = /^\/status\/(\d+)$/.exec(p))) {
    res.writeHead(Number(m[1]), { 'content-type': 'text/html' });
    res.end(`status ${m[1]}`);
  } else if (p === '/slow') {
    const ms = Number(url.searchParams.get('ms') ?? '2000');
    const timer = setTimeout(() => {
      res.writeHead(200);
      res.end('late');
    }, ms);
    res.on('close', () => clearTimeout(timer));
  } else if (p === '/slowbody') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first part ');
    const timer = setTimeout(() => res.end('second part'), Number(url.searchParams.get('ms') ?? '2000'));
    res.on('close', () => clearTimeout(timer));
  } else if ((m = /^\/redirect\/(\d+)$/.exec(p))) {
    const n = Number(m[1]);
    res.writeHead(302, { location: n > 1 ? `/redirect/${n - 1}` : '/ok' });
    res.end();
  } else if (p === '/redirect307') {
    res.writeHead(307, { location: '/echo' });
    res.end();
  } else if (p === '/loop') {
    res.writeHead(302, { location: '/loop' });
    res.end();
  } else if (p === '/gzip') {
    const body = gzipSync(Buffer.from('compressed hello'));
    res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': String(body.length), 'content-type': 'text/plain' });
    res.end(body);
  } else if (p === '/badgzip') {
    res.writeHead(200, { 'content-encoding': 'gzip' });
    res.end('this is not gzip');
  } else if (p === '/big') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('A'.repeat(200_000) + 'END');
  } else if (p === '/bigheaders') {
    res.writeHead(200, { 'x-big': 'h'.repeat(20_000) });
    res.end('ok');
  } else if (p === '/setcookie') {
    res.writeHead(302, { location: '/needcookie', 'set-cookie': 'session=abc; Path=/' });
    res.end();
  } else if (p === '/needcookie') {
    const ok = (req.headers.cookie ?? '').includes('session=abc');
    res.writeHead(ok ? 200 : 403);
    res.end(ok ? 'cookie ok' : 'no cookie');
  } else if (p === '/echo') {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString('latin1'), local: req.socket.localAddress }));
    });
  } else {
    res.writeHead(404);
    res.end('not found');
  }
}

async function listen(server: net.Server, t: ExecutionContext, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  t.teardown(() => {
    (server as http.Server).closeAllConnections?.();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** The routed HTTP server on `host`; returns its port. */
export async function httpServer(t: ExecutionContext, host = '127.0.0.1'): Promise<number> {
  return listen(http.createServer(route), t, host);
}

/** The routed HTTPS server (self-signed) on `host`; returns its port. */
export async function httpsServer(t: ExecutionContext, host = '127.0.0.1'): Promise<number> {
  return listen(https.createServer(await selfSignedCert(), route), t, host);
}

/** A forward proxy (absolute-form requests and CONNECT); counts what it served. */
export async function proxyServer(t: ExecutionContext): Promise<{ port: number; forwarded: string[]; tunnels: string[] }> {
  const forwarded: string[] = [];
  const tunnels: string[] = [];
  const server = http.createServer((req, res) => {
    forwarded.push(req.url ?? '');
    const target = new URL(req.url ?? '');
    const up = http.request({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  server.on('connect', (req: IncomingMessage, socket: net.Socket) => {
    tunnels.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const up = net.connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  return { port: await listen(server, t), forwarded, tunnels };
}

/** A TCP server: `echo` writes back what it reads; `silent` reads and never answers; `close` closes at once; `banner` greets at once, `slowbanner` after 400 ms. */
export async function tcpServer(t: ExecutionContext, mode: 'echo' | 'silent' | 'close' | 'banner' | 'slowbanner', host = '127.0.0.1'): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    if (mode === 'echo') s.on('data', (d) => s.write(d));
    else if (mode === 'close') s.end();
    else if (mode === 'banner') s.write('SSH-2.0-test\r\n');
    else if (mode === 'slowbanner') {
      const timer = setTimeout(() => s.write('SSH-2.0-slow\r\n'), 400);
      s.on('close', () => clearTimeout(timer));
    }
  });
  t.teardown(() => {
    for (const s of sockets) s.destroy();
  });
  return listen(server, t, host);
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort(type: 'tcp' | 'udp4' | 'udp6' = 'tcp', host = '127.0.0.1'): Promise<number> {
  if (type === 'tcp') {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, host, () => r()));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }
  const s = dgram.createSocket(type);
  await new Promise<void>((r) => s.bind(0, host, () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A UDP server: `echo` answers every datagram with `reply` (default: the datagram); `silent` never answers. */
export async function udpServer(t: ExecutionContext, mode: 'echo' | 'silent', options: { host?: string; reply?: Buffer } = {}): Promise<{ port: number; received: Buffer[] }> {
  const host = options.host ?? '127.0.0.1';
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const received: Buffer[] = [];
  s.on('message', (msg, rinfo) => {
    received.push(msg);
    if (mode === 'echo') s.send(options.reply ?? msg, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, host, () => r()));
  t.teardown(() => s.close());
  return { port: s.address().port, received };
}

/** The body of an event output, typed loosely for assertions. */
export function bodyOf(o: TaskOutput | undefined): Record<string, unknown> {
  if (!o || o.kind !== 'event') throw new Error(`expected an event output, got ${JSON.stringify(o)}`);
  return o.body;
}
