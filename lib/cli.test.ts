import t from 'tap';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from './cli.ts';
import { run, tsx } from './fixtures/spawn.ts';

const server = defineCommand({
  name: 'tcp-server.ts',
  summary: 'Echo server (RFC 862) over TCP.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    port: { type: 'string', default: '7007', help: 'port to listen on' },
  },
});

const client = defineCommand({
  name: 'tcp-client.ts',
  summary: 'Echo client.',
  options: {
    data: { type: 'string', required: true, help: 'text to send' },
    timeout: { type: 'string', default: '5', metavar: 'SECONDS', help: 'give up after this long' },
    verbose: { type: 'boolean', short: 'v', help: 'say more' },
    header: { type: 'string', multiple: true, short: 'H', help: 'extra header' },
  },
  epilog: 'Exit status: 0 ok, 1 failure, 2 bad usage.',
});

const master = defineCommand({
  name: 'master.ts',
  summary: 'Copies a file through workers.',
  options: {},
  positionals: [
    { name: 'in_file', help: 'file to read' },
    { name: 'out_file', help: 'file to write' },
  ],
});

const cat = defineCommand({
  name: 'cat.ts',
  summary: 'Prints files.',
  options: {},
  positionals: [
    { name: 'first', help: 'first file' },
    { name: 'rest', help: 'more files', optional: true, variadic: true },
  ],
});

/** The UsageError `parse` throws; anything else (or nothing) fails the test. */
function usageError(parse: () => unknown): UsageError {
  try {
    parse();
  } catch (error) {
    if (error instanceof UsageError) return error;
    throw error;
  }
  throw new Error('expected a UsageError, but nothing was thrown');
}

t.test('usage() prints the usage line in argparse form', async (t) => {
  t.equal(server.usage(), 'usage: tcp-server.ts [-h] [--host HOST] [--port PORT]');
  t.equal(
    client.usage(),
    'usage: tcp-client.ts [-h] --data DATA [--timeout SECONDS] [--verbose] [--header HEADER]',
    'a required option has no brackets, a metavar replaces the name, a switch takes no value',
  );
  t.equal(master.usage(), 'usage: master.ts [-h] in_file out_file', 'positionals follow the options');
  t.equal(cat.usage(), 'usage: cat.ts [-h] first [rest ...]', 'an optional variadic positional is bracketed with an ellipsis');
});

t.test('help() lists every option with its default in words', async (t) => {
  const help = server.help();
  t.match(help, /^usage: tcp-server\.ts \[-h\] \[--host HOST\] \[--port PORT\]\n\nEcho server \(RFC 862\) over TCP\.\n/);
  t.match(help, /^ {2}-h, --help +show this help message and exit$/m);
  t.match(help, /^ {2}--host HOST +address to listen on \(default: 127\.0\.0\.1\)$/m);
  t.match(help, /^ {2}--port PORT +port to listen on \(default: 7007\)$/m);

  const clientHelp = client.help();
  t.match(clientHelp, /--data DATA +text to send \(required\)$/m, 'a required option says so');
  t.match(clientHelp, /-v, --verbose +say more$/m, 'a short flag is shown beside the long one');
  t.match(clientHelp, /--timeout SECONDS +give up after this long \(default: 5\)$/m);
  t.match(clientHelp, /\n\nExit status: 0 ok, 1 failure, 2 bad usage\.\n$/, 'the epilog ends the help');

  t.match(master.help(), /positional arguments:\n {2}in_file +file to read\n {2}out_file +file to write\n/);
});

t.test('parse applies the defaults and reads --flag VALUE, --flag=VALUE and short flags', async (t) => {
  t.same(server.parse([]), { _: [], host: '127.0.0.1', port: '7007' });
  t.same(server.parse(['--host', '::1', '--port=0']), { _: [], host: '::1', port: '0' });
  t.same(client.parse(['--data', 'hola mundo', '-v', '-H', 'a: 1', '--header', 'b: 2']), {
    _: [],
    data: 'hola mundo',
    timeout: '5',
    verbose: true,
    header: ['a: 1', 'b: 2'],
  });
  t.same(client.parse(['--data', '']), { _: [], data: '', timeout: '5', verbose: false, header: [] }, 'a switch defaults to false, a multiple option to []');
  t.same(client.parse(['--data', '-']), { _: [], data: '-', timeout: '5', verbose: false, header: [] }, '"-" is a value');
});

t.test('parse returns "help" for -h and --help', async (t) => {
  t.equal(server.parse(['-h']), 'help');
  t.equal(server.parse(['--port', '1', '--help']), 'help');
  t.equal(client.parse(['-h']), 'help', 'even when a required option is missing');
});

t.test('parse rejects an unknown flag with a UsageError naming it', async (t) => {
  const error = usageError(() => server.parse(['--bogus']));
  t.equal(error.message, 'unrecognized arguments: --bogus');
  t.equal(error.code, 'ERR_USAGE');
  t.equal(usageError(() => server.parse(['-x'])).message, 'unrecognized arguments: -x');
});

t.test('parse rejects a flag without its value', async (t) => {
  t.equal(usageError(() => server.parse(['--port'])).message, 'argument --port: expected one argument');
  t.equal(
    usageError(() => server.parse(['--port', '--host', 'x'])).message,
    'argument --port: expected one argument',
    'a flag followed by another flag lacks its value too',
  );
  t.equal(usageError(() => client.parse(['--data', 'x', '-H'])).message, 'argument -H/--header: expected one argument', 'a short flag is named as argparse does');
});

t.test('parse rejects a value given to a switch', async (t) => {
  t.equal(usageError(() => client.parse(['--data', 'x', '--verbose=yes'])).message, 'argument -v/--verbose: ignored explicit argument');
});

t.test('parse rejects a missing required option', async (t) => {
  t.equal(usageError(() => client.parse([])).message, 'the following arguments are required: --data');
});

t.test('parse checks positionals: missing ones are named, extra ones refused, a variadic one takes the rest', async (t) => {
  t.same(master.parse(['a', 'b']), { _: ['a', 'b'] });
  t.equal(usageError(() => master.parse(['a'])).message, 'the following arguments are required: out_file');
  t.equal(usageError(() => master.parse([])).message, 'the following arguments are required: in_file, out_file');
  t.equal(usageError(() => master.parse(['a', 'b', 'c', 'd'])).message, 'unrecognized arguments: c d');
  t.equal(usageError(() => server.parse(['stray'])).message, 'unrecognized arguments: stray', 'a command without positionals refuses one');
  t.same(cat.parse(['a']), { _: ['a'] });
  t.same(cat.parse(['a', 'b', 'c', '--', '-d']), { _: ['a', 'b', 'c', '-d'] }, 'after -- a dash is a positional');
});

t.test('parsePort accepts plain digits 0-65535 only', async (t) => {
  t.equal(parsePort('0'), 0);
  t.equal(parsePort('7007'), 7007);
  t.equal(parsePort('65535'), 65535);
  for (const bad of ['65536', '99999', '-1', '1e3', ' 80', '80 ', '0x50', '8.0', '', 'http', '123456', '+80']) {
    const error = usageError(() => parsePort(bad));
    t.equal(error.message, `argument --port: expected a port number 0-65535, got '${bad}'`, `refuses ${JSON.stringify(bad)}`);
  }
  t.match(usageError(() => parsePort('x', 'listen-port')).message, /^argument --listen-port: /, 'names the option it read');
});

t.test('parsePort with { zero: false } refuses port 0 in one sentence, as a client must', async (t) => {
  t.equal(parsePort('7007', 'port', { zero: false }), 7007);
  const error = usageError(() => parsePort('0', 'port', { zero: false }));
  t.match(error.message, /^argument --port: port 0 /, 'names the option and the value');
  t.match(error.message, /1-65535/, 'says what a client needs');
  t.equal(parsePort('0'), 0, 'a server still takes port 0 (any free port)');
});

t.test('parse reads a negative number as the value of an option that takes one', async (t) => {
  const values = client.parse(['--data', '-1000', '--timeout', '-1', '-H', '-5']);
  t.same(values, { _: [], data: '-1000', timeout: '-1', verbose: false, header: ['-5'] }, '--opt -N and -o -N');
  t.same(client.parse(['--data=-1000', '--timeout=-0.5']), { _: [], data: '-1000', timeout: '-0.5', verbose: false, header: [] }, '--opt=-N still works');
  t.same(client.parse(['--data', '-.5']), { _: [], data: '-.5', timeout: '5', verbose: false, header: [] }, 'a leading dot');
  t.equal(usageError(() => client.parse(['--data', '-v'])).message, 'argument --data: expected one argument', 'a flag is still not a value');
  t.equal(usageError(() => client.parse(['--data', 'x', '-1'])).message, 'unrecognized arguments: -1', 'a negative number after a switch is not swallowed');
  t.same(cat.parse(['a', '--', '--data', '-1']), { _: ['a', '--data', '-1'] }, 'nothing is joined after --');
});

t.test('parsePositive accepts positive decimals, or integers when asked', async (t) => {
  t.equal(parsePositive('5', 'timeout'), 5);
  t.equal(parsePositive('0.5', 'timeout'), 0.5);
  t.equal(parsePositive('.25', 'timeout'), 0.25);
  t.equal(parsePositive('3', 'retries', { integer: true }), 3);
  for (const bad of ['0', '0.0', '-1', '1e3', 'Infinity', 'NaN', '', ' 1', '1s', '0x10']) {
    t.equal(
      usageError(() => parsePositive(bad, 'timeout')).message,
      `argument --timeout: expected a positive number, got '${bad}'`,
      `refuses ${JSON.stringify(bad)}`,
    );
  }
  t.equal(
    usageError(() => parsePositive('1.5', 'retries', { integer: true })).message,
    "argument --retries: expected a positive integer, got '1.5'",
  );
});

t.test('parseHost accepts IP literals and host names, nothing with spaces or a port', async (t) => {
  for (const good of ['127.0.0.1', '::1', '::', '0.0.0.0', 'localhost', 'example.com', 'fe80::1']) t.equal(parseHost(good), good);
  for (const bad of ['', '127.0.0.1:80', 'a b', '[::1]', '-x', 'host/path', 'café.com']) {
    t.equal(
      usageError(() => parseHost(bad)).message,
      `argument --host: expected an IP address or host name, got '${bad}'`,
      `refuses ${JSON.stringify(bad)}`,
    );
  }
});

t.test('formatAddress brackets IPv6 literals only', async (t) => {
  t.equal(formatAddress('127.0.0.1', 7007), '127.0.0.1:7007');
  t.equal(formatAddress('::1', 80), '[::1]:80');
  t.equal(formatAddress('::ffff:127.0.0.1', 0), '[::ffff:127.0.0.1]:0');
  t.equal(formatAddress('localhost', 9), 'localhost:9');
});

// parseOrExit and the validators in a real process, as a script uses them.
const fixture = 'lib/fixtures/cli-command.ts';

t.test('parseOrExit: -h prints the help on stdout and exits 0', async (t) => {
  const { code, stdout, stderr } = await run(tsx(fixture, '-h'));
  t.equal(code, 0);
  t.match(stdout, /^usage: fixture\.ts \[-h\] \[--host HOST\] \[--port PORT\] \[--quiet\] \[files \.\.\.\]\n/);
  t.match(stdout, /--port PORT +port \(default: 7007\)/);
  t.equal(stderr, '');
});

t.test('parseOrExit: an unknown flag prints the reason and the usage on stderr and exits 2', async (t) => {
  const { code, stdout, stderr } = await run(tsx(fixture, '--bogus'));
  t.equal(code, 2);
  t.equal(stdout, '');
  t.equal(stderr, 'usage: fixture.ts [-h] [--host HOST] [--port PORT] [--quiet] [files ...]\nfixture.ts: error: unrecognized arguments: --bogus\n');
});

t.test('parseOrExit: a missing value prints the reason and the usage on stderr and exits 2', async (t) => {
  const { code, stdout, stderr } = await run(tsx(fixture, '--port'));
  t.equal(code, 2);
  t.equal(stdout, '');
  t.equal(stderr, 'usage: fixture.ts [-h] [--host HOST] [--port PORT] [--quiet] [files ...]\nfixture.ts: error: argument --port: expected one argument\n');
});

t.test('a bad port prints the reason and the usage on stderr and exits 2', async (t) => {
  const { code, stdout, stderr } = await run(tsx(fixture, '--port', '65536'));
  t.equal(code, 2);
  t.equal(stdout, '');
  t.match(stderr, /^usage: fixture\.ts \[-h\] \[--host HOST\] \[--port PORT\] \[--quiet\] \[files \.\.\.\]$/m, 'the usage line');
  t.match(stderr, /^fixture\.ts: error: argument --port: expected a port number 0-65535, got '65536'$/m, 'the reason');
  t.notMatch(stderr, /\n\s+at /, 'no stack trace');
});

t.test('good options reach main', async (t) => {
  const { code, stdout, stderr } = await run(tsx(fixture, '--port', '0', '--host', '::1', '-q', 'a', 'b'));
  t.equal(code, 0, stderr);
  t.same(JSON.parse(stdout), { host: '::1', port: 0, quiet: true, files: ['a', 'b'] });
});
