/** common/secrets.ts: AES-GCM sealing bound to its place, keys and rotation, masking in documents and logs. */
import test from 'ava';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../services/common/log.ts';
import { isSealed, MASK, maskingLogger, maskSecretKeys, openSecrets, parseKey, sealSecrets, SecretBox, secretBoxOf, SecretError, secretValues } from '../../services/common/secrets.ts';

const KEY_A = Buffer.alloc(32, 1);
const KEY_B = Buffer.alloc(32, 2);

test('sealed values open only with their key and in their place; tampering is detected', (t) => {
  const box = new SecretBox(KEY_A);
  const sealed = box.seal('pa55', 'config.es_cluster.password');
  t.true(isSealed(sealed));
  t.false(sealed.includes('pa55'));
  t.not(box.seal('pa55', 'config.es_cluster.password'), sealed, 'a fresh IV each time');
  t.is(box.open(sealed, 'config.es_cluster.password'), 'pa55');
  t.throws(() => box.open(sealed, 'config.kafka.password'), { instanceOf: SecretError, message: /moved from another field/ });
  const tampered = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'BB' : 'AA');
  t.throws(() => box.open(tampered, 'config.es_cluster.password'), { instanceOf: SecretError });
  const other = new SecretBox(KEY_B);
  t.throws(() => other.open(sealed, 'config.es_cluster.password'), { instanceOf: SecretError, message: new RegExp(`sealed with key ${box.keyId}; this instance has key ${other.keyId}`) });
  t.is(new SecretBox(KEY_B, [KEY_A]).open(sealed, 'config.es_cluster.password'), 'pa55', 'a previous key still opens it');
});

test('documents: every password / secret value sealed in place, resealed on rotation, opened, listed and masked', (t) => {
  const box = new SecretBox(KEY_A);
  const doc = { data_id: 1, es_cluster: { host: 'h', password: 'pa55', username: 'u' }, kafka: { password: '' }, scope: [{ sasl_password: 'k' }], app_secret: 's' };
  const sealed = sealSecrets(doc, box, 'config');
  t.true(isSealed(sealed.es_cluster.password));
  t.true(isSealed((sealed.scope[0] as { sasl_password: string }).sasl_password));
  t.true(isSealed(sealed.app_secret));
  t.is(sealed.kafka.password, '', 'empty stays empty');
  t.is(sealed.es_cluster.host, 'h');
  t.is(sealSecrets(sealed, box, 'config'), sealed, 'nothing to do: the same object');
  t.deepEqual(openSecrets(sealed, box, 'config'), doc);
  t.deepEqual(secretValues(doc).sort(), ['k', 'pa55', 's']);
  const rotated = sealSecrets(sealed, new SecretBox(KEY_B, [KEY_A]), 'config');
  t.true(rotated.es_cluster.password.startsWith(`enc:v1:${new SecretBox(KEY_B).keyId}:`));
  t.deepEqual(openSecrets(rotated, new SecretBox(KEY_B), 'config'), doc);
  t.throws(() => sealSecrets(sealed, new SecretBox(KEY_B), 'config'), { instanceOf: SecretError }, 'a value no key opens is not silently kept');
  const masked = maskSecretKeys({ ...sealed, token: 't', note: 'enc:v1:0123abcd:AAAA' }) as Record<string, unknown>;
  t.is((masked.es_cluster as { password: string }).password, MASK);
  t.is(masked.token, MASK);
  t.is(masked.note, MASK, 'any sealed value');
  t.is((masked.es_cluster as { host: string }).host, 'h');
});

test('keys: base64 or hex 32 bytes, errors never show the value; without a key, a 0600 file is created', (t) => {
  t.is(parseKey(KEY_A.toString('base64')).length, 32);
  t.is(parseKey(KEY_A.toString('hex')).length, 32);
  const err = t.throws(() => parseKey('not-a-real-key-value'));
  t.false(err?.message.includes('not-a-real-key-value'));
  const dir = mkdtempSync(join(tmpdir(), 'bkstream-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const created: string[] = [];
  const box = secretBoxOf({ secretKey: undefined, secretKeyFile: undefined, secretKeyPrevious: [], dataDir: dir }, (p) => created.push(p));
  t.deepEqual(created, [join(dir, 'secret.key')]);
  t.is(statSync(join(dir, 'secret.key')).mode & 0o777, 0o600);
  t.is(secretBoxOf({ secretKey: undefined, secretKeyFile: undefined, secretKeyPrevious: [], dataDir: dir }).keyId, box.keyId, 'the same key on the next start');
});

test('a masking logger replaces the secret in messages, metadata, errors and children', (t) => {
  const lines: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (b: Buffer) => lines.push(b.toString()));
  const log = maskingLogger(createLogger({ level: 'debug', stream }), ['app-secret-value', undefined]);
  log.info('header X-Bkapi-Authorization: {"bk_app_secret":"app-secret-value"}');
  log.child({ component: 'client' }).warn('failed', { err: new Error('echo app-secret-value', { cause: new Error('cause app-secret-value') }), nested: { deep: ['app-secret-value'] } });
  const text = lines.join('');
  t.false(text.includes('app-secret-value'));
  t.is(text.split(MASK).length - 1, 4);
});
