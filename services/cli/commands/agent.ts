/**
 * `bkstream agent check <config>`: check mode for operators testing an agent configuration (reference
 * `mode: check`): loads the bkmonitorbeat main file and its child files (printing every problem), runs
 * each main-scheduler task once, one after the other, and prints what each produced. Nothing is
 * published. Exit code 0 when every task ran without error, 1 otherwise, 2 for a bad main file.
 */
import { resolve } from 'node:path';
import { runCheck } from '../../agent/check-mode.ts';
import { AGENT_VERSION } from '../../agent/service.ts';
import { TASK_TYPES } from '../../agent/tasks/index.ts';
import { ValidationError } from '../../common/errors.ts';
import { createLogger } from '../../common/log.ts';
import type { Command } from '../command.ts';

export const command: Command = {
  summary: 'agent tools: `check <config>` runs every task of a bkmonitorbeat config once and prints the results',
  usage: 'bkstream agent check <bkmonitorbeat main file>',
  async run(args, env) {
    const [sub, file] = args;
    if (sub !== 'check' || !file) throw new ValidationError('usage: bkstream agent check <bkmonitorbeat main file>');
    const report = await runCheck(resolve(file), {
      types: TASK_TYPES,
      logger: createLogger({ level: env.LOG_LEVEL === 'debug' ? 'debug' : 'error' }),
      paths: { proc: env.AGENT_PROC_ROOT || '/proc', sys: env.AGENT_SYS_ROOT || '/sys', rootfs: env.AGENT_ROOTFS || '/' },
      ...(env.AGENT_HOST_IP ? { ipOverride: env.AGENT_HOST_IP } : {}),
      version: AGENT_VERSION,
    });
    const { loaded, host, results } = report;
    console.log(`config  ${loaded.main.file} (mode ${loaded.main.mode}; host ${host.nodeId}, biz ${host.bkBizId})`);
    for (const w of loaded.warnings) console.log(`warning ${w}`);
    for (const c of loaded.children) {
      console.log(`child   ${c.path}: ${c.status}${c.status === 'loaded' ? ` (${c.tasks} task${c.tasks === 1 ? '' : 's'})` : ''}`);
      if (c.status !== 'loaded') for (const p of c.problems) console.log(`          - ${p.key}: ${p.message}`);
    }
    let failed = 0;
    for (const r of results) {
      const c = r.entry.config;
      const head = `task    ${c.type} #${c.taskId} (${c.source ?? ''})`;
      if (r.status === 'not_run') {
        console.log(`${head}: long-running (${r.entry.scheduler} scheduler), not run in check mode`);
        continue;
      }
      if (r.status !== 'ok') failed++;
      console.log(`${head}: ${r.status} in ${r.seconds.toFixed(3)} s, ${r.outputs.length} output${r.outputs.length === 1 ? '' : 's'}`);
      for (const o of r.outputs) console.log(`  ${JSON.stringify(o)}`);
    }
    const ran = results.filter((r) => r.status !== 'not_run').length;
    console.log(`${ran} task${ran === 1 ? '' : 's'} run, ${failed} failed`);
    return failed === 0 ? 0 : 1;
  },
};
