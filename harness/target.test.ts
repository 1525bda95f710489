import path from 'node:path';
import t from 'tap';
import { loadScenarios, runScenarios } from './run.ts';
import { declaresAll, loadTarget, ROOT, splitCommand } from './target.ts';

t.test('splitCommand splits on runs of white space', async (t) => {
  t.same(splitCommand('python3 server_tcp_echo.py'), ['python3', 'server_tcp_echo.py']);
  t.same(splitCommand('  deno  run\t-A   ej01/tcp-server.ts  '), ['deno', 'run', '-A', 'ej01/tcp-server.ts']);
  t.same(splitCommand(''), []);
  t.same(splitCommand('   '), []);
});

t.test('splitCommand keeps quoted spaces and drops the quotes', async (t) => {
  t.same(splitCommand("python3 '/home/ana/mi entrega/server.py'"), ['python3', '/home/ana/mi entrega/server.py']);
  t.same(splitCommand('node "a b" c'), ['node', 'a b', 'c']);
  t.same(splitCommand(`say "it's" 'a "quote"'`), ['say', "it's", 'a "quote"'], 'each quote protects the other kind');
  t.same(splitCommand('a"b c"d'), ['ab cd'], 'quotes inside a word join it');
  t.same(splitCommand(`x '' ""`), ['x', '', ''], 'empty quotes are an empty word');
});

t.test('splitCommand rejects an unclosed quote', async (t) => {
  t.throws(() => splitCommand(`python3 'server.py`), new SyntaxError(`Cannot split command: unclosed ' in python3 'server.py`));
  t.throws(() => splitCommand('a "b'), SyntaxError);
});

t.test('loadTarget node: this project under tsx, run from the project folder', async (t) => {
  const target = loadTarget('node');
  t.equal(target.name, 'node');
  t.equal(target.file, path.join(ROOT, 'harness', 'targets', 'node.ini'));
  t.equal(target.cwd, ROOT, '{root} is this project');
  t.match(target.description, /Node/);
  const ej01 = target.roles.get('ej01');
  t.same(ej01?.get('tcp-server'), ['tsx', 'ej01/tcp-server.ts']);
  t.same(ej01?.get('tcp-server-iterative'), ['tsx', 'ej01/tcp-server.ts', '--iterative']);
  t.same([...(ej01?.keys() ?? [])].sort(), ['tcp-client', 'tcp-server', 'tcp-server-iterative', 'udp-client', 'udp-server']);
});

t.test('loadTarget deno: the same scripts under deno run -A', async (t) => {
  const target = loadTarget('deno');
  t.equal(target.cwd, ROOT);
  t.same(target.roles.get('ej01')?.get('udp-client'), ['deno', 'run', '-A', 'ej01/udp-client.ts']);
  t.same([...target.roles.keys()].filter((e) => !loadTarget('node').roles.has(e)), [], 'every exercise under Node is also under Deno');
});

t.test('loadTarget python: the assignment file names, run inside --submission', async (t) => {
  const submission = path.join(ROOT, 'harness', 'fixtures', 'python');
  const target = loadTarget('python', submission);
  t.equal(target.cwd, submission, '{submission} becomes the folder, absolute');
  t.same(target.roles.get('ej01')?.get('tcp-server'), ['python3', 'server_tcp_echo.py']);
  t.same(target.roles.get('ej01')?.get('udp-client'), ['python3', 'client_udp_echo.py']);
  const expected = Array.from({ length: 15 }, (_, i) => `ej${String(i + 1).padStart(2, '0')}`);
  t.same([...target.roles.keys()].sort(), expected, 'a section for each of the fifteen exercises');
  t.equal(loadTarget('python', path.relative(process.cwd(), submission)).cwd, submission, 'a relative folder is made absolute');
});

t.test('loadTarget python without --submission says which option is missing', async (t) => {
  t.throws(() => loadTarget('python'), new Error("Target 'python' grades a submission: give its folder with --submission DIR"));
});

t.test('loadTarget with a submission folder that does not exist says so', async (t) => {
  const missing = path.join(ROOT, 'no-such-submission');
  t.throws(() => loadTarget('python', missing), new Error(`Cannot grade: no folder ${missing}`));
});

t.test('loadTarget of a missing manifest names it and the choices', async (t) => {
  t.throws(
    () => loadTarget('ruby'),
    new Error(`Cannot load target 'ruby': no file ${path.join(ROOT, 'harness', 'targets', 'ruby.ini')} (expected node, deno, python or a path to an .ini manifest)`),
  );
  const file = path.join(ROOT, 'nowhere', 'mine.ini');
  t.throws(() => loadTarget(file), { message: `Cannot load target '${file}': no file ${file} (expected node, deno, python or a path to an .ini manifest)` });
});

t.test('loadTarget of a manifest file substitutes {root} and {submission} in cwd and commands', async (t) => {
  const dir = t.testdir({
    'mine.ini': [
      '[target]',
      'description = my own',
      'cwd = {submission}/build',
      '[ej01]',
      "tcp-server = java -cp '{submission}/build dir' Echo --root {root}",
      '[ej07]',
      'client = python3 {submission}/cliente.py',
      '',
    ].join('\n'),
    'entrega con espacios': { build: {} },
  });
  const submission = path.join(dir, 'entrega con espacios');
  const target = loadTarget(path.join(dir, 'mine.ini'), submission);
  t.equal(target.name, 'mine');
  t.equal(target.description, 'my own');
  t.equal(target.cwd, `${submission}/build`);
  t.same(target.roles.get('ej01')?.get('tcp-server'), ['java', '-cp', `${submission}/build dir`, 'Echo', '--root', ROOT]);
  t.same(target.roles.get('ej07')?.get('client'), ['python3', `${submission}/cliente.py`], 'a folder with spaces stays one word');
});

t.test('loadTarget rejects a section that is not an exercise', async (t) => {
  const dir = t.testdir({ 'bad.ini': '[ej01]\ntcp-server = tsx ej01/tcp-server.ts\n[echo]\nserver = x\n' });
  const file = path.join(dir, 'bad.ini');
  t.throws(() => loadTarget(file), new Error(`Target ${file}: section [echo] is not an exercise (ej01 … ej15)`));
});

t.test('loadTarget rejects a role without a command', async (t) => {
  const dir = t.testdir({ 'empty.ini': '[ej01]\ntcp-server =\n' });
  const file = path.join(dir, 'empty.ini');
  t.throws(() => loadTarget(file), new Error(`Target ${file}: [ej01] tcp-server must be a command`));
});

t.test('a manifest without the exercise section: its requirements are skipped, naming the missing roles', async (t) => {
  const dir = t.testdir({ 'partial.ini': '[target]\ndescription = only ej02\n[ej02]\nserver = python3 server_ntp.py\n' });
  const target = loadTarget(path.join(dir, 'partial.ini'));
  t.equal(target.roles.get('ej01'), undefined, 'no [ej01] section, no roles');
  const verdicts = await runScenarios(await loadScenarios(['ej01']), { target, only: ['tcp-text', 'udp-text'] });
  t.same(
    verdicts.map((v) => [v.id, v.status, v.reason]),
    [
      ['tcp-text', 'skip', "target 'partial' has no role tcp-server, tcp-client in [ej01]"],
      ['udp-text', 'skip', "target 'partial' has no role udp-server, udp-client in [ej01]"],
    ],
  );
});

t.test('loadTarget reads features and declarations: [target] for all, [ejNN] for one, [ejNN.declare] for open inputs', async (t) => {
  const dir = t.testdir({
    'mine.ini': [
      '[target]',
      'features = --json',
      '[ej06]',
      'server = python3 ejer6.py',
      'features = --root, --tz',
      '[ej10]',
      'server = python3 server_utc.py',
      '[ej10.declare]',
      'transport = tcp',
      'get = --file {submission}/x',
      '',
    ].join('\n'),
  });
  const target = loadTarget(path.join(dir, 'mine.ini'), dir);
  t.same([...(target.features.get('ej06') ?? [])].sort(), ['--json', '--root', '--tz']);
  t.same([...(target.features.get('ej10') ?? [])], ['--json']);
  t.same([...(target.roles.get('ej06')?.keys() ?? [])], ['server'], 'features is not a role');
  t.same([...(target.roles.get('ej10')?.keys() ?? [])], ['server'], 'declare is not a role');
  t.equal(target.declared.get('ej10')?.get('transport'), 'tcp');
  t.equal(target.declared.get('ej10')?.get('get'), `--file ${dir}/x`, '{submission} is filled in declarations too');
  t.ok(declaresAll(target, 'ej06', ['--root', '--json']));
  t.notOk(declaresAll(target, 'ej10', ['--root']));
  t.ok(declaresAll(loadTarget('node'), 'ej06', ['--root', 'pdu:project']), 'this project declares everything (*)');
  t.notOk(declaresAll(loadTarget('python', dir), 'ej06', ['--root']), 'a submission declares nothing unless its manifest says so');
});
