/**
 * A hand-written SVG chart of distributions for the benchmark report: one panel per measure, each showing
 * the empirical CDF of every series (x = the value, y = the share of samples at or below it), with p50 and
 * p99 (or the panel's own choice of percentiles) named in the legend. A CDF shows the whole distribution —
 * median, tail, bimodality — where a bar of averages would hide it, and it stays readable with 5 samples or 100,000.
 *
 * No dependencies: the output is plain SVG 1.1 text, viewable in any browser and in GitHub's file view.
 */
import { percentile } from './stats.ts';

export interface Series {
  name: string;
  values: readonly number[];
}

export interface Panel {
  title: string;
  /** unit shown on the x axis, e.g. "ms" */
  unit: string;
  series: Series[];
  /** logarithmic x axis (for latencies spanning decades) */
  log?: boolean;
  /** percentiles named in the legend (default p50 and p99) */
  percentiles?: number[];
}

const WIDTH = 860;
const PANEL_HEIGHT = 260;
const MARGIN = { left: 64, right: 24, top: 40, bottom: 58 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
/** plotted points per series at most: a CDF of 100,000 samples does not need 100,000 vertices */
const MAX_POINTS = 400;
/** average advance of a 12 px Helvetica character, to tell whether two legend entries fit on one row */
const LEGEND_CHAR_WIDTH = 6.6;

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Round numbers for axis ticks: 1, 2 or 5 times a power of ten, about `count` of them. */
export function linearTicks(min: number, max: number, count = 6): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** 1, 2, 5 × powers of ten within [min, max] (fewer when the range spans many decades). */
export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  const decades = Math.log10(max / min);
  const mantissas = decades > 4 ? [1] : [1, 2, 5];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of mantissas) {
      const v = m * 10 ** e;
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(Number(v.toPrecision(12)));
    }
  }
  return ticks;
}

export function formatTick(v: number): string {
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (abs >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  if (abs >= 1) return String(Number(v.toPrecision(4)));
  return String(Number(v.toPrecision(2)));
}

function formatValue(v: number, unit: string): string {
  if (!Number.isFinite(v)) return 'n/a';
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${unit}`;
}

/** The CDF as (value, share) steps, thinned to at most MAX_POINTS points. */
export function cdfPoints(values: readonly number[]): [number, number][] {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return [];
  const stride = Math.max(1, Math.ceil(n / MAX_POINTS));
  const points: [number, number][] = [];
  for (let i = 0; i < n; i += stride) points.push([sorted[i]!, (i + 1) / n]);
  if (points.at(-1)![1] !== 1) points.push([sorted[n - 1]!, 1]);
  return points;
}

function panelSvg(panel: Panel, top: number): string {
  const values = panel.series.flatMap((s) => s.values.filter(Number.isFinite));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const out: string[] = [];
  const x0 = MARGIN.left;
  const y0 = top + MARGIN.top;
  out.push(`<text x="${x0}" y="${top + 22}" class="title">${escapeXml(panel.title)}</text>`);
  out.push(`<rect x="${x0}" y="${y0}" width="${plotW}" height="${plotH}" class="frame"/>`);
  if (values.length === 0) {
    out.push(`<text x="${x0 + plotW / 2}" y="${y0 + plotH / 2}" class="note" text-anchor="middle">no samples</text>`);
    return out.join('\n');
  }
  let min = values.reduce((a, b) => Math.min(a, b));
  let max = values.reduce((a, b) => Math.max(a, b));
  const log = panel.log === true && min > 0;
  if (log) {
    min = 10 ** (Math.floor(Math.log10(min) * 4) / 4);
    max = 10 ** (Math.ceil(Math.log10(max) * 4) / 4);
  } else {
    const pad = (max - min) * 0.05 || Math.abs(max) * 0.05 || 1;
    min = Math.max(0, min - pad);
    max = max + pad;
  }
  const sx = (v: number) =>
    x0 + (log ? (Math.log10(v) - Math.log10(min)) / (Math.log10(max) - Math.log10(min)) : (v - min) / (max - min)) * plotW;
  const sy = (share: number) => y0 + plotH - share * plotH;

  // grid and axes
  for (const share of [0, 0.25, 0.5, 0.75, 0.9, 0.99, 1]) {
    const y = sy(share).toFixed(1);
    out.push(`<line x1="${x0}" x2="${x0 + plotW}" y1="${y}" y2="${y}" class="${share === 0.5 || share === 0.99 ? 'grid strong' : 'grid'}"/>`);
    // 100% would print over p99, a pixel or two above it
    if (share === 1) continue;
    out.push(`<text x="${x0 - 6}" y="${(sy(share) + 4).toFixed(1)}" class="tick" text-anchor="end">${share === 0.99 ? 'p99' : share === 0.5 ? 'p50' : `${share * 100}%`}</text>`);
  }
  for (const v of log ? logTicks(min, max) : linearTicks(min, max)) {
    const x = sx(v);
    if (x < x0 - 0.5 || x > x0 + plotW + 0.5) continue;
    out.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${y0}" y2="${y0 + plotH}" class="grid"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${y0 + plotH + 16}" class="tick" text-anchor="middle">${formatTick(v)}</text>`);
  }
  out.push(
    `<text x="${x0 + plotW / 2}" y="${y0 + plotH + 34}" class="axis" text-anchor="middle">${escapeXml(panel.unit)}${log ? ' (log scale)' : ''}</text>`,
  );

  // one step line per series, then its legend entry
  const legend = legendOf(panel);
  panel.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length]!;
    const points = cdfPoints(series.values);
    if (points.length > 0) {
      let d = `M${sx(points[0]![0]).toFixed(1)},${sy(0).toFixed(1)}`;
      let prevShare = 0;
      for (const [v, share] of points) {
        const x = sx(v).toFixed(1);
        d += ` L${x},${sy(prevShare).toFixed(1)} L${x},${sy(share).toFixed(1)}`;
        prevShare = share;
      }
      out.push(`<path d="${d}" stroke="${color}" class="cdf"/>`);
    }
    const ly = y0 + plotH + 48;
    const col = i % legend.columns;
    const row = Math.floor(i / legend.columns);
    const lx = x0 + col * (plotW / legend.columns);
    const label = legend.labels[i]!;
    out.push(
      `<g transform="translate(${lx.toFixed(1)},${(ly + row * 14).toFixed(1)})"><rect x="0" y="-9" width="14" height="4" fill="${color}"/>` +
        `<text x="20" y="-3" class="legend">${escapeXml(label)}</text></g>`,
    );
  });
  return out.join('\n');
}

/** Legend entries, two to a row unless one of them is too long to share its row. */
function legendOf(panel: Panel): { labels: string[]; columns: 1 | 2 } {
  const labels = panel.series.map((series) => {
    if (series.values.length === 0) return `${series.name}: no samples`;
    const named = (panel.percentiles ?? [50, 99]).map((p) => `p${p} ${formatValue(percentile(series.values, p), panel.unit)}`);
    return `${series.name}: ${named.join(', ')} (n=${series.values.length})`;
  });
  const halfWidth = (WIDTH - MARGIN.left - MARGIN.right) / 2 - 24;
  return { labels, columns: labels.some((label) => label.length * LEGEND_CHAR_WIDTH > halfWidth) ? 1 : 2 };
}

/** The whole chart: panels stacked vertically. */
export function distributionChart(panels: Panel[], title: string): string {
  const legendRows = (p: Panel) => Math.max(0, Math.ceil(p.series.length / legendOf(p).columns) - 1) * 14;
  const tops: number[] = [];
  let y = 36;
  for (const p of panels) {
    tops.push(y);
    y += PANEL_HEIGHT + legendRows(p);
  }
  const height = y + 8;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    '<style>',
    '.title{font-size:14px;font-weight:bold;fill:#222}.heading{font-size:16px;font-weight:bold;fill:#111}',
    '.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}.legend{font-size:12px;fill:#222}.note{font-size:12px;fill:#888}',
    '.frame{fill:#fff;stroke:#999;stroke-width:1}.grid{stroke:#e4e4e4;stroke-width:1}.strong{stroke:#c8c8c8}',
    '.cdf{fill:none;stroke-width:2;stroke-linejoin:round}',
    '</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fafafa"/>`,
    `<text x="${MARGIN.left}" y="24" class="heading">${escapeXml(title)}</text>`,
    ...panels.map((p, i) => panelSvg(p, tops[i]!)),
    '</svg>',
    '',
  ].join('\n');
}
