/**
 * A small, dependency-free SVG chart of round-trip delay over time: one line
 * per host and protocol, a cross at the top for every lost probe (its delay
 * is undefined, so it has no height of its own).
 *
 * @module
 */

/** One series of the chart. */
export interface PlotSeries {
  label: string;
  /** Probe send time (s since the start) and its RTT in ms, or undefined when lost. */
  points: readonly { t: number; rtt: number | undefined }[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A "nice" step for about `count` ticks over `span`. */
function niceStep(span: number, count: number): number {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / power;
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power;
}

/** Renders the series as an SVG document (a string). */
export function renderSvg(series: readonly PlotSeries[], { title = 'RTT', width = 800, height = 420 } = {}): string {
  const margin = { left: 60, right: 20, top: 40, bottom: 50 + 18 * Math.ceil(series.length / 2) };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const allT = series.flatMap((s) => s.points.map((p) => p.t));
  const allRtt = series.flatMap((s) => s.points.flatMap((p) => (p.rtt === undefined ? [] : [p.rtt])));
  const tMax = Math.max(1e-3, ...allT);
  const yMaxRaw = Math.max(1e-3, ...allRtt) * 1.1;
  const yStep = niceStep(yMaxRaw, 5);
  const yMax = Math.ceil(yMaxRaw / yStep) * yStep;
  const tStep = niceStep(tMax, 8);
  const x = (t: number) => margin.left + (t / tMax) * plotW;
  const y = (rtt: number) => margin.top + plotH - (rtt / yMax) * plotH;
  const fmt = (n: number) => Number(n.toFixed(6)).toString();

  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`);
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    parts.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`);
  }
  for (let t = 0; t <= tMax + 1e-9; t += tStep) {
    parts.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${margin.top + plotH}" y2="${margin.top + plotH + 4}" stroke="#333"/>`);
    parts.push(`<text x="${x(t).toFixed(1)}" y="${margin.top + plotH + 18}" text-anchor="middle">${fmt(t)}</text>`);
  }
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${margin.left + plotW / 2}" y="${margin.top + plotH + 36}" text-anchor="middle">time since start (s)</text>`);
  parts.push(`<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">RTT (ms)</text>`);

  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] as string;
    // A lost probe breaks the line: its delay is undefined, not zero.
    const runs: string[][] = [[]];
    for (const p of s.points) {
      if (p.rtt === undefined) {
        runs.push([]);
        parts.push(`<path d="M${(x(p.t) - 3).toFixed(1)} ${margin.top + 3}l6 6m0 -6l-6 6" stroke="${color}" fill="none"><title>${escapeXml(s.label)} lost at ${fmt(p.t)} s</title></path>`);
      } else {
        (runs.at(-1) as string[]).push(`${x(p.t).toFixed(1)},${y(p.rtt).toFixed(1)}`);
      }
    }
    for (const run of runs) {
      if (run.length === 1) parts.push(`<circle cx="${run[0]?.split(',')[0]}" cy="${run[0]?.split(',')[1]}" r="2" fill="${color}"/>`);
      if (run.length > 1) parts.push(`<polyline points="${run.join(' ')}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    }
    const lx = margin.left + (i % 2) * (plotW / 2);
    const ly = margin.top + plotH + 54 + 18 * Math.floor(i / 2);
    parts.push(`<line x1="${lx}" x2="${lx + 20}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="3"/>`);
    parts.push(`<text x="${lx + 26}" y="${ly}">${escapeXml(s.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
