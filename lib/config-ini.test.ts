import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { configPath, loadConfigFile, parseHostSections } from './config-ini.ts';
import { CliError } from './main.ts';

const options = {
  what: 'nodes',
  example: '[nodo1]',
  header: '[section]',
  checkSection: (name: string) => (/^nodo\d+$/.test(name) ? undefined : `section [${name}] must be [nodoN]`),
  error: (message: string) => new SyntaxError(message),
};

t.test('parseHostSections() reads sections in file order, a BOM and CRLF accepted', async (t) => {
  t.same(parseHostSections('\uFEFF[nodo2]\r\nhost = ::1\r\nport = 8002\r\n; c\r\n[nodo1]\r\nhost=a.b\r\nport=1\r\n', options), [
    { name: 'nodo2', host: '::1', port: 8002, line: 1 },
    { name: 'nodo1', host: 'a.b', port: 1, line: 5 },
  ]);
});

t.test('parseHostSections() names the file, line and section of a mistake, through the caller\'s error', async (t) => {
  t.throws(() => parseHostSections('[x]\n', { ...options, file: 'c.ini' }), { name: 'SyntaxError', message: 'Cannot use c.ini line 1: section [x] must be [nodoN]' });
  t.throws(() => parseHostSections('[nodo1]\nhost=a\nport=1\nport=2\n', options), { message: /config\.ini line 4 \[nodo1\]: "port" is already set on line 3/ });
  t.throws(() => parseHostSections('', options), { message: /no nodes \(expected sections such as \[nodo1\]/ });
});

t.test('configPath() and loadConfigFile(): --config, ./config.ini, the bundled file; exit 2 on a bad one', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'config-ini-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.equal(configPath('x.ini', 'bundled.ini', dir), 'x.ini');
  t.equal(configPath(undefined, 'bundled.ini', dir), 'bundled.ini');
  await writeFile(path.join(dir, 'config.ini'), '[nodo1]\nhost = a\n');
  t.equal(configPath(undefined, 'bundled.ini', dir), path.join(dir, 'config.ini'));
  const parse = (text: string, file: string) => parseHostSections(text, { ...options, file });
  await t.rejects(loadConfigFile(path.join(dir, 'config.ini'), parse), { constructor: CliError, exitCode: 2, message: /has no port =/ });
  await t.rejects(loadConfigFile(path.join(dir, 'missing.ini'), parse), { constructor: CliError, exitCode: 2, message: /cannot read .*missing\.ini: no such file/ });
  await writeFile(path.join(dir, 'ok.ini'), '[nodo1]\nhost = a\nport = 9\n');
  t.same(await loadConfigFile(path.join(dir, 'ok.ini'), parse), [{ name: 'nodo1', host: 'a', port: 9, line: 1 }]);
});
