/**
 * The task types the agent knows, one line each (a type is one file of this directory; see task.ts).
 * The config engine routes a main-file section or child file to the type whose `section` / `type` it
 * names; anything else is reported and ignored.
 */
import type { TaskType } from '../task.ts';
import { basereportType } from './basereport.ts';
import { exceptionbeatType } from './exceptionbeat.ts';
import { httpType } from './http.ts';
import { keywordType } from './keyword.ts';
import { kubeeventType } from './kubeevent.ts';
import { metricbeatType } from './metricbeat.ts';
import { pingType } from './ping.ts';
import { proccustomType } from './proccustom.ts';
import { procconfType } from './procconf.ts';
import { processbeatType } from './processbeat.ts';
import { procsyncType } from './procsync.ts';
import { scriptType } from './script.ts';
import { selfstatsType } from './selfstats.ts';
import { trapType } from './trap.ts';
import { staticType } from './static.ts';
import { tcpType } from './tcp.ts';
import { udpType } from './udp.ts';

export const TASK_TYPES: readonly TaskType[] = [
  selfstatsType,
  scriptType,
  metricbeatType,
  keywordType,
  trapType,
  kubeeventType,
  basereportType,
  staticType,
  exceptionbeatType,
  processbeatType,
  proccustomType,
  procconfType,
  procsyncType,
  httpType,
  tcpType,
  udpType,
  pingType,
];
