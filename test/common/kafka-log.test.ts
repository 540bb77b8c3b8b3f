/** kafkajs's log lines in our logger (services/common/log.ts kafkaLogCreator): which level each gets. */
import test from 'ava';
import { kafkaLogCreator, type Logger } from '../../services/common/log.ts';

function recorder(): { logger: Logger; lines: [string, string][] } {
  const lines: [string, string][] = [];
  const logger: Logger = {
    error: (m) => lines.push(['error', m]),
    warn: (m) => lines.push(['warn', m]),
    info: (m) => lines.push(['info', m]),
    debug: (m) => lines.push(['debug', m]),
    child: () => logger,
  };
  return { logger, lines };
}

test('errors stay errors and warnings warnings; info and the per-answer error codes of a connection are debug; the runner\'s re-join on a rebalance is info', (t) => {
  const { logger, lines } = recorder();
  const log = kafkaLogCreator(logger)();
  log({ namespace: 'Connection', level: 1, label: 'ERROR', log: { message: 'Response Metadata(key: 3, version: 6)', error: 'This server does not host this topic-partition' } });
  log({ namespace: 'Connection', level: 1, label: 'ERROR', log: { message: 'Connection error: connect ECONNREFUSED 127.0.0.1:1' } });
  log({ namespace: 'Producer', level: 1, label: 'ERROR', log: { message: 'Failed to send messages' } });
  log({ namespace: 'Consumer', level: 2, label: 'WARN', log: { message: 'The group is rebalancing' } });
  log({ namespace: 'ConsumerGroup', level: 4, label: 'INFO', log: { message: 'Consumer has joined the group' } });
  log({ namespace: 'Runner', level: 2, label: 'WARN', log: { message: 'The group is rebalancing, re-joining', groupId: 'g' } });
  t.deepEqual(lines, [
    ['debug', 'Response Metadata(key: 3, version: 6)'],
    ['error', 'Connection error: connect ECONNREFUSED 127.0.0.1:1'],
    ['error', 'Failed to send messages'],
    ['warn', 'The group is rebalancing'],
    ['debug', 'Consumer has joined the group'],
    ['info', 'The group is rebalancing, re-joining'],
  ]);
});
