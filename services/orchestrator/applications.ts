/**
 * Flows belong to registered applications. The orchestrator reads the application registry the collector
 * keeps in the shared store (`apm_application`) and refuses a flow of an application it does not hold:
 *
 * - `create_or_update`: the application must be registered;
 * - `stop` / `delete`: the application must be registered, or the flow must exist — deleting an
 *   application removes its row first and then asks for the deletion of its flows (services/collector,
 *   "Applications drive their flows"), so those commands arrive for an application already gone.
 *
 * A refusal is a `not_found` error naming the application: HTTP 404, gRPC NOT_FOUND, and on Kafka the
 * command is dead-lettered with that reason and counted (`outcome="unknown_application"`), never run.
 */
import { NotFoundError } from '../common/errors.ts';
import type { Queryable } from '../common/store/index.ts';
import type { Command } from './model.ts';

/** The port: whether an application is registered. */
export interface ApplicationRegistry {
  isRegistered(bkBizId: number, appName: string): Promise<boolean>;
}

/** The registry of the shared store (`apm_application`, written by the collector). */
export function storeApplications(db: Queryable): ApplicationRegistry {
  return {
    async isRegistered(bkBizId, appName) {
      const { rows } = await db.query('SELECT 1 FROM apm_application WHERE bk_biz_id = $1 AND app_name = $2', [bkBizId, appName]);
      return rows.length > 0;
    },
  };
}

/** Every application counts as registered: a double for tests of the flows themselves. */
export const ANY_APPLICATION: ApplicationRegistry = { isRegistered: async () => true };

/** A command refused because its application is not registered (`not_found`). */
export class UnknownApplicationError extends NotFoundError {}

/**
 * Throws {@link UnknownApplicationError} when `command` may not run: see the file comment. `flowExists`
 * is asked only for a stop or delete of an application that is not registered.
 */
export async function checkApplication(registry: ApplicationRegistry, command: Command, flowExists: () => Promise<boolean>): Promise<void> {
  const { bk_biz_id: biz, app_name: app, action, flow_type: type } = command;
  if (await registry.isRegistered(biz, app)) return;
  if (action === 'create_or_update') {
    throw new UnknownApplicationError(`no application ${app} in business ${biz}: flows run for registered applications only (register it first: bkstream apps create --biz ${biz} --app ${app})`);
  }
  if (await flowExists()) return;
  throw new UnknownApplicationError(`no application ${app} in business ${biz} and no ${type} flow of it to ${action}`);
}
