/**
 * Stable fake pids (`converge_pid`): processes are grouped by name and parameter pattern, and each keeps
 * its slot in the group while it lives; a new process takes the first free slot. The slot number is the
 * fake pid, so a restarted worker reappears under the same number and series stay continuous.
 */

export interface MappedProcess {
  readonly pid: number;
  readonly name: string;
  readonly params: string;
}

const group = (p: MappedProcess): string => `${p.name}##BK##${p.params}`;
const ident = (p: MappedProcess): string => `${p.pid}##BK##${p.name}##BK##${p.params}`;

export class PidMapper {
  /** group → slots (pid, 0 = free). */
  #slots = new Map<string, number[]>();
  #previous: MappedProcess[] = [];

  /** Recomputes the slots from the current processes. */
  refresh(current: readonly MappedProcess[]): void {
    const seen = new Set<string>();
    const groupSize = new Map<string, number>();
    for (const p of current) {
      if (seen.has(ident(p))) continue;
      seen.add(ident(p));
      groupSize.set(group(p), (groupSize.get(group(p)) ?? 0) + 1);
    }
    const next = new Map<string, number[]>();
    const fresh: MappedProcess[] = [];
    seen.clear();
    for (const p of current) {
      if (seen.has(ident(p))) continue;
      seen.add(ident(p));
      const continued = this.#previous.some((q) => q.pid === p.pid && q.name === p.name && q.params === p.params);
      if (!continued) {
        fresh.push(p);
        continue;
      }
      const g = group(p);
      const before = this.#slots.get(g) ?? [];
      let slots = next.get(g);
      if (!slots) {
        slots = new Array<number>(Math.max(groupSize.get(g) ?? 0, before.length)).fill(0);
        next.set(g, slots);
      }
      before.forEach((pid, slot) => {
        if (pid === p.pid) (slots)[slot] = pid;
      });
    }
    for (const p of fresh) {
      const g = group(p);
      const slots = next.get(g) ?? [];
      const free = slots.indexOf(0);
      if (free >= 0) slots[free] = p.pid;
      else slots.push(p.pid);
      next.set(g, slots);
    }
    this.#slots = next;
    this.#previous = [...current];
  }

  /** The fake pid of a process seen by the last refresh, -1 otherwise. */
  fakePid(p: MappedProcess): number {
    return (this.#slots.get(group(p)) ?? []).indexOf(p.pid);
  }
}

/**
 * The fake → real pid lines written every minute (`"<fakepid> <realpid>/:<cmdline>"`, the reference's
 * `.pidstore` next to its binary) so an operator can find the real process.
 */
export class PidStore {
  readonly #lines = new Set<string>();

  set(realPid: number, fakePid: number, cmdline: string): void {
    this.#lines.add(`${fakePid} ${realPid}/:${cmdline}`);
  }

  /** The collected lines, emptied (the file is replaced with them). */
  take(): string {
    const text = [...this.#lines].map((l) => `${l}\n`).join('');
    this.#lines.clear();
    return text;
  }
}
