/** The pid lock file that keeps a second process out of an embedded PGlite directory. */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { BkError } from '../errors.ts';

/**
 * PGlite is an embedded, single-process database: two processes opening one directory corrupt it. A
 * `<dir>.lock` file holding the owner's pid keeps a second process out (a stale lock of a dead process
 * is taken over).
 */
export function lockDir(dir: string): void {
  const lock = `${dir.replace(/\/+$/, '')}.lock`;
  mkdirSync(dirname(lock), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(lock, 'utf8').trim());
      if (owner === process.pid || !pidAlive(owner)) {
        rmSync(lock, { force: true });
        continue;
      }
      throw new BkError(
        'store_locked',
        `the embedded database ${dir} is in use by process ${owner} (bkstream up?): stop it, or use PostgreSQL with DATABASE_URL`,
        false,
      );
    }
  }
}

export function unlockDir(dir: string): void {
  const lock = `${dir.replace(/\/+$/, '')}.lock`;
  try {
    if (Number(readFileSync(lock, 'utf8').trim()) === process.pid) rmSync(lock, { force: true });
  } catch {
    // already gone
  }
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
