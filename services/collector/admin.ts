/**
 * The routes of the collector's admin server (127.0.0.1:4310 by default), besides the `/metrics`,
 * `/livez`, `/readyz` and `/healthz` every service serves (public). Everything else needs an admin
 * token (SECURITY.md):
 *
 *   POST /-/reload                 forgets cached tokens, so changes in the application registry apply at once
 *   /api/v1/apps...                the application registry (apps-api.ts)
 *   /api/v1/admin/tokens...        admin tokens: list, create (the answer carries the token, once), revoke
 *   GET  /-/healthz                the health document itself: `ok` and `checks` (public)
 */
import { createAdminToken, listAdminTokens, revokeAdminToken, type Authenticator } from '../common/auth.ts';
import { ValidationError } from '../common/errors.ts';
import { json, type Route } from '../common/http.ts';
import type { Logger } from '../common/log.ts';
import type { Store } from '../common/store/index.ts';
import { applicationRoutes } from './apps-api.ts';
import type { ExportHealth } from './receiver/export-service.ts';

export interface AdminRoutesOptions {
  store: Store;
  /** The admin server's authenticator: forgets its cached tokens when one is revoked. */
  auth: Authenticator;
  /** Forgets every cached token (TokenCache#clear). */
  clearTokens: () => void;
  /** Flow commands were queued by an application change: publish them now. */
  onFlowCommands: () => void;
  health: () => ExportHealth;
  logger: Logger;
}

/** `GET|POST /api/v1/admin/tokens`, `DELETE /api/v1/admin/tokens/{id}` (`?force=true` to revoke the last one). */
export function adminTokenRoutes(store: Store, auth: Authenticator, logger: Logger): Route[] {
  return [
    { method: 'GET', path: '/api/v1/admin/tokens', access: 'admin', handle: async () => json(200, { tokens: await listAdminTokens(store) }) },
    {
      method: 'POST',
      path: '/api/v1/admin/tokens',
      access: 'admin',
      handle: async (req) => {
        const name = (req.body as { name?: unknown } | undefined)?.name ?? 'admin';
        if (typeof name !== 'string') throw new ValidationError('name must be a string');
        const created = await createAdminToken(store, name);
        logger.info('admin token created', { id: created.id, name: created.name, by: req.principal?.kind === 'admin' ? req.principal.name : undefined });
        return json(201, created);
      },
    },
    {
      method: 'DELETE',
      path: /^\/api\/v1\/admin\/tokens\/(?<id>\d{1,15})$/,
      access: 'admin',
      handle: async (req) => {
        const revoked = await revokeAdminToken(store, Number(req.params.id), req.query.get('force') === 'true');
        auth.clear();
        logger.info('admin token revoked', { id: revoked.id, name: revoked.name });
        return json(200, revoked);
      },
    },
  ];
}

export function adminRoutes(options: AdminRoutesOptions): Route[] {
  const { store, auth, clearTokens, onFlowCommands, health, logger } = options;
  return [
    {
      method: 'POST',
      path: '/-/reload',
      access: 'admin',
      handle: () => {
        clearTokens();
        auth.clear();
        logger.info('reloaded: token cache cleared');
        return json(200, { reloaded: true });
      },
    },
    ...applicationRoutes(store, {
      onTokenChange: () => {
        clearTokens();
        auth.clear();
      },
      onFlowCommands,
      onApplicationChange: clearTokens,
    }),
    ...adminTokenRoutes(store, auth, logger),
    {
      method: 'GET',
      path: '/-/healthz',
      access: 'public',
      handle: () => {
        const h = health();
        return json(h.ok ? 200 : 503, h);
      },
    },
  ];
}
