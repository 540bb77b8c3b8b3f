/**
 * The application registry on PGlite and PostgreSQL: tokens shown once and stored as hashes, lookups by
 * hash, conflicts, rotation, per-application rate limits (migration 0300).
 */
import { BkError, ValidationError } from '../../services/common/errors.ts';
import { createApplication, findByTokenHash, hashToken, listApplications, rotateToken, TOKEN_PREFIX } from '../../services/collector/applications.ts';
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
