import t from 'tap';
import { renderSvg } from './plot.ts';

t.test('renderSvg() draws a line per series, a cross per lost probe, and escapes labels', async (t) => {
  const svg = renderSvg(
    [
      { label: 'UDP a<b>', points: [{ t: 0, rtt: 10 }, { t: 1, rtt: 12 }, { t: 2, rtt: undefined }, { t: 3, rtt: 11 }, { t: 4, rtt: 13 }] },
      { label: 'TCP c', points: [{ t: 0, rtt: 1 }] },
    ],
    { title: 'test' },
  );
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.equal(svg.match(/<polyline /g)?.length, 2, 'the loss splits the first series in two lines');
  t.equal(svg.match(/<circle /g)?.length, 1, 'a lone point is a dot');
  t.match(svg, /lost at 2 s/);
  t.match(svg, /UDP a&#60;b&#62;/);
  t.notMatch(svg, /NaN|undefined/);
});

t.test('renderSvg() of series with no replies at all still makes a valid chart', async (t) => {
  const svg = renderSvg([{ label: 'x', points: [{ t: 0, rtt: undefined }] }]);
  t.notMatch(svg, /NaN|Infinity/);
  t.match(svg, /<\/svg>\n$/);
});
