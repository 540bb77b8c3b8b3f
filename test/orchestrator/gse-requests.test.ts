/**
 * The GSE request checks alone (no network, no store): Django REST framework's coercions as the
 * reference's serializers apply them (integer strings, numbers as text, trimming, unknown keys ignored,
 * defaults), and every problem of a request reported at once with its field path.
 */
import test from 'ava';
import { GseRequestError, parseAddRoute, parseAddStreamTo, parseDeleteRoute, parseQueryRoute, parseUpdateRoute } from '../../services/orchestrator/gse/requests.ts';

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof GseRequestError) return err.problems.map((p) => `${p.field}: ${p.message}`);
    throw err;
  }
  return [];
}

test('integer strings and numbers as text are taken as the reference takes them; text is trimmed; ESB fields are ignored', (t) => {
  const req = parseAddStreamTo({
    bk_app_code: 'bk_monitorv3',
    bk_username: 'admin',
    metadata: { plat_name: ' bkmonitor ' },
    operation: { operator_name: 'admin' },
    stream_to: { name: 42, report_mode: 'kafka', kafka: { storage_address: [{ ip: 'kafka-1', port: '9092' }], sasl_username: '', sasl_passwd: ' keep spaces ', sasl_mechanisms: 'scram-sha-512' } },
  });
  t.deepEqual(req, {
    metadata: { plat_name: 'bkmonitor' },
    operation: { operator_name: 'admin' },
    stream_to: { name: '42', report_mode: 'kafka', kafka: { storage_address: [{ ip: 'kafka-1', port: 9092 }], sasl_username: '', sasl_passwd: ' keep spaces ', sasl_mechanisms: 'SCRAM-SHA-512' } },
  });
  const route = parseAddRoute({ metadata: { plat_name: 'bkmonitor', channel_id: '1500001' }, operation: { operator_name: 'a' }, route: [{ name: 'r', stream_to: { stream_to_id: '3', kafka: { topic_name: 't', partition: '0' } } }] });
  t.deepEqual(route, { metadata: { plat_name: 'bkmonitor', channel_id: 1_500_001 }, operation: { operator_name: 'a' }, route: [{ name: 'r', stream_to: { stream_to_id: 3, kafka: { topic_name: 't', partition: 0 } } }], stream_filters: [] });
  t.deepEqual(parseQueryRoute({ condition: { channel_id: 7 }, operation: { operator_name: 'a' } }), { condition: { channel_id: 7 }, operation: { operator_name: 'a' } });
});

test('every problem of a request is reported at once, each with its field path', (t) => {
  t.deepEqual(problems(() => parseAddStreamTo({ metadata: {}, stream_to: { name: '', report_mode: 'kafka', kafka: { storage_address: [{ ip: 'a' }, 'b'], sasl_username: true } } })), [
    'metadata.plat_name: This field is required.',
    'operation: This field is required.',
    'stream_to.name: This field may not be blank.',
    'stream_to.kafka.storage_address.0.port: This field is required.',
    'stream_to.kafka.storage_address.1: Invalid data. Expected a dictionary, but got str.',
    'stream_to.kafka.sasl_username: Not a valid string.',
  ]);
  t.deepEqual(problems(() => parseUpdateRoute({ condition: { channel_id: 1.5, plat_name: 'p' }, operation: { operator_name: 'a' }, specification: { stream_filters: [{ name: 'f', field_index: 'x', field_data_type: 'int', field_data_value: 1, field_in: 'body' }] } })), [
    'condition.channel_id: A valid integer is required.',
    'specification.stream_filters.0.field_index: A valid integer is required.',
    'specification.stream_filters.0.field_in: "body" is not a valid choice.',
  ]);
  t.deepEqual(problems(() => parseDeleteRoute({ condition: { channel_id: 1, plat_name: 'p' }, operation: { operator_name: 'a', method: 'specification' } })), [
    'specification: method "specification" needs the names of the routes or stream_filters to delete.',
  ]);
  t.deepEqual(problems(() => parseAddRoute({ metadata: { plat_name: 'p', channel_id: 0 }, operation: { operator_name: 'a' }, route: [{ name: 'r', stream_to: { stream_to_id: 1, pulsar: { name: 'x' }, kafka: { topic_name: 't' } } }] })), [
    'metadata.channel_id: Ensure this value is greater than or equal to 1.',
    'route.0.stream_to.pulsar: "pulsar" targets are not supported by bkstream: its publishers write to Kafka only.',
  ]);
});

test('a stream filter without field_in gets the reference\'s default (protocol)', (t) => {
  const req = parseAddRoute({ metadata: { plat_name: 'p' }, operation: { operator_name: 'a' }, stream_filters: [{ name: 'f', field_index: 2, field_data_type: 'bytes', field_data_value: 'v', field_separator: '|' }] });
  t.deepEqual(req.stream_filters, [{ name: 'f', field_index: 2, field_data_type: 'bytes', field_data_value: 'v', field_separator: '|', field_in: 'protocol' }]);
});
