/** Subcommands of `bkstream`. Each lives in its own file under commands/. */
import type { Command } from './command.ts';

export type { Command };

export const COMMANDS: Record<string, () => Promise<Command>> = {
  up: async () => (await import('./commands/up.ts')).command,
  status: async () => (await import('./commands/status.ts')).command,
  replay: async () => (await import('./commands/replay.ts')).command,
  apps: async () => (await import('./commands/apps.ts')).command,
  admin: async () => (await import('./commands/admin.ts')).command,
  flows: async () => (await import('./commands/flows.ts')).command,
  traces: async () => (await import('./commands/traces.ts')).command,
  trace: async () => (await import('./commands/trace.ts')).command,
  metrics: async () => (await import('./commands/metrics.ts')).command,
  report: async () => (await import('./commands/report.ts')).command,
  agent: async () => (await import('./commands/agent.ts')).command,
};
