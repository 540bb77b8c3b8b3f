/** One subcommand of `bkstream`: each lives in its own file under commands/ and is listed in commands.ts. */
export interface Command {
  summary: string;
  usage: string;
  run(args: string[], env: NodeJS.ProcessEnv): Promise<number>;
}
