/** Subcommands of `bkstream`. Each lives in its own file under commands/. */
export interface Command {
  summary: string;
  usage: string;
  run(args: string[], env: NodeJS.ProcessEnv): Promise<number>;
}

export const COMMANDS: Record<string, () => Promise<Command>> = {
  up: async () => (await import('./commands/up.ts')).command,
  status: async () => (await import('./commands/status.ts')).command,
  replay: async () => (await import('./commands/replay.ts')).command,
  apps: async () => (await import('./commands/apps.ts')).command,
  flows: async () => (await import('./commands/flows.ts')).command,
};
