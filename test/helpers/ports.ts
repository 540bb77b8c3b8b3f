/**
 * Ports for a test's own broker (broker and controller: p and p + 1). They are picked at random below the
 * kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768–60999 by default), not with
 * `listen(0)`: a port the kernel hands out for listen(0) is one it also hands out as the local port of
 * outgoing connections, and with several brokers and their clients running at once a freed port was
 * taken again before the broker bound it ("Address already in use", 2026-12-02).
 */
import { createServer } from 'node:net';

const LOW = 20_000;
const HIGH = 32_700;

function free(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer();
    s.once('error', () => done(false));
    s.listen(port, '127.0.0.1', () => s.close(() => done(true)));
  });
}

/** A port p such that p and p + 1 are free, below the ephemeral range. */
export async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 1_000; attempt++) {
    const p = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if ((await free(p)) && (await free(p + 1))) return p;
  }
  throw new Error(`no two free adjacent ports in ${LOW}–${HIGH}`);
}
