/**
 * Process-wide settings that only entry points (a service's main, the CLI, scripts, the test runner)
 * may install: nothing here runs as an import side effect.
 */

let installed = false;

/**
 * kafkajs 2.2.4 arms a timer with a negative delay when its request queue is empty (Node clamps it to
 * 1 ms, harmless) and Node >= 24 warns about it on every request. Drops only that warning. Idempotent.
 */
export function installWarningFilter(): void {
  if (installed) return;
  installed = true;
  const emitWarning = process.emitWarning.bind(process) as (warning: string | Error, ...rest: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]): void => {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    if (type !== 'TimeoutNegativeWarning') emitWarning(warning, ...rest);
  });
}
