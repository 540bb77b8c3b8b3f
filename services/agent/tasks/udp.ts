/**
 * `udp` uptime check (reference tasks/udp, §A5.5, errata 12 and 17; template data id 1010). Like tcp:
 * hosts expanded to IPs (failures are events), every IP probed concurrently with 1 unit of the type's
 * concurrency limit. Each IP gets up to `times` attempts (default 3, capped by the meta `max_times`,
 * default 10), each on a fresh socket: write `request` (default `X`, hex `58`), wait `available_duration`
 * for one datagram ≤ `buffer_size` bytes. ICMP port unreachable → 2501 ConnRefused and stop; a silent or
 * failing read → 1101 / 1200 and the next attempt when a response is expected or `wait_empty_response`,
 * else success. A datagram is matched against `response` (→ 1202).
 *
 * `times` is the 0-based index of the attempt the loop stopped at — 0 for success on the first try, the
 * refused attempt's index, or the configured count when every attempt failed; `max_times` is always 0
 * (errata 12, 17). `task_duration` is the last attempt's (0 when no response is expected); no
 * `available_duration` check on success. The run's deadline (`timeout`) ends the current attempt as a read
 * timeout and starts no other: `times` is then the number of attempts made (the reference reports 1000
 * ConnFailed with times 0 there, because its next dial fails on the expired context).
 */
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { probesOf } from '../probe/budget.ts';
import { UptimeEvent } from '../probe/event.ts';
import { readMatchParams, readNetParams, type MatchParams, type NetParams } from '../probe/net-config.ts';
import { runProbes } from '../probe/run.ts';
import { readSimpleTargets, type SimpleTargets } from '../probe/simple-config.ts';
import { udpProbe } from '../probe/socket-probe.ts';
import { expandTargets } from '../probe/targets.ts';
import type { BaseTaskConfig, Task, TaskContext, TaskType } from '../task.ts';
import { Codes } from './gather-up.ts';
import { emitSimple } from './tcp.ts';

/** Reference defaultMaxTimes. */
export const DEFAULT_MAX_TIMES = 10;

export interface UdpTaskConfig extends BaseTaskConfig, NetParams, MatchParams, SimpleTargets {
  readonly times: number;
  readonly waitEmptyResponse: boolean;
}

function parseUdp(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[], meta: Readonly<Record<string, unknown>>): UdpTaskConfig {
  const f = fields(raw, problems, '');
  let maxTimes = DEFAULT_MAX_TIMES;
  const rawMax = meta.max_times;
  if (rawMax !== undefined && rawMax !== null && rawMax !== '') {
    const n = typeof rawMax === 'number' ? rawMax : typeof rawMax === 'string' ? Number(rawMax.trim()) : NaN;
    if (Number.isInteger(n) && n >= 1) maxTimes = n;
    else f.problem('max_times', `the section's max_times must be an integer >= 1, got ${JSON.stringify(rawMax)}`);
  }
  let times = f.int('times', { default: 3, min: 1 });
  if (times > maxTimes) times = maxTimes;
  return {
    ...base,
    ...readNetParams(f, meta),
    ...readMatchParams(f, undefined, (format) => (format === 'hex' ? '58' : 'X')),
    ...readSimpleTargets(f),
    times,
    waitEmptyResponse: f.bool('wait_empty_response', false),
  };
}

class UdpTask implements Task<UdpTaskConfig> {
  readonly config: UdpTaskConfig;

  constructor(config: UdpTaskConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    const start = ctx.now();
    const hosts = await expandTargets(c.hosts, { ipType: c.ipType, dnsCheckMode: c.dnsCheckMode, urls: false, signal: ctx.signal });
    const groups = [];
    for (const h of hosts) {
      if (h.code.code !== Codes.OK.code) {
        const event = new UptimeEvent(c, start);
        event.fail(h.code);
        await emitSimple(ctx, event, { targetHost: h.host, targetPort: c.port, resolvedIp: '' }, c.customReport, { times: 0, max_times: 0 });
        continue;
      }
      for (const ip of h.ips) groups.push({ weight: 1, probes: [() => this.#probe(ctx, start, h.host, ip)] });
    }
    await runProbes(ctx, groups);
  }

  async #probe(ctx: TaskContext, start: number, host: string, ip: string): Promise<void> {
    const c = this.config;
    const event = new UptimeEvent(c, start);
    const expectsResponse = c.matcher.expected.length > 0;
    const result = await udpProbe({
      ip,
      port: c.port,
      times: c.times,
      request: c.request,
      expectsResponse,
      waitEmptyResponse: c.waitEmptyResponse,
      availableDurationMs: c.availableDurationMs,
      bufferSize: c.bufferSize,
      signal: ctx.signal,
      sockets: probesOf(ctx).sockets,
      onAttempt: () => event.restart(ctx.now()),
    });
    if (result.kind === 'not-probed') {
      ctx.logger.debug('udp target not probed', { task_id: c.taskId, ip, reason: result.reason });
      return;
    }
    // The attempt's end: its start when no response is expected (duration 0), else when it ended.
    const end = expectsResponse ? result.endMono : event.startMono;
    if (result.code.code !== Codes.OK.code) event.fail(result.code);
    else if (expectsResponse && !c.matcher.match(result.body ?? Buffer.alloc(0))) event.fail(Codes.ResponseNotMatch);
    else event.succeed();
    if (end !== undefined) event.endMono = end;
    await emitSimple(ctx, event, { targetHost: host, targetPort: c.port, resolvedIp: ip }, c.customReport, { times: result.times, max_times: 0 });
  }
}

export const udpType: TaskType<UdpTaskConfig> = {
  type: 'udp',
  scheduler: 'main',
  shape: 'list',
  section: 'udp_task',
  parse: parseUdp,
  create: (config) => new UdpTask(config),
};
