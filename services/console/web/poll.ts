/**
 * Live pages: {@link usePoll} loads now and again every refresh interval while the tab is visible (a
 * hidden tab asks nothing; it catches up when shown), one request at a time, dropping answers of a
 * previous parameter set. No page needs a reload to show new data.
 */
import { useEffect, useRef, useState } from 'preact/hooks';

let refreshMs = 5_000;
export function setRefreshInterval(ms: number): void {
  refreshMs = ms;
}
export function refreshInterval(): number {
  return refreshMs;
}

export interface Polled<T> {
  data: T | undefined;
  error: Error | undefined;
  /** When the shown data arrived (ms since the epoch). */
  at: number | undefined;
  /** Loads again now (after a change the user made). */
  reload: () => void;
}

export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[], options: { intervalMs?: number; enabled?: boolean } = {}): Polled<T> {
  const [state, setState] = useState<{ data: T | undefined; error: Error | undefined; at: number | undefined }>({ data: undefined, error: undefined, at: undefined });
  const kick = useRef<() => void>(() => undefined);
  const enabled = options.enabled ?? true;
  useEffect(() => {
    setState({ data: undefined, error: undefined, at: undefined });
    if (!enabled) return undefined;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inFlight: AbortController | undefined;
    const schedule = (): void => {
      clearTimeout(timer);
      timer = setTimeout(run, options.intervalMs ?? refreshMs);
    };
    const run = (): void => {
      if (stopped) return;
      if (document.hidden) {
        schedule();
        return;
      }
      inFlight?.abort();
      const ctrl = new AbortController();
      inFlight = ctrl;
      load(ctrl.signal).then(
        (data) => {
          if (stopped || ctrl.signal.aborted) return;
          setState({ data, error: undefined, at: Date.now() });
          schedule();
        },
        (error: unknown) => {
          if (stopped || ctrl.signal.aborted) return;
          setState((s) => ({ ...s, error: error instanceof Error ? error : new Error(String(error)) }));
          schedule();
        },
      );
    };
    const onVisible = (): void => {
      if (!document.hidden) run();
    };
    kick.current = run;
    document.addEventListener('visibilitychange', onVisible);
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
      inFlight?.abort();
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [...deps, enabled]);
  return { ...state, reload: () => kick.current() };
}
