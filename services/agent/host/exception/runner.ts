/**
 * exceptionbeat's collectors as one long-running loop (the reference starts four long-lived goroutines on
 * the first run): disk space and read-only checks on their intervals, core files from a directory watch,
 * OOM kills from /dev/kmsg. The loop wakes every second on the injected clock; each source that cannot be
 * read is reported once in the log and retried (core directory) or left off (kernel log), never fatal.
 */
import type { Logger } from '../../../common/log.ts';
import type { Clock } from '../clock.ts';
import type { HostPaths } from '../paths.ts';
import { CoreAggregator, CoreDirWatcher, CoreFileParser, corefileExtra, readCorePattern, readCoreUsesPid, splitCorePattern } from './corefile.ts';
import { checkDiskReadOnly, checkDiskSpace, type RoState } from './disk.ts';
import { type AlarmHost, type Extra, ExceptionMessages } from './event.ts';
import { KmsgReader, OomAggregator, oomDisabledReason, OomParser } from './oom.ts';

/** exceptionbeat's settings (reference ExceptionBeatConfig), already parsed. */
export interface ExceptionbeatOptions {
  readonly diskSpace: boolean;
  readonly diskReadOnly: boolean;
  readonly corefile: boolean;
  readonly oom: boolean;
  readonly checkDiskRoIntervalMs: number;
  readonly checkDiskSpaceIntervalMs: number;
  readonly usedMaxDiskSpacePercent: number;
  readonly freeMinDiskSpaceGiB: number;
  readonly diskRoWhiteList: readonly RegExp[];
  readonly diskRoBlackList: readonly RegExp[];
  readonly oomReportGapMs: number;
  /** `corefile_pattern`: overrides /proc/sys/kernel/core_pattern when not empty. */
  readonly corefilePattern: string;
  readonly corefileMatchRegex?: RegExp;
}

export interface ExceptionbeatEnvironment {
  readonly paths: HostPaths;
  readonly host: AlarmHost;
  readonly dataId: number;
  readonly state: RoState;
  readonly logger: Logger;
  /** When the agent started (OOM kills logged before it are ignored); ms. */
  readonly startupMs: number;
}

/** The core-file report gap (the reference's fixed 1 minute; `corefile_report_gap` is parsed but unused there). */
export const CORE_REPORT_GAP_MS = 60_000;
/** How often the core pattern and the watch are re-checked. */
export const CORE_RECHECK_MS = 30_000;
const TICK_MS = 1_000;

export class ExceptionbeatRunner {
  readonly #o: ExceptionbeatOptions;
  readonly #env: ExceptionbeatEnvironment;
  readonly #messages = new ExceptionMessages();
  readonly #reported = new Set<string>();
  #pendingCores: string[] = [];
  #watcher: CoreDirWatcher | undefined;
  #parser: CoreFileParser | undefined;
  #parserKey = '';
  #cores: CoreAggregator | undefined;
  #kmsg: KmsgReader | undefined;
  #oomParser = new OomParser();
  #ooms: OomAggregator | undefined;

  constructor(opts: ExceptionbeatOptions, env: ExceptionbeatEnvironment) {
    this.#o = opts;
    this.#env = env;
  }

  /** Logs a problem of `source` once (until it recovers). */
  #once(source: string, message: string, meta: Record<string, unknown>): void {
    if (this.#reported.has(source)) return;
    this.#reported.add(source);
    this.#env.logger.warn(message, { source, ...meta });
  }

  /** Runs until the clock's sleep rejects (the run is aborted); `emit` publishes one message body. */
  async run(clock: Clock, emit: (body: Record<string, unknown>) => Promise<void>): Promise<void> {
    const o = this.#o;
    const start = clock.now();
    const send = async (extras: readonly Extra[]): Promise<void> => {
      for (const body of this.#messages.bulk(this.#env.dataId, this.#env.host.ip, extras, clock.now())) await emit(body);
    };
    let nextSpace = start + o.checkDiskSpaceIntervalMs;
    let nextRo = start + o.checkDiskRoIntervalMs;
    let nextCoreCheck = start;
    let nextCoreFlush = start + CORE_REPORT_GAP_MS / 2;
    let nextOomFlush = start + o.oomReportGapMs;
    if (o.corefile) this.#cores = new CoreAggregator(CORE_REPORT_GAP_MS);
    if (o.oom) this.#startOom(start);
    try {
      for (;;) {
        const now = clock.now();
        if (o.corefile) {
          if (now >= nextCoreCheck) {
            this.#checkCoreSetup();
            nextCoreCheck = now + CORE_RECHECK_MS;
          }
          const files = this.#pendingCores;
          this.#pendingCores = [];
          for (const file of files) {
            const extra = this.#coreExtra(file);
            const sent = extra && this.#cores?.add(extra, now);
            if (sent) await send([sent]);
          }
          if (now >= nextCoreFlush) {
            for (const extra of this.#cores?.flush(now) ?? []) await send([extra]);
            nextCoreFlush = now + CORE_REPORT_GAP_MS / 2;
          }
        }
        if (o.oom && this.#kmsg) this.#readKmsg();
        if (o.oom && now >= nextOomFlush) {
          const extras = this.#ooms?.flush() ?? [];
          if (extras.length > 0) await send(extras);
          nextOomFlush = now + o.oomReportGapMs;
        }
        if (o.diskSpace && now >= nextSpace) {
          nextSpace += o.checkDiskSpaceIntervalMs;
          const extras = await this.#guard('diskspace', () => checkDiskSpace(this.#env.paths, this.#env.host, o.usedMaxDiskSpacePercent, o.freeMinDiskSpaceGiB));
          if (extras && extras.length > 0) await send(extras);
        }
        if (o.diskReadOnly && now >= nextRo) {
          nextRo += o.checkDiskRoIntervalMs;
          const extras = await this.#guard('diskro', async () =>
            checkDiskReadOnly(this.#env.paths, this.#env.host, this.#env.state, o.diskRoWhiteList, o.diskRoBlackList),
          );
          // Each read-only mount is its own message.
          for (const extra of extras ?? []) await send([extra]);
        }
        await clock.sleep(TICK_MS);
      }
    } catch (err) {
      if (!(err instanceof Error && err.name === 'AbortError')) throw err;
    } finally {
      this.#watcher?.close();
      this.#watcher = undefined;
      this.#kmsg?.close();
      this.#kmsg = undefined;
    }
    // The reference reports the OOM kills still counted when it stops.
    const left = this.#ooms?.flush() ?? [];
    if (left.length > 0) await send(left).catch(() => undefined);
  }

  async #guard<T>(source: string, f: () => Promise<T>): Promise<T | undefined> {
    try {
      const r = await f();
      this.#reported.delete(source);
      return r;
    } catch (err) {
      this.#once(source, `exceptionbeat ${source} check failed`, { err });
      return undefined;
    }
  }

  #checkCoreSetup(): void {
    const { paths } = this.#env;
    const corePattern = readCorePattern(paths.procRoot, this.#o.corefilePattern);
    const split = corePattern === undefined ? undefined : splitCorePattern(corePattern);
    if (!split) {
      this.#once('corefile', 'exceptionbeat corefile: no core file directory in the core pattern', { corePattern });
      this.#watcher?.close();
      return;
    }
    const usesPid = readCoreUsesPid(paths.procRoot) ?? false;
    const key = `${split.pattern}\n${usesPid}`;
    if (!this.#parser || key !== this.#parserKey) {
      this.#parser = new CoreFileParser(split.pattern, usesPid, this.#o.corefileMatchRegex);
      this.#parserKey = key;
    }
    this.#watcher ??= new CoreDirWatcher(
      (file) => this.#pendingCores.push(file),
      (err) => this.#once('corefile-watch', 'exceptionbeat corefile: cannot watch the core directory', { dir: split.dir, err }),
    );
    if (this.#watcher.watch(split.dir)) this.#reported.delete('corefile');
  }

  #coreExtra(file: string): Extra | undefined {
    const parsed = this.#parser?.parse(file);
    if (!parsed?.ok) return undefined;
    return corefileExtra(this.#env.host, file, parsed.dimensions);
  }

  #startOom(nowMs: number): void {
    const reason = oomDisabledReason(this.#env.paths);
    if (reason !== undefined) {
      this.#env.logger.warn('exceptionbeat oom: collection disabled', { reason });
      return;
    }
    try {
      this.#kmsg = new KmsgReader(this.#env.paths, nowMs);
      this.#ooms = new OomAggregator(this.#env.startupMs);
      this.#oomParser = new OomParser();
    } catch (err) {
      this.#once('oom', 'exceptionbeat oom: the kernel log is not readable; OOM alarms are off', { err });
    }
  }

  #readKmsg(): void {
    try {
      for (const { record, timeMs } of this.#kmsg?.drain() ?? []) {
        const kill = this.#oomParser.feed(record.message, timeMs);
        if (kill) this.#ooms?.add(this.#env.host, kill);
      }
    } catch (err) {
      this.#once('oom', 'exceptionbeat oom: reading the kernel log failed; OOM alarms are off', { err });
      this.#kmsg?.close();
      this.#kmsg = undefined;
    }
  }
}
