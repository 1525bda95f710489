import path from 'node:path';
import t from 'tap';
import { loadScenarios, runScenarios } from './run.ts';
import { declaresAll, exerciseTarget, loadTarget, ROOT, splitCommand } from './target.ts';

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
  t.same(ej01?.get('tcp-server'), ['tsx', path.join(ROOT, 'ej01/tcp-server.ts')], 'the script, absolute');
  t.same(ej01?.get('tcp-server-iterative'), ['tsx', path.join(ROOT, 'ej01/tcp-server.ts'), '--iterative']);
  t.same([...(ej01?.keys() ?? [])].sort(), ['tcp-client', 'tcp-server', 'tcp-server-iterative', 'udp-client', 'udp-server']);
});

t.test('loadTarget deno: the same scripts under deno run -A', async (t) => {
  const target = loadTarget('deno');
  t.equal(target.cwd, ROOT);
  t.same(target.roles.get('ej01')?.get('udp-client'), ['deno', 'run', '-A', path.join(ROOT, 'ej01/udp-client.ts')]);
  t.same([...target.roles.keys()].filter((e) => !loadTarget('node').roles.has(e)), [], 'every exercise under Node is also under Deno');
});

t.test('loadTarget python: the assignment file names, run inside --submission', async (t) => {
  const submission = path.join(ROOT, 'harness', 'fixtures', 'python');
  const target = loadTarget('python', submission);
  t.equal(target.cwd, submission, '{submission} becomes the folder, absolute');
  t.same(target.roles.get('ej01')?.get('tcp-server'), ['python3', path.join(submission, 'server_tcp_echo.py')]);
  t.same(target.roles.get('ej01')?.get('udp-client'), ['python3', path.join(submission, 'client_udp_echo.py')]);
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

t.test('a role word naming a file in the working folder is made absolute, so the script runs from any folder', async (t) => {
  const dir = t.testdir({
    'mine.ini': '[target]\ncwd = {submission}\n[ej03]\nwget = python3 -u ejer3.py sub/x.py --out nofile.py run\n',
    entrega: { 'ejer3.py': 'print(1)\n', sub: { 'x.py': '' }, run: {} },
  });
  const submission = path.join(dir, 'entrega');
  const target = loadTarget(path.join(dir, 'mine.ini'), submission);
  t.same(target.roles.get('ej03')?.get('wget'), ['python3', '-u', path.join(submission, 'ejer3.py'), path.join(submission, 'sub', 'x.py'), '--out', 'nofile.py', 'run'], 'files only: not a folder, an option or a missing file');
});

t.test('a whole practical: each exercise runs in its folder, found by common names or mapped by the manifest', async (t) => {
  const sections = ['01', '02', '03', '04', '05', '06', '07', '08', '10'].map((n) => `[ej${n}]\nx = python3 e${n}.py\n`).join('');
  const dir = t.testdir({
    'mine.ini': `[target]\ncwd = {submission}\n${sections}[ej07]\ncwd = otros/siete\n`,
    practica: {
      Ejercicio_1: { 'e01.py': '' },
      'ejercicio 02': {},
      EJ3: {},
      'Punto 4': {},
      'Ej-5': {},
      TP2: { Ejercicio_6: { 'e06.py': '' } },
      otros: { siete: {} },
      Ejercicio10: {},
      'notas.txt': '',
    },
  });
  const practical = path.join(dir, 'practica');
  const target = loadTarget(path.join(dir, 'mine.ini'), practical);
  const cwd = (exercise: string) => exerciseTarget(target, exercise).cwd;
  t.equal(cwd('ej01'), path.join(practical, 'Ejercicio_1'));
  t.equal(cwd('ej02'), path.join(practical, 'ejercicio 02'), 'spaces and a leading zero');
  t.equal(cwd('ej03'), path.join(practical, 'EJ3'), 'any case');
  t.equal(cwd('ej04'), path.join(practical, 'Punto 4'));
  t.equal(cwd('ej05'), path.join(practical, 'Ej-5'), 'a hyphen');
  t.equal(cwd('ej06'), path.join(practical, 'TP2', 'Ejercicio_6'), 'one level down');
  t.equal(cwd('ej07'), path.join(practical, 'otros', 'siete'), '[ej07] cwd, relative to the submission');
  t.equal(cwd('ej10'), path.join(practical, 'Ejercicio10'), 'not taken for ej01');
  t.same(target.roles.get('ej01')?.get('x'), ['python3', path.join(practical, 'Ejercicio_1', 'e01.py')], 'a script is made absolute in its own folder');
  t.same(target.roles.get('ej06')?.get('x'), ['python3', path.join(practical, 'TP2', 'Ejercicio_6', 'e06.py')]);
  t.match(target.absent.get('ej08') ?? '', /^no folder for ej08 in \S+ \(looked for Ejercicio_8, Ejercicio8, ej08, ej8, Punto 8 …, also one level down; or map it: \[ej08\] cwd = FOLDER\)$/, 'an exercise without a folder says where it looked');
  t.equal(target.absent.get('ej01'), undefined);
});

t.test('a single-exercise folder (no exercise folders in it) is every exercise\'s working folder, as before', async (t) => {
  const dir = t.testdir({ entrega: { 'server_tcp_echo.py': '', ejemplos: {} } });
  const submission = path.join(dir, 'entrega');
  const target = loadTarget('python', submission);
  t.equal(exerciseTarget(target, 'ej01').cwd, submission);
  t.equal(exerciseTarget(target, 'ej05').cwd, submission);
  t.equal(target.absent.size, 0, 'no exercise is absent');
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
