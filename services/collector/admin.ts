/**
 * The routes of the collector's admin server (127.0.0.1:4310 by default), besides the `/metrics` and
 * `/healthz` every service serves:
 *
 *   POST /-/reload     forgets cached tokens, so changes in the application registry apply at once
 *   /api/v1/apps...    the application registry (apps-api.ts)
 *   GET  /-/healthz    the health document itself: `ok` and `checks`
 */
import { json, type Route } from '../common/http.ts';
import type { Logger } from '../common/log.ts';
import type { Store } from '../common/store/index.ts';
import { applicationRoutes } from './apps-api.ts';
import type { ExportHealth } from './receiver/export-service.ts';

export interface AdminRoutesOptions {
  store: Store;
  /** Forgets every cached token (TokenCache#clear). */
  clearTokens: () => void;
  health: () => ExportHealth;
  logger: Logger;
}

export function adminRoutes(options: AdminRoutesOptions): Route[] {
  const { store, clearTokens, health, logger } = options;
  return [
    {
      method: 'POST',
      path: '/-/reload',
      handle: () => {
        clearTokens();
        logger.info('reloaded: token cache cleared');
        return json(200, { reloaded: true });
      },
    },
    ...applicationRoutes(store, clearTokens),
    {
      method: 'GET',
      path: '/-/healthz',
      handle: () => {
        const h = health();
        return json(h.ok ? 200 : 503, h);
      },
    },
  ];
}
