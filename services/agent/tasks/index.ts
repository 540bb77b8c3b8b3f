/**
 * The task types the agent knows, one line each (a type is one file of this directory; see task.ts).
 * The config engine routes a main-file section or child file to the type whose `section` / `type` it
 * names; anything else is reported and ignored.
 */
import type { TaskType } from '../task.ts';
import { metricbeatType } from './metricbeat.ts';
import { scriptType } from './script.ts';
import { selfstatsType } from './selfstats.ts';

export const TASK_TYPES: readonly TaskType[] = [
  selfstatsType,
  scriptType,
  metricbeatType,
];
