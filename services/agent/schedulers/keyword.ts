/**
 * The keyword scheduler slot (reference scheduler/keyword, §A2.5): keyword tasks are routed here. Each
 * task is one long-running chain (input → processor → sender, built by the keyword task type of a later
 * issue) started at once and kept while its config is unchanged; changed or new tasks get a fresh chain,
 * removed ones are cancelled. A chain that returns is restarted after 10 s.
 */
import type { Logger } from '../../common/log.ts';
import { LISTEN_RESTART_DELAY_MS, ListenScheduler } from './listen.ts';
import type { RunEnv } from './runner.ts';

export function keywordScheduler(options: { env: RunEnv; logger: Logger; restartDelayMs?: number }): ListenScheduler {
  return new ListenScheduler({ ...options, kind: 'keyword', initialDelayMs: 0, restartDelayMs: options.restartDelayMs ?? LISTEN_RESTART_DELAY_MS });
}
