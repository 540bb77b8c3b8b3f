/**
 * A local single-node Apache Kafka broker (KRaft, combined broker + controller on 127.0.0.1), managed by
 * the project: used by tests, CI, benchmarks and `bkstream up` whenever KAFKA_BROKERS is unset.
 * `scripts/kafka.ts` is its command line (install | start | stop | status | reset).
 *
 * Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT + 1), KAFKA_VERSION (3.9.2),
 * KAFKA_HEAP (512m), BKSTREAM_HOME (<checkout>/.bkstream). Quiet on success (`bkstream up` asks for the
 * first run's download progress: {@link StartOptions.progress}); on failure it says what is wrong
 * ("java not found", "port 9092 in use") and where the log is.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bus, waitForBroker } from '../common/bus/index.ts';
import { silentLogger } from '../common/log.ts';
const ROOT = resolve(import.meta.dirname, '../..');

export interface KafkaSettings {
  version: string;
  port: number;
  controllerPort: number;
  heap: string;
  home: string;
}

export function kafkaSettings(env: NodeJS.ProcessEnv = process.env): KafkaSettings {
  const port = Number(env.KAFKA_PORT ?? 9092);
  return {
    version: env.KAFKA_VERSION ?? '3.9.2',
    port,
    controllerPort: Number(env.KAFKA_CONTROLLER_PORT ?? port + 1),
    heap: env.KAFKA_HEAP ?? '512m',
    home: resolve(env.BKSTREAM_HOME ?? join(ROOT, '.bkstream')),
  };
}

export class KafkaSetupError extends Error {
  override name = 'KafkaSetupError';
}

const libDir = (s: KafkaSettings): string => join(s.home, 'kafka', s.version, 'lib');
export const runDir = (s: KafkaSettings): string => join(s.home, 'kafka', `run-${s.port}`);
const pidFile = (s: KafkaSettings): string => join(runDir(s), 'broker.pid');
export const brokerLog = (s: KafkaSettings): string => join(runDir(s), 'logs', 'server.log');
const stdoutLog = (s: KafkaSettings): string => join(runDir(s), 'broker.out');

function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function requireTool(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) {
    throw new KafkaSetupError(
      (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? `${cmd} not found: ${what}` : `${cmd} failed to run: ${r.error.message}`,
    );
  }
  return `${r.stdout}${r.stderr}`;
}

/** What installing the broker jars reports while mvn runs (see {@link installKafka}). */
export type ProgressListener = (message: string) => void;

/** How often a progress line is printed while mvn downloads (at most), ms. */
export const INSTALL_PROGRESS_INTERVAL_MS = 2_000;

/** One transfer line of mvn's batch-mode output: `Downloaded from central: <url> (12 kB at 50 kB/s)`. */
export interface MavenTransfer {
  done: boolean;
  /** The file name (last segment of the URL). */
  file: string;
  /** Size in bytes when mvn printed it (done lines only). */
  bytes: number | undefined;
}

const TRANSFER = /^(?:\[INFO\]\s+)?(Downloading|Downloaded) from [^:]+: (\S+)(?: \(([\d.]+) (B|kB|KB|MB|GB)\b[^)]*\))?/;
const UNIT: Record<string, number> = { B: 1, kB: 1_000, KB: 1_024, MB: 1_000_000, GB: 1_000_000_000 };

/** Parses one line of mvn output; undefined unless it is a transfer line. */
export function parseMavenTransfer(line: string): MavenTransfer | undefined {
  const m = TRANSFER.exec(line.trim());
  if (!m) return undefined;
  const [, verb, url = '', size, unit] = m;
  const bytes = size !== undefined && unit !== undefined ? Math.round(Number(size) * (UNIT[unit] ?? 1)) : undefined;
  return { done: verb === 'Downloaded', file: url.slice(url.lastIndexOf('/') + 1), bytes };
}

const megabytes = (bytes: number): string => `${(bytes / 1_000_000).toFixed(1)} MB`;

const COPYING = /^(?:\[INFO\]\s+)?Copying (\S+\.jar) to /;

/**
 * Condenses mvn's output into progress messages: at most one per `intervalMs` — the file mvn downloaded
 * last with the files, jars and bytes so far, or, once everything is in ~/.m2, the jar it copied into the
 * lib directory last with how many so far — and the totals from {@link MavenProgress.finish}.
 */
export class MavenProgress {
  readonly #report: ProgressListener;
  readonly #intervalMs: number;
  readonly #now: () => number;
  #files = 0;
  #jars = 0;
  #bytes = 0;
  #copied = 0;
  #lastAt: number | undefined;
  #pending: string | undefined;

  constructor(report: ProgressListener, intervalMs = INSTALL_PROGRESS_INTERVAL_MS, now: () => number = Date.now) {
    this.#report = report;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** Feeds one line of mvn's output. */
  line(line: string): void {
    const t = parseMavenTransfer(line);
    if (t?.done) {
      this.#files++;
      if (t.file.endsWith('.jar')) this.#jars++;
      this.#bytes += t.bytes ?? 0;
      this.#pending = `downloaded ${t.file} (${this.#downloads()} so far)`;
    } else {
      const copy = COPYING.exec(line.trim());
      if (!copy) return;
      this.#copied++;
      this.#pending = `copied ${copy[1] ?? ''} (${this.#copied} jars so far)`;
    }
    const now = this.#now();
    if (this.#lastAt === undefined || now - this.#lastAt >= this.#intervalMs) this.#flush(now);
  }

  /** Reports the totals, if anything was downloaded or copied. */
  finish(): void {
    this.#pending = undefined;
    const parts = [this.#files > 0 ? `${this.#downloads()} downloaded` : '', this.#copied > 0 ? `${this.#copied} jars in place` : ''].filter(Boolean);
    if (parts.length > 0) this.#report(`done: ${parts.join(', ')}`);
  }

  #downloads(): string {
    return `${this.#files} files, ${this.#jars} jars, ${megabytes(this.#bytes)}`;
  }

  #flush(now: number): void {
    if (this.#pending === undefined) return;
    this.#report(this.#pending);
    this.#pending = undefined;
    this.#lastAt = now;
  }
}

function checkTools(s: KafkaSettings): void {
  const javaVersion = requireTool('java', ['-version'], 'install a Java 17+ runtime (Kafka runs on the JVM), or set KAFKA_BROKERS to an existing broker');
  const major = Number(/version "(\d+)/.exec(javaVersion)?.[1] ?? 0);
  if (major > 0 && major < 11) throw new KafkaSetupError(`Java ${major} is too old for Kafka ${s.version}; install Java 17+`);
  requireTool('mvn', ['-v'], 'install Apache Maven (it fetches the broker jars from Maven Central), or set KAFKA_BROKERS');
}

function mavenArgs(s: KafkaSettings, lib: string, quiet: boolean): string[] {
  return [
    '-B',
    ...(quiet ? ['-q'] : ['-Dstyle.color=never']),
    '-f',
    join(import.meta.dirname, 'kafka-pom.xml'),
    `-Dkafka.version=${s.version}`,
    'dependency:copy-dependencies',
    `-DoutputDirectory=${lib}`,
    '-DincludeScope=runtime',
  ];
}

/** Checks what mvn left in `lib` and marks the install complete; the error names the log otherwise. */
function completeInstall(s: KafkaSettings, lib: string, status: number | null, logPath: string): string {
  const jars = existsSync(lib) ? readdirSync(lib).filter((f) => f.endsWith('.jar')) : [];
  if (status !== 0 || !jars.some((f) => f.startsWith(`kafka_2.13-${s.version}`))) {
    throw new KafkaSetupError(`mvn could not resolve org.apache.kafka:kafka_2.13:${s.version} (log: ${logPath}):\n${tail(logPath, 20)}`);
  }
  writeFileSync(join(lib, '.complete'), `${new Date().toISOString()}\n`);
  return lib;
}

const installLog = (s: KafkaSettings): string => join(s.home, 'kafka', `install-${s.version}.log`);

/** Whether the broker jars of `s.version` are installed (nothing to download). */
export function kafkaInstalled(s: KafkaSettings = kafkaSettings()): boolean {
  return existsSync(join(libDir(s), '.complete'));
}

/** Resolves the broker jars into .bkstream/kafka/<version>/lib (once), quietly. */
export function installKafka(s: KafkaSettings = kafkaSettings()): string {
  const lib = libDir(s);
  if (kafkaInstalled(s)) return lib;
  checkTools(s);
  mkdirSync(lib, { recursive: true });
  const logPath = installLog(s);
  const r = spawnSync('mvn', mavenArgs(s, lib, true), { encoding: 'utf8' });
  writeFileSync(logPath, `${r.stdout ?? ''}${r.stderr ?? ''}`);
  return completeInstall(s, lib, r.status, logPath);
}

/**
 * {@link installKafka} telling `progress` what happens: that mvn starts resolving, which file it
 * downloaded (or, from ~/.m2, copied) last and how many so far (condensed by {@link MavenProgress}), and
 * the totals. Silent when the jars are installed already. mvn's whole output goes to the install log.
 */
export async function installKafkaWithProgress(s: KafkaSettings, progress: ProgressListener, intervalMs = INSTALL_PROGRESS_INTERVAL_MS): Promise<string> {
  const lib = libDir(s);
  if (kafkaInstalled(s)) return lib;
  checkTools(s);
  mkdirSync(lib, { recursive: true });
  const logPath = installLog(s);
  progress(`resolving the Kafka ${s.version} broker jars with mvn (first run; mvn caches them in ~/.m2, its log: ${logPath})`);
  const condensed = new MavenProgress(progress, intervalMs);
  const log = openSync(logPath, 'w');
  let status: number | null;
  try {
    status = await new Promise<number | null>((done, fail) => {
      const child = spawn('mvn', mavenArgs(s, lib, false), { stdio: ['ignore', 'pipe', 'pipe'] });
      let rest = '';
      const take = (chunk: Buffer): void => {
        writeSync(log, chunk);
        const lines = (rest + chunk.toString('utf8')).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) condensed.line(line);
      };
      child.stdout.on('data', take);
      child.stderr.on('data', (chunk: Buffer) => writeSync(log, chunk));
      child.once('error', (err) => fail(new KafkaSetupError(`mvn failed to run: ${err.message}`)));
      child.once('close', (code) => {
        if (rest !== '') condensed.line(rest);
        done(code);
      });
    });
  } finally {
    closeSync(log);
  }
  condensed.finish();
  return completeInstall(s, lib, status, logPath);
}

function serverProperties(s: KafkaSettings, dataDir: string): string {
  return [
    '# written by bkstream (services/cli/local-kafka.ts) — a single-node KRaft broker for local runs and tests',
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${s.controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${s.port},CONTROLLER://127.0.0.1:${s.controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${s.port}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `log.dirs=${dataDir}`,
    'num.partitions=1',
    'auto.create.topics.enable=false',
    'delete.topic.enable=true',
    // one node: internal topics cannot have three replicas (or groups never find a coordinator)
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=10',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    'log.segment.bytes=67108864',
    'log.retention.check.interval.ms=60000',
    '',
  ].join('\n');
}

function log4jProperties(logFile: string): string {
  return [
    'log4j.rootLogger=INFO, file',
    'log4j.appender.file=org.apache.log4j.RollingFileAppender',
    `log4j.appender.file.File=${logFile}`,
    'log4j.appender.file.MaxFileSize=20MB',
    'log4j.appender.file.MaxBackupIndex=2',
    'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
    'log4j.logger.kafka.request.logger=WARN',
    'log4j.logger.state.change.logger=WARN',
    'log4j.logger.kafka.controller=WARN',
    'log4j.logger.org.apache.kafka.controller=WARN',
    '',
  ].join('\n');
}

function readPid(s: KafkaSettings): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(s), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((done) => {
    const sock = connect({ port, host });
    sock.setTimeout(1_000);
    sock.once('connect', () => {
      sock.destroy();
      done(true);
    });
    sock.once('timeout', () => {
      sock.destroy();
      done(false);
    });
    sock.once('error', () => done(false));
  });
}

export function brokersOf(s: KafkaSettings): string[] {
  return [`127.0.0.1:${s.port}`];
}

/** Whether a Kafka broker answers metadata requests at the given brokers. */
export async function brokerAnswers(brokers: string[], timeoutMs = 3_000): Promise<boolean> {
  try {
    const bus = new Bus({ brokers, clientId: 'bkstream-probe', logger: silentLogger, retries: 0, connectionTimeoutMs: 1_000, requestTimeoutMs: 2_000 });
    await waitForBroker(bus, timeoutMs, { coordinator: true });
    return true;
  } catch {
    return false;
  }
}

export interface StartResult {
  brokers: string[];
  /** False when a broker was already running (started earlier from this checkout, or by someone else). */
  started: boolean;
}

export interface StartOptions {
  /**
   * Told what the first run's install does (mvn resolving and downloading the broker jars), condensed;
   * nothing when the jars are installed. Default: quiet.
   */
  progress?: ProgressListener;
}

/** Starts the broker unless it is already running; resolves when it answers metadata requests. */
export async function startKafka(s: KafkaSettings = kafkaSettings(), readyTimeoutMs = 90_000, options: StartOptions = {}): Promise<StartResult> {
  const brokers = brokersOf(s);
  const pid = readPid(s);
  if (pid !== undefined && alive(pid)) {
    if (await brokerAnswers(brokers, readyTimeoutMs)) return { brokers, started: false };
    throw new KafkaSetupError(`broker process ${pid} is running but does not answer on port ${s.port} (log: ${brokerLog(s)})`);
  }
  if (await portOpen(s.port)) {
    // A broker someone else manages (another checkout's, `bkstream up`'s) already answers here: use it,
    // and leave it alone afterwards (started: false).
    if (await brokerAnswers(brokers, 5_000)) return { brokers, started: false };
    throw new KafkaSetupError(`port ${s.port} in use by something that is not a Kafka broker: stop it, or choose other ports with KAFKA_PORT / KAFKA_CONTROLLER_PORT`);
  }
  if (await portOpen(s.controllerPort)) {
    throw new KafkaSetupError(`port ${s.controllerPort} in use: stop what listens there, or choose another controller port with KAFKA_CONTROLLER_PORT`);
  }
  const lib = options.progress ? await installKafkaWithProgress(s, options.progress) : installKafka(s);
  const dir = runDir(s);
  const dataDir = join(dir, 'data');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const props = join(dir, 'server.properties');
  writeFileSync(props, serverProperties(s, dataDir));
  const log4j = join(dir, 'log4j.properties');
  writeFileSync(log4j, log4jProperties(brokerLog(s)));
  const classpath = `${lib}/*`;
  const jvm = [`-Xms${s.heap}`, `-Xmx${s.heap}`, `-Dlog4j.configuration=file:${log4j}`, `-Dkafka.logs.dir=${join(dir, 'logs')}`, '-Djava.awt.headless=true'];

  if (!existsSync(join(dataDir, 'meta.properties'))) {
    // A KRaft cluster id is a base64url-encoded random 16-byte UUID.
    const clusterId = randomBytes(16).toString('base64url');
    // `--cluster-id=<id>` in one word: an id starting with `-` (1 in 64) would otherwise be read as an option.
    const fmt = spawnSync('java', [...jvm, '-cp', classpath, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', props, '--ignore-formatted'], {
      encoding: 'utf8',
    });
    if (fmt.error) throw new KafkaSetupError(`java not found: install a Java 17+ runtime (${fmt.error.message})`);
    if (fmt.status !== 0) throw new KafkaSetupError(`formatting the KRaft storage failed:\n${fmt.stdout}${fmt.stderr}`);
  }

  const out = openSync(stdoutLog(s), 'a');
  const child = spawn('java', [...jvm, '-cp', classpath, 'kafka.Kafka', props], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  let exited: number | null | undefined;
  child.once('exit', (code) => {
    exited = code;
  });
  child.once('error', () => {
    exited = -1;
  });
  if (child.pid === undefined) throw new KafkaSetupError('java not found: install a Java 17+ runtime');
  writeFileSync(pidFile(s), `${child.pid}\n`);
  child.unref();

  const deadline = Date.now() + readyTimeoutMs;
  while (Date.now() < deadline) {
    if (exited !== undefined) {
      rmSync(pidFile(s), { force: true });
      throw new KafkaSetupError(`the broker exited with code ${exited} while starting (log: ${brokerLog(s)}):\n${tail(stdoutLog(s))}\n${tail(brokerLog(s))}`);
    }
    if ((await portOpen(s.port)) && (await brokerAnswers(brokers, 2_000))) return { brokers, started: true };
    await sleep(250);
  }
  await stopKafka(s);
  throw new KafkaSetupError(`the broker did not answer within ${readyTimeoutMs} ms (log: ${brokerLog(s)}):\n${tail(brokerLog(s))}`);
}

/** Stops the broker started from this checkout; a no-op when none runs. */
export async function stopKafka(s: KafkaSettings = kafkaSettings(), timeoutMs = 30_000): Promise<boolean> {
  const pid = readPid(s);
  if (pid === undefined || !alive(pid)) {
    rmSync(pidFile(s), { force: true });
    return false;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  while (alive(pid)) await sleep(50);
  rmSync(pidFile(s), { force: true });
  return true;
}

export async function kafkaStatus(s: KafkaSettings = kafkaSettings()): Promise<'running' | 'stopped' | 'unresponsive'> {
  const pid = readPid(s);
  if (pid === undefined || !alive(pid)) return 'stopped';
  return (await brokerAnswers(brokersOf(s))) ? 'running' : 'unresponsive';
}
