/**
 * FOR COMPARISON ONLY — INSECURE. The assignment's original design, rebuilt
 * in a few lines so that its traffic can be captured beside ours (see
 * ej05/README.md): the login is encrypted with AES under a key both programs
 * carry in their source, and everything after it travels in plaintext.
 *
 * ```sh
 * npx tsx ej05/original-design.ts --serve --port 5006 &
 * printf 'nahuel\n1234\npwd\nls\n' | npx tsx ej05/original-design.ts --port 5006
 * ```
 *
 * What is wrong with it, each fixed in server.ts/client.ts: the shared key is
 * in the source (anyone with the program decrypts every login ever captured);
 * AES-CBC without a MAC lets a relay alter what it carries; the commands and
 * their output are readable by anyone on the path; nothing identifies the
 * server, so a relay can impersonate it; the server would keep passwords in
 * clear to compare them.
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import readline from 'node:readline';
import { defineCommand, formatAddress, parseHost, parsePort } from '../lib/cli.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { describeConnectError } from '../lib/net-errors.ts';
import { listenTcp, readyLine } from '../lib/server.ts';

// The pre-shared key, in the source as in the original: its weakness.
const KEY = createHash('sha256').update('clave compartida del practico').digest();
const USERS: Record<string, string> = { nahuel: '1234' };

function encryptLogin(text: string): string {
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', KEY, iv);
  return Buffer.concat([iv, cipher.update(text, 'utf8'), cipher.final()]).toString('hex');
}

function decryptLogin(hex: string): string {
  const bytes = Buffer.from(hex, 'hex');
  const decipher = createDecipheriv('aes-256-cbc', KEY, bytes.subarray(0, 16));
  return Buffer.concat([decipher.update(bytes.subarray(16)), decipher.final()]).toString('utf8');
}

async function serve(host: string, port: number): Promise<void> {
  const server = net.createServer((socket) => {
    let cwd = process.cwd();
    let user: string | undefined;
    socket.on('error', () => {});
    readline.createInterface({ input: socket, terminal: false }).on('line', (line) => {
      if (user === undefined) {
        let name = '';
        let password = '';
        try {
          [name = '', password = ''] = decryptLogin(line).split('\n');
        } catch {
          // a garbled login is a failed login
        }
        if (USERS[name] !== password) return void socket.end('DENIED\n');
        user = name;
        return void socket.write('OK\n');
      }
      const cd = /^\s*cd\s+(.+)$/.exec(line);
      const result = spawnSync('/bin/sh', ['-c', cd ? `cd ${cd[1]} && pwd` : line], { cwd, encoding: 'utf8' });
      if (cd && result.status === 0) cwd = result.stdout.trim();
      // Plaintext, with an end marker: what a capture shows in full.
      socket.write(`${cd ? '' : result.stdout}${result.stderr}\u0000\n`);
    });
  });
  console.log(readyLine(await listenTcp(server, host, port), 'tcp'));
}

async function connect(host: string, port: number): Promise<void> {
  const where = formatAddress(host, port);
  const input = readline.createInterface({ input: process.stdin, terminal: false })[Symbol.asyncIterator]();
  const next = async () => (await input.next()).value as string | undefined;
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, host);
    s.once('error', (error: NodeJS.ErrnoException) => reject(describeConnectError(error, where)));
    s.once('connect', () => resolve(s));
  });
  socket.on('error', () => {}); // a reset shows as the end of its lines, below
  const lines = readline.createInterface({ input: socket, terminal: false })[Symbol.asyncIterator]();
  const reply = async () => {
    const { value, done } = await lines.next();
    if (done) throw new CliError(`the server ${where} closed the connection`);
    return value as string;
  };
  try {
    socket.write(`${encryptLogin(`${(await next()) ?? ''}\n${(await next()) ?? ''}`)}\n`);
    const answer = await reply().catch(() => 'DENIED');
    if (answer !== 'OK') throw new CliError('login refused: wrong user name or password');
    for (let command = await next(); command !== undefined; command = await next()) {
      process.stdout.write(`>>> ${command}\n`);
      socket.write(`${command}\n`);
      for (let line = await reply(); !line.endsWith('\u0000'); line = await reply()) process.stdout.write(`${line}\n`);
    }
  } finally {
    socket.end();
    process.stdin.destroy();
  }
}

const command = defineCommand({
  name: 'original-design.ts',
  summary: 'INSECURE comparison: the original design (AES-encrypted login with a shared key, plaintext session).',
  options: {
    serve: { type: 'boolean', help: 'run the server (otherwise the client: user, password, commands on stdin)' },
    host: { type: 'string', default: '127.0.0.1', help: 'address' },
    port: { type: 'string', default: '5006', help: 'port (the server: 0 picks a free one)' },
  },
  epilog: `The server prints "listening on HOST:PORT (tcp)" on stdout when ready; the user is nahuel, password 1234.
Exit status: 0 the session ran, 1 login refused, cannot connect or cannot listen, 2 bad usage; the server runs until Ctrl-C.`,
});

if (isMain(import.meta)) {
  runMain(command.spec.name, () => {
    const opts = command.parseOrExit(process.argv.slice(2));
    const host = parseHost(opts.host);
    const port = parsePort(opts.port);
    return opts.serve ? serve(host, port) : connect(host, port);
  });
}
