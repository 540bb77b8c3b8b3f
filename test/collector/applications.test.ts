/**
 * The application registry on PGlite and PostgreSQL: tokens shown once and stored as hashes, lookups by
 * hash, conflicts, rotation, per-application rate limits (migration 0300); the flow switches, changes and
 * deletion, and the flow commands they queue in the outbox (migration 0301).
 */
import { BkError, NotFoundError, ValidationError } from '../../services/common/errors.ts';
import {
  createApplication,
  deleteApplication,
  findByTokenHash,
  getApplication,
  hashToken,
  listApplications,
  rotateToken,
  TOKEN_PREFIX,
  updateApplication,
} from '../../services/collector/applications.ts';
import { queuedCommands } from '../../services/collector/flow-outbox.ts';
import { storeContract } from '../helpers/store.ts';

storeContract('register: a long random token, only its hash stored, found by hash', async (t, store) => {
  const { application, token } = await createApplication(store, { bkBizId: 2, appName: 'shop', tracesDataId: 1_500_001, rateLimitQps: 50, rateLimitBurst: 100 });
  t.true(token.startsWith(TOKEN_PREFIX));
  t.true(token.length >= 40);
  t.is(application.tokenHint, token.slice(0, 12));
  const { rows } = await store.query<{ token_hash: string; token_hint: string }>('SELECT token_hash, token_hint FROM apm_application');
  t.is(rows[0]?.token_hash, hashToken(token));
  t.false(JSON.stringify(rows).includes(token), 'the token itself is not stored');
  const found = await findByTokenHash(store, hashToken(token));
  t.is(found?.appName, 'shop');
  t.is(found?.bkBizId, 2);
  t.is(found?.tracesDataId, 1_500_001);
  t.is(found?.rateLimitQps, 50);
  t.is(found?.rateLimitBurst, 100);
  t.is(await findByTokenHash(store, hashToken('not-a-token')), undefined);
  const second = await createApplication(store, { bkBizId: -4220, appName: 'space-app' });
  t.not(second.token, token);
  t.is(second.application.rateLimitQps, undefined);
});

storeContract('conflicts, validation, listing, disabled applications, rotation', async (t, store) => {
  const { token } = await createApplication(store, { bkBizId: 3, appName: 'pay' });
  const conflict = await t.throwsAsync(createApplication(store, { bkBizId: 3, appName: 'pay' }), { instanceOf: BkError });
  t.is(conflict?.code, 'conflict');
  await t.throwsAsync(createApplication(store, { bkBizId: 3, appName: 'bad name', traceRetentionDays: 0 }), {
    instanceOf: ValidationError,
    message: /app_name .*; trace retention/,
  });
  await createApplication(store, { bkBizId: 4, appName: 'api' });
  t.deepEqual((await listApplications(store)).map((a) => `${a.bkBizId}/${a.appName}`), ['3/pay', '4/api']);
  t.deepEqual((await listApplications(store, 4)).map((a) => a.appName), ['api']);

  const rotated = await rotateToken(store, 3, 'pay');
  t.not(rotated.token, token);
  t.is(await findByTokenHash(store, hashToken(token)), undefined, 'the old token no longer resolves');
  t.is((await findByTokenHash(store, hashToken(rotated.token)))?.appName, 'pay');
  await t.throwsAsync(rotateToken(store, 9, 'nope'), { instanceOf: BkError, message: /no application nope/ });

  await store.query('UPDATE apm_application SET is_enabled = false WHERE app_name = $1', ['pay']);
  t.is(await findByTokenHash(store, hashToken(rotated.token)), undefined, 'a disabled application resolves to nothing');
});

const brief = (cmds: { action: string; flow_type: string }[]): string[] => cmds.map((c) => `${c.action}:${c.flow_type}`);

storeContract('flow switches: a registration, its changes and its deletion queue the matching flow commands', async (t, store) => {
  const created = await createApplication(
    store,
    { bkBizId: 2, appName: 'flows', tracesDataId: 1_500_001, metricsDataId: 1_600_001, traceRetentionDays: 14, tailSampling: true, tailSamplingConfig: { tail_percentage: 10 } },
    'alice',
  );
  t.true(created.application.tailSampling);
  t.false(created.application.virtualMetric);
  t.deepEqual(created.application.tailSamplingConfig, { tail_percentage: 10 });
  t.deepEqual(created.application.provisionedFlows, ['tail_sampling']);
  t.deepEqual(brief(created.flowCommands), ['create_or_update:tail_sampling']);
  const [first] = created.flowCommands;
  t.like(first, { bk_biz_id: 2, app_name: 'flows', operator: 'alice', config: { data_id: 1_500_001, es_retention_days: 14, tail_percentage: 10 } });
  t.true(Math.abs((first?.requested_at ?? 0) - Date.now()) < 60_000, 'requested_at is the database clock, ms');
  t.deepEqual(await queuedCommands(store), created.flowCommands, 'queued in the same transaction');

  // unchanged flow settings: nothing queued
  const renamed = await updateApplication(store, 2, 'flows', { appAlias: 'Flows', rateLimitQps: 5 });
  t.deepEqual(renamed.flowCommands, []);
  t.is(renamed.application.appAlias, 'Flows');
  t.is(renamed.application.rateLimitQps, 5);
  t.is((await updateApplication(store, 2, 'flows', { rateLimitQps: null })).application.rateLimitQps, undefined, 'null: back to the default');

  // a tail-sampling key changes (merged; null removes a key), virtual metrics switched on
  const changed = await updateApplication(store, 2, 'flows', { tailSamplingConfig: { tail_percentage: null, tail_trace_mark_timeout: 3 }, virtualMetric: true }, 'bob');
  t.deepEqual(changed.application.tailSamplingConfig, { tail_trace_mark_timeout: 3 });
  t.deepEqual(brief(changed.flowCommands), ['create_or_update:tail_sampling', 'create_or_update:virtual_metric']);
  t.deepEqual(changed.flowCommands[0]?.config, { data_id: 1_500_001, es_retention_days: 14, tail_trace_mark_timeout: 3 });
  t.deepEqual(changed.application.provisionedFlows, ['tail_sampling', 'virtual_metric']);

  // switched off: stop
  const off = await updateApplication(store, 2, 'flows', { tailSampling: false });
  t.deepEqual(brief(off.flowCommands), ['stop:tail_sampling']);
  t.deepEqual((await getApplication(store, 2, 'flows')).provisionedFlows, ['tail_sampling', 'virtual_metric'], 'a stopped flow stays provisioned');

  // a change the switches cannot run with is refused whole
  await t.throwsAsync(updateApplication(store, 2, 'flows', { metricsDataId: 0, tailSamplingConfig: { tail_percentage: 200 } }), {
    instanceOf: ValidationError,
    message: /tail_sampling_config.tail_percentage must be an integer from 0 to 100; virtual metrics need the metrics data id/,
  });
  t.is((await getApplication(store, 2, 'flows')).metricsDataId, 1_600_001, 'nothing of a refused change is kept');
  t.is((await queuedCommands(store)).length, 4);

  // deleted: its token stops resolving, a delete for every provisioned flow; unsent commands dropped
  const deleted = await deleteApplication(store, 2, 'flows', 'carol');
  t.deepEqual(brief(deleted.flowCommands), ['delete:tail_sampling', 'delete:virtual_metric']);
  t.deepEqual(brief(await queuedCommands(store)), ['delete:tail_sampling', 'delete:virtual_metric'], 'commands not sent yet are moot');
  await t.throwsAsync(getApplication(store, 2, 'flows'), { instanceOf: NotFoundError, message: 'no application flows in business 2' });
  await t.throwsAsync(updateApplication(store, 2, 'flows', {}), { instanceOf: NotFoundError });
  await t.throwsAsync(deleteApplication(store, 2, 'flows'), { instanceOf: NotFoundError });
  t.deepEqual(await listApplications(store, 2), []);
});

storeContract('flow switches are checked at registration, every problem named', async (t, store) => {
  await t.throwsAsync(createApplication(store, { bkBizId: -3, appName: 'space', tailSampling: true, virtualMetric: true, tailSamplingConfig: { colour: 'red' } as never }), {
    instanceOf: ValidationError,
    message: 'tail_sampling_config.colour: unknown key (one of tail_percentage, tail_trace_session_gap_min, tail_trace_mark_timeout, tail_conditions); tail sampling needs the traces data id (traces_data_id > 0); virtual metrics need the metrics data id (metrics_data_id > 0); virtual metrics run for businesses only (bk_biz_id > 0), as the reference',
  });
  t.deepEqual(await listApplications(store), []);
  t.deepEqual(await queuedCommands(store), []);
  const plain = await createApplication(store, { bkBizId: -3, appName: 'space' });
  t.deepEqual(plain.flowCommands, [], 'no switch on: no command');
  t.deepEqual((await deleteApplication(store, -3, 'space')).flowCommands, [], 'no flow provisioned: nothing to delete');
});
