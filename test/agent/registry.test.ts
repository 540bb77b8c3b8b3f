/**
 * The task registry: every type once, by type and by section; each lazy line names the type and section
 * its module declares, and loading it through the line gives the module's own behaviour.
 */
import test from 'ava';
import { TASK_TYPES } from '../../services/agent/tasks/index.ts';
import type { TaskType } from '../../services/agent/task.ts';

test('every type and every section is registered once', (t) => {
  const types = TASK_TYPES.map((x) => x.type);
  const sections = TASK_TYPES.map((x) => x.section).filter((s): s is string => s !== undefined);
  t.is(new Set(types).size, types.length, types.join(', '));
  t.is(new Set(sections).size, sections.length, sections.join(', '));
});

test('lazy lines name what their module declares', async (t) => {
  const modules: Record<string, [string, string]> = {
    script: ['./script.ts', 'scriptType'],
    metricbeat: ['./metricbeat.ts', 'metricbeatType'],
    keyword: ['./keyword.ts', 'keywordType'],
    snmptrap: ['./trap.ts', 'trapType'],
    kubeevent: ['./kubeevent.ts', 'kubeeventType'],
    http: ['./http.ts', 'httpType'],
    tcp: ['./tcp.ts', 'tcpType'],
    udp: ['./udp.ts', 'udpType'],
    ping: ['./ping.ts', 'pingType'],
    procconf: ['./procconf.ts', 'procconfType'],
    procsync: ['./procsync.ts', 'procsyncType'],
  };
  for (const [type, [file, name]] of Object.entries(modules)) {
    const entry = TASK_TYPES.find((x) => x.type === type);
    const real = ((await import(new URL(file, new URL('../../services/agent/tasks/', import.meta.url)).href)) as Record<string, TaskType>)[name];
    if (!entry || !real) {
      t.fail(`${type}: missing`);
      continue;
    }
    t.is(entry.section, real.section, `${type} section`);
    t.is(entry.type, real.type);
    t.is(entry.scheduler, real.scheduler, `${type} scheduler`);
    t.is(entry.shape, real.shape, `${type} shape`);
    t.is(entry.fixedIdent, real.fixedIdent);
    t.is(entry.skipIfRunning, real.skipIfRunning);
    t.deepEqual(entry.metaDefaults, real.metaDefaults);
  }
});
