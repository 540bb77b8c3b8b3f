import test from 'ava';
import { BkError, ConfigError, CorruptRecordError, errorClass, isRetriable, UnavailableError, ValidationError } from '../../services/common/errors.ts';

test('our errors carry code and retriable flag', (t) => {
  t.false(isRetriable(new ValidationError('bad')));
  t.false(isRetriable(new CorruptRecordError('bad')));
  t.false(isRetriable(new ConfigError([{ key: 'X', message: 'bad' }])));
  t.true(isRetriable(new UnavailableError('down')));
  t.is(errorClass(new UnavailableError('down')), 'unavailable');
  const cause = new Error('root');
  t.is(new BkError('x', 'y', true, { cause }).cause, cause);
});

test('programmer errors are never retried; network errors are', (t) => {
  t.false(isRetriable(new TypeError('x')));
  t.false(isRetriable(new RangeError('x')));
  t.false(isRetriable(Object.assign(new TypeError('x'), { retriable: true })));
  t.true(isRetriable(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })));
  t.true(isRetriable(Object.assign(new Error('pg'), { code: '57P01' })));
  t.true(isRetriable({ name: 'KafkaJSError', retriable: true }));
  t.false(isRetriable({ name: 'KafkaJSError', retriable: false }));
  t.false(isRetriable(new Error('unknown')));
  t.false(isRetriable('string'));
});
