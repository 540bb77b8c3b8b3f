/**
 * `bkstream up`'s first run: the broker jars' download progress (services/cli/local-kafka.ts) — mvn's
 * transfer lines parsed and condensed, and an install through a stand-in `mvn` (a script on PATH that
 * prints what Maven prints and writes the jars), so no network is used.
 */
import test from 'ava';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installKafkaWithProgress, kafkaInstalled, kafkaSettings, MavenProgress, parseMavenTransfer } from '../../services/cli/local-kafka.ts';

test('mvn transfer lines are parsed: file, size in bytes, done or not', (t) => {
  t.deepEqual(parseMavenTransfer('Downloading from central: https://repo.maven.apache.org/maven2/org/apache/kafka/kafka_2.13/3.9.2/kafka_2.13-3.9.2.jar'), {
    done: false,
    file: 'kafka_2.13-3.9.2.jar',
    bytes: undefined,
  });
  t.deepEqual(parseMavenTransfer('[INFO] Downloaded from central: https://repo.maven.apache.org/maven2/org/apache/kafka/kafka_2.13/3.9.2/kafka_2.13-3.9.2.jar (6.2 MB at 3.1 MB/s)'), {
    done: true,
    file: 'kafka_2.13-3.9.2.jar',
    bytes: 6_200_000,
  });
  t.is(parseMavenTransfer('Downloaded from central: https://x/y/z.pom (1.5 kB at 20 kB/s)')?.bytes, 1_500);
  t.is(parseMavenTransfer('Downloaded from central: https://x/y/z.pom (419 B at 4 kB/s)')?.bytes, 419);
  t.is(parseMavenTransfer('[INFO] BUILD SUCCESS'), undefined);
  t.is(parseMavenTransfer(''), undefined);
});

test('progress is condensed: at most one line per interval, then the totals; copies counted when everything is cached; nothing else is said', (t) => {
  const said: string[] = [];
  let now = 0;
  const p = new MavenProgress((m) => said.push(m), 1_000, () => now);
  p.line('Downloading from central: https://r/a/a-1.pom');
  p.line('Downloaded from central: https://r/a/a-1.pom (2 kB at 1 kB/s)');
  now = 10;
  p.line('Downloaded from central: https://r/a/a-1.jar (1.0 MB at 1 MB/s)');
  now = 1_500;
  p.line('Downloaded from central: https://r/b/b-2.jar (3.0 MB at 1 MB/s)');
  p.finish();
  t.deepEqual(said, [
    'downloaded a-1.pom (1 files, 0 jars, 0.0 MB so far)',
    'downloaded b-2.jar (3 files, 2 jars, 4.0 MB so far)',
    'done: 3 files, 2 jars, 4.0 MB downloaded',
  ]);
  const quiet: string[] = [];
  const q = new MavenProgress((m) => quiet.push(m));
  q.line('[INFO] --- maven-dependency-plugin:3.6.0:copy-dependencies (default-cli) @ local-kafka-broker ---');
  q.finish();
  t.deepEqual(quiet, []);
  // Everything in ~/.m2 already: mvn only copies the jars into the lib directory.
  const copies: string[] = [];
  const c = new MavenProgress((m) => copies.push(m), 0);
  c.line('[INFO] Copying kafka-clients-3.9.2.jar to /x/lib/kafka-clients-3.9.2.jar');
  c.line('[INFO] Copying kafka_2.13-3.9.2.jar to /x/lib/kafka_2.13-3.9.2.jar');
  c.finish();
  t.deepEqual(copies, ['copied kafka-clients-3.9.2.jar (1 jars so far)', 'copied kafka_2.13-3.9.2.jar (2 jars so far)', 'done: 2 jars in place']);
});

test.serial('the first install reports mvn\'s downloads; once installed it is silent', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bk-kafka-progress-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'bin');
  const home = join(dir, 'home');
  const script = (name: string, body: string): void => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  mkdirSync(bin, { recursive: true });
  script('java', 'echo \'openjdk version "17.0.15" 2025-04-15\' >&2');
  script('mvn', [
    'if [ "$1" = "-v" ]; then echo "Apache Maven 3.8.7"; exit 0; fi',
    'out=""; for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${a#-DoutputDirectory=}";; esac; done',
    'echo "[INFO] Scanning for projects..."',
    'for f in kafka-clients-3.9.2 kafka_2.13-3.9.2 scala-library-2.13.15; do',
    '  echo "Downloading from central: https://repo.maven.apache.org/maven2/x/$f.jar"',
    '  echo "Downloaded from central: https://repo.maven.apache.org/maven2/x/$f.jar (2.5 MB at 9 MB/s)"',
    '  : > "$out/$f.jar"; echo "[INFO] Copying $f.jar to $out/$f.jar"',
    'done',
    'echo "[INFO] BUILD SUCCESS"',
  ].join('\n'));
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path ?? ''}`;
  t.teardown(() => {
    process.env.PATH = path;
  });
  const settings = kafkaSettings({ BKSTREAM_HOME: home, KAFKA_VERSION: '3.9.2' });
  const said: string[] = [];
  const lib = await installKafkaWithProgress(settings, (m) => said.push(m), 0);
  t.true(existsSync(join(lib, 'kafka_2.13-3.9.2.jar')));
  t.true(kafkaInstalled(settings));
  t.regex(said[0] ?? '', /^resolving the Kafka 3\.9\.2 broker jars with mvn \(first run; .*install-3\.9\.2\.log\)$/);
  t.deepEqual(said.slice(1), [
    'downloaded kafka-clients-3.9.2.jar (1 files, 1 jars, 2.5 MB so far)',
    'copied kafka-clients-3.9.2.jar (1 jars so far)',
    'downloaded kafka_2.13-3.9.2.jar (2 files, 2 jars, 5.0 MB so far)',
    'copied kafka_2.13-3.9.2.jar (2 jars so far)',
    'downloaded scala-library-2.13.15.jar (3 files, 3 jars, 7.5 MB so far)',
    'copied scala-library-2.13.15.jar (3 jars so far)',
    'done: 3 files, 3 jars, 7.5 MB downloaded, 3 jars in place',
  ]);
  t.regex(readFileSync(join(home, 'kafka', 'install-3.9.2.log'), 'utf8'), /BUILD SUCCESS/, 'mvn\'s whole output is in the install log');
  const again: string[] = [];
  t.is(await installKafkaWithProgress(settings, (m) => again.push(m), 0), lib);
  t.deepEqual(again, [], 'quiet when already installed');
});

test.serial('a failed resolution names the log and shows its tail', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bk-kafka-progress-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'java'), '#!/bin/sh\necho \'openjdk version "17.0.15"\' >&2\n');
  writeFileSync(join(bin, 'mvn'), '#!/bin/sh\nif [ "$1" = "-v" ]; then exit 0; fi\necho "[ERROR] Could not transfer artifact: Network is unreachable"\nexit 1\n');
  chmodSync(join(bin, 'java'), 0o755);
  chmodSync(join(bin, 'mvn'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path ?? ''}`;
  t.teardown(() => {
    process.env.PATH = path;
  });
  const settings = kafkaSettings({ BKSTREAM_HOME: join(dir, 'home'), KAFKA_VERSION: '3.9.2' });
  const err = await t.throwsAsync(installKafkaWithProgress(settings, () => undefined, 0));
  t.regex(err?.message ?? '', /mvn could not resolve org\.apache\.kafka:kafka_2\.13:3\.9\.2 \(log: .*install-3\.9\.2\.log\):\n.*Network is unreachable/);
  t.false(kafkaInstalled(settings));
});
