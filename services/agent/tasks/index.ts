/**
 * The task types the agent knows, one line each (a type is one file of this directory; see task.ts).
 * The config engine routes a main-file section or child file to the type whose `section` / `type` it
 * names; anything else is reported and ignored.
 *
 * Types most hosts run (the host tasks but the CMDB file syncs, selfstats) are imported at start. The others are `lazy`: the line
 * names the type and its main-file section, and the module is loaded (synchronously) the first time the
 * engine needs more of it — only when a configuration uses the type. An agent then does not carry the code
 * and libraries of types it does not run (~6 MB of RSS for these; README "Benchmark").
 * `test/agent/registry.test.ts` checks that each lazy line names what its module declares.
 */
import { createRequire } from 'node:module';
import type { TaskType } from '../task.ts';
import type * as Http from './http.ts';
import type * as Keyword from './keyword.ts';
import type * as Kubeevent from './kubeevent.ts';
import type * as Metricbeat from './metricbeat.ts';
import type * as Ping from './ping.ts';
import type * as Procconf from './procconf.ts';
import type * as Procsync from './procsync.ts';
import type * as Script from './script.ts';
import type * as Tcp from './tcp.ts';
import type * as Trap from './trap.ts';
import type * as Udp from './udp.ts';
import { basereportType } from './basereport.ts';
import { exceptionbeatType } from './exceptionbeat.ts';
import { proccustomType } from './proccustom.ts';
import { processbeatType } from './processbeat.ts';
import { selfstatsType } from './selfstats.ts';
import { staticType } from './static.ts';

const load = createRequire(import.meta.url);

/** A type whose module is loaded on first use of anything but its `type` and `section`. */
export function lazy(type: string, section: string, module: () => TaskType): TaskType {
  let loaded: TaskType | undefined;
  const real = (): TaskType => (loaded ??= module());
  return {
    type,
    section,
    get scheduler() {
      return real().scheduler;
    },
    get shape() {
      return real().shape;
    },
    get fixedIdent() {
      return real().fixedIdent;
    },
    get skipIfRunning() {
      return real().skipIfRunning;
    },
    get metaDefaults() {
      return real().metaDefaults;
    },
    enabled: (config) => real().enabled?.(config) ?? true,
    parse: (raw, base, problems, meta) => real().parse(raw, base, problems, meta),
    create: (config) => real().create(config),
  };
}

export const TASK_TYPES: readonly TaskType[] = [
  selfstatsType,
  basereportType,
  staticType,
  exceptionbeatType,
  processbeatType,
  proccustomType,
  lazy('procconf', 'procconf_task', () => (load('./procconf.ts') as typeof Procconf).procconfType),
  lazy('procsync', 'procsync_task', () => (load('./procsync.ts') as typeof Procsync).procsyncType),
  lazy('script', 'script_task', () => (load('./script.ts') as typeof Script).scriptType),
  lazy('metricbeat', 'metricbeat_task', () => (load('./metricbeat.ts') as typeof Metricbeat).metricbeatType),
  lazy('keyword', 'keyword_task', () => (load('./keyword.ts') as typeof Keyword).keywordType),
  lazy('snmptrap', 'trap_task', () => (load('./trap.ts') as typeof Trap).trapType),
  lazy('kubeevent', 'kubeevent_task', () => (load('./kubeevent.ts') as typeof Kubeevent).kubeeventType),
  lazy('http', 'http_task', () => (load('./http.ts') as typeof Http).httpType),
  lazy('tcp', 'tcp_task', () => (load('./tcp.ts') as typeof Tcp).tcpType),
  lazy('udp', 'udp_task', () => (load('./udp.ts') as typeof Udp).udpType),
  lazy('ping', 'ping_task', () => (load('./ping.ts') as typeof Ping).pingType),
];
