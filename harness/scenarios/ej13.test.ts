/** learnMessageFormat(): ej13's message files in a submission's own name and form. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { learnMessageFormat } from './ej13.ts';

function folder(t: { teardown(fn: () => void): void }, files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ej13-format-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

t.test("learnMessageFormat() reads a submission's mensajes_0.txt with 'DESTINO;texto' lines, comments left out", async (t) => {
  const dir = folder(t, { 'mensajes_0.txt': '# comentario\n1;hola\n', 'mensajes_1.txt': '0;chau\n', 'nodo.py': '' });
  const format = learnMessageFormat([dir]);
  t.equal(format?.file(3), 'mensajes_3.txt');
  t.equal(format?.separator, ';');
});

t.test("learnMessageFormat() reads this project's nodo0.txt with tab-separated lines", async (t) => {
  const format = learnMessageFormat([path.resolve(import.meta.dirname ?? '.', '../../ej13')]);
  t.equal(format?.file(2), 'nodo2.txt');
  t.equal(format?.separator, '\t');
});

t.test('learnMessageFormat() finds nothing without a pair of numbered files', async (t) => {
  t.equal(learnMessageFormat([folder(t, { 'mensajes_0.txt': '1;hola\n' })]), undefined);
  t.equal(learnMessageFormat([folder(t, { 'a0.txt': 'hola\n', 'a1.txt': 'hola\n' })]), undefined);
});
