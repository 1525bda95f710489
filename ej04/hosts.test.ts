import t from 'tap';
import { parseHostEntry, parseHostList } from './hosts.ts';

t.test('parseHostList() reads ;-separated hosts over several lines, with and without ports', async (t) => {
  const list = parseHostList('\uFEFF195.46.39.40; 208.67.222.222:53 ;\n# a comment\nwww.google.com;[::1]:7007;::1\n', { source: 'IPsUDP.txt', defaultPort: 7 });
  t.same(
    list.map((h) => [h.host, h.port]),
    [['195.46.39.40', 7], ['208.67.222.222', 53], ['www.google.com', 7], ['::1', 7007], ['::1', 7]],
  );
  t.equal(list[1]?.label, '208.67.222.222:53', 'the label is the entry as written');
});

t.test('parseHostList() names the file and line of a bad entry', async (t) => {
  t.throws(() => parseHostList('127.0.0.1\n127.0.0.1;bad host\n', { source: 'IPsUDP.txt', defaultPort: 7 }), {
    name: 'HostListError',
    line: 2,
    message: "IPsUDP.txt, line 2: expected host or host:port (port 1-65535), got 'bad host'",
  });
  t.throws(() => parseHostList('a:99999', { source: 'x', defaultPort: 7 }), /line 1: .*got 'a:99999'/);
  t.throws(() => parseHostList('300.1.2.3', { source: 'x', defaultPort: 7 }), /got '300.1.2.3'/);
});

t.test('parseHostEntry() refuses port 0 and junk', async (t) => {
  t.equal(parseHostEntry('h:0', 7), undefined);
  t.equal(parseHostEntry('h:', 7), undefined);
  t.equal(parseHostEntry('[nope]:7', 7), undefined);
  t.same(parseHostEntry('localhost', 80), { label: 'localhost', host: 'localhost', port: 80 });
});

t.test('parseHostList() of an empty file is an empty list', async (t) => {
  t.same(parseHostList(' ; ;\n\n', { source: 'x', defaultPort: 7 }), []);
});
