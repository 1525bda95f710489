/**
 * The command lines of ej01's four scripts, each run as a process under tsx:
 * -h, a bad flag, a bad value, a missing required option.
 */
import t from 'tap';
import { run, tsx } from '../lib/fixtures/spawn.ts';

const scripts = {
  'tcp-server.ts': {
    assignment: 'usage: tcp-server.ts [-h] [--host HOST] [--port PORT]',
    usage: 'usage: tcp-server.ts [-h] [--host HOST] [--port PORT] [--iterative] [--idle-timeout SECONDS] [--quiet]',
  },
  'udp-server.ts': {
    assignment: 'usage: udp-server.ts [-h] [--host HOST] [--port PORT]',
    usage: 'usage: udp-server.ts [-h] [--host HOST] [--port PORT] [--quiet]',
  },
  'tcp-client.ts': {
    assignment: 'usage: tcp-client.ts [-h] --data DATA [--host HOST] [--port PORT]',
    usage: 'usage: tcp-client.ts [-h] --data DATA [--host HOST] [--port PORT] [--timeout SECONDS]',
  },
  'udp-client.ts': {
    assignment: 'usage: udp-client.ts [-h] --data DATA [--host HOST] [--port PORT]',
    usage: 'usage: udp-client.ts [-h] --data DATA [--host HOST] [--port PORT] [--timeout SECONDS] [--retries N] [--verbose]',
  },
} as const;

for (const [name, { assignment, usage }] of Object.entries(scripts)) {
  const file = `ej01/${name}`;
  const isClient = name.includes('client');

  t.test(`${name} -h prints the usage in the assignment's form and the defaults, and exits 0`, async (t) => {
    const { code, stdout, stderr } = await run(tsx(file, '-h'));
    t.equal(code, 0);
    t.equal(stderr, '');
    t.equal(stdout.split('\n')[0], usage);
    t.ok(usage.startsWith(assignment), `the usage begins with the assignment's: ${assignment}`);
    t.match(stdout, /--host HOST +.*\(default: 127\.0\.0\.1\)/);
    t.match(stdout, /--port PORT +.*\(default: 7007\)/);
    if (isClient) t.match(stdout, /--data DATA +.*\(required\)/);
    t.match(stdout, /^Exit status: 0 /m, 'the exit statuses, as every script says them');
  });

  t.test(`${name} refuses an unknown flag with the usage on stderr and exit 2`, async (t) => {
    const { code, stdout, stderr } = await run(tsx(file, '--no-such-flag'));
    t.equal(code, 2);
    t.equal(stdout, '');
    t.equal(stderr, `${usage}\n${name}: error: unrecognized arguments: --no-such-flag\n`);
  });

  t.test(`${name} refuses a port out of range with the usage on stderr and exit 2`, async (t) => {
    const args = isClient ? ['--data', 'x', '--port', '65536'] : ['--port', '65536'];
    const { code, stdout, stderr } = await run(tsx(file, ...args));
    t.equal(code, 2);
    t.equal(stdout, '');
    const range = isClient ? '1-65535' : '0-65535';
    t.equal(stderr, `${usage}\n${name}: error: argument --port: expected a port number ${range}, got '65536'\n`);
  });

}

t.test('tcp-client.ts and udp-client.ts require --data', async (t) => {
  for (const name of ['tcp-client.ts', 'udp-client.ts'] as const) {
    const { code, stderr } = await run(tsx(`ej01/${name}`));
    t.equal(code, 2, `${name} exits 2`);
    t.equal(stderr, `${scripts[name].usage}\n${name}: error: the following arguments are required: --data\n`);
  }
});

t.test('a flag without its value is refused with exit 2', async (t) => {
  const { code, stderr } = await run(tsx('ej01/tcp-client.ts', '--data', 'x', '--port'));
  t.equal(code, 2);
  t.match(stderr, /^tcp-client\.ts: error: argument --port: expected one argument$/m);
});

t.test('bad values of the other options are refused with exit 2', async (t) => {
  const cases: [string, string[], RegExp][] = [
    ['ej01/tcp-client.ts', ['--data', 'x', '--timeout', '0'], /argument --timeout: expected a positive number, got '0'/],
    ['ej01/udp-client.ts', ['--data', 'x', '--retries', '1.5'], /argument --retries: expected a positive integer, got '1\.5'/],
    ['ej01/udp-server.ts', ['--host', '127.0.0.1:80'], /argument --host: expected an IP address or host name, got '127\.0\.0\.1:80'/],
    ['ej01/tcp-server.ts', ['--idle-timeout', 'never'], /argument --idle-timeout: expected a positive number, got 'never'/],
  ];
  for (const [file, args, reason] of cases) {
    const { code, stdout, stderr } = await run(tsx(file, ...args));
    t.equal(code, 2, `${file} ${args.join(' ')} exits 2`);
    t.equal(stdout, '');
    t.match(stderr, reason);
    t.notMatch(stderr, /\n\s+at /, 'no stack trace');
  }
});
