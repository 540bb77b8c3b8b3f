/**
 * The bounded LRU cache (lru-cache), through the plumbing like every library: services import it from
 * here. Pitfall: `ttlAutopurge` arms one timer per entry — with many entries call `purgeStale()` on an
 * interval instead (isaacs/node-lru-cache#297).
 */
export { LRUCache } from 'lru-cache';
