/** The discovery README's Metrics section lists exactly the series metrics.ts declares. */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createRegistry } from '../../services/common/metrics.ts';
import { discoveryMetrics } from '../../services/discovery/metrics.ts';

test('README Metrics lists every series of metrics.ts, and no other discovery series', async (t) => {
  const readme = readFileSync(resolve(import.meta.dirname, '../../services/discovery/README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Metrics\n')) ?? '';
  const listed = new Set([...section.matchAll(/`(bkstream_discovery_\w+)`/g)].map((m) => m[1] as string));
  const registry = createRegistry();
  discoveryMetrics(registry, { cachedKeys: () => 0, pendingRows: () => 0, windowItems: () => 0, cacheHitRatio: () => 0 });
  const declared = new Set((await registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('bkstream_discovery_')));
  t.deepEqual([...listed].sort(), [...declared].sort());
});
