/**
 * `bkstream agent check <config>`: check mode for operators testing an agent configuration (reference
 * `mode: check`): loads the bkmonitorbeat main file and its child files (printing every problem), runs
 * each main-scheduler task once, one after the other, and prints what each produced. Nothing is
 * published (`--json`: the same as one JSON document). Exit code 0 when every task ran without error, 1
 * otherwise, 2 for a bad main file.
 */
import { resolve } from 'node:path';
import { runCheck } from '../../agent/check-mode.ts';
import { AGENT_VERSION } from '../../agent/service.ts';
import { TASK_TYPES } from '../../agent/tasks/index.ts';
import { createLogger } from '../../common/log.ts';
import { printJson } from '../api.ts';
import { defineCommand, defineGroup, type Command } from '../command.ts';

const check = defineCommand({
  name: 'agent check',
  summary: 'run every task of a bkmonitorbeat config once and print what each produced (nothing is published)',
  args: ['<main file>'],
  options: { json: { type: 'boolean', help: 'print the configuration\'s files and each task\'s result as JSON on stdout' } },
  notes: 'Exit code 0 when every task ran without error, 1 otherwise, 2 for a bad main file. The host is read from\nAGENT_PROC_ROOT, AGENT_SYS_ROOT and AGENT_ROOTFS (default /proc, /sys, /); AGENT_HOST_IP overrides its IP.',
}, async ({ values, positionals }, env, print) => {
  const report = await runCheck(resolve(positionals[0] as string), {
    types: TASK_TYPES,
    logger: createLogger({ level: env.LOG_LEVEL === 'debug' ? 'debug' : 'error' }),
    paths: { proc: env.AGENT_PROC_ROOT || '/proc', sys: env.AGENT_SYS_ROOT || '/sys', rootfs: env.AGENT_ROOTFS || '/' },
    ...(env.AGENT_HOST_IP ? { ipOverride: env.AGENT_HOST_IP } : {}),
    version: AGENT_VERSION,
  });
  const { loaded, host, results } = report;
  const ran = results.filter((r) => r.status !== 'not_run').length;
  const failed = results.filter((r) => r.status !== 'not_run' && r.status !== 'ok').length;
  if (values.json) {
    printJson(print, {
      config: { file: loaded.main.file, mode: loaded.main.mode, node_id: host.nodeId, bk_biz_id: host.bkBizId },
      warnings: loaded.warnings,
      children: loaded.children,
      tasks: results.map((r) => ({ type: r.entry.config.type, task_id: r.entry.config.taskId, source: r.entry.config.source ?? null, scheduler: r.entry.scheduler, status: r.status, ...(r.status === 'not_run' ? {} : { seconds: r.seconds, outputs: r.outputs }) })),
      ran,
      failed,
    });
    return failed === 0 ? 0 : 1;
  }
  print(`config  ${loaded.main.file} (mode ${loaded.main.mode}; host ${host.nodeId}, biz ${host.bkBizId})`);
  for (const w of loaded.warnings) print(`warning ${w}`);
  for (const c of loaded.children) {
    print(`child   ${c.path}: ${c.status}${c.status === 'loaded' ? ` (${c.tasks} task${c.tasks === 1 ? '' : 's'})` : ''}`);
    if (c.status !== 'loaded') for (const p of c.problems) print(`          - ${p.key}: ${p.message}`);
  }
  for (const r of results) {
    const c = r.entry.config;
    const head = `task    ${c.type} #${c.taskId} (${c.source ?? ''})`;
    if (r.status === 'not_run') {
      print(`${head}: long-running (${r.entry.scheduler} scheduler), not run in check mode`);
      continue;
    }
    print(`${head}: ${r.status} in ${r.seconds.toFixed(3)} s, ${r.outputs.length} output${r.outputs.length === 1 ? '' : 's'}`);
    for (const o of r.outputs) print(`  ${JSON.stringify(o)}`);
  }
  print(`${ran} task${ran === 1 ? '' : 's'} run, ${failed} failed`);
  return failed === 0 ? 0 : 1;
});

export const command: Command = defineGroup('agent', 'agent tools: `check <config>` runs every task of a bkmonitorbeat config once and prints the results', { check });
