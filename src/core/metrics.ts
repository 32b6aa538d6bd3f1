/**
 * Metrics in the Prometheus text exposition format (version 0.0.4): counters, gauges and histograms with
 * labels, rendered on each scrape.
 *
 * Hand-written rather than prom-client: the daemons need these three types and the text format, nothing
 * of prom-client's default process collectors, summaries or aggregation across workers, and it would be
 * the agent's largest dependency. The format rules kept here: metric and label names are checked once, at
 * definition; HELP text escapes backslash and newline, label values also the double quote; histogram
 * buckets are cumulative, end with `le="+Inf"` and come with `_sum` and `_count`.
 */

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

type Labels<L extends string> = Readonly<Record<L, string>>;
/** sets a gauge's values at scrape time */
export type Collector<L extends string> = (gauge: Gauge<L>) => void | Promise<void>;

const escapeHelp = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (value: string): string => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Pure: a sample value as the format writes it (+Inf, -Inf, NaN spelled out). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function labelText(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts = names.map((name, i) => `${name}="${escapeLabel(values[i]!)}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(',')}}` : '';
}

abstract class Metric<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(name: string, help: string, labelNames: readonly L[]) {
    if (!METRIC_NAME.test(name)) throw new Error(`metric name "${name}" is not a valid Prometheus name`);
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith('__') || label === 'le') throw new Error(`label name "${label}" of ${name} is not allowed`);
    }
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /** the key of one labelled series: the values in the declared order */
  protected key(labels: Labels<L> | undefined): string[] {
    return this.labelNames.map((name) => {
      const value = labels?.[name];
      if (value === undefined) throw new Error(`${this.name}: label "${name}" has no value`);
      return value;
    });
  }

  abstract samples(): string[];

  render(): string {
    return [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`, ...this.samples()].join('\n');
  }
}

/** Values per label set; keys are the label values joined with a separator that cannot occur in them unescaped. */
class Series<T> {
  readonly #values = new Map<string, { labels: string[]; value: T }>();
  get(labels: string[], make: () => T): T {
    const key = JSON.stringify(labels);
    let entry = this.#values.get(key);
    if (!entry) this.#values.set(key, (entry = { labels, value: make() }));
    return entry.value;
  }
  entries(): Iterable<{ labels: string[]; value: T }> {
    return this.#values.values();
  }
}

export class Counter<L extends string = never> extends Metric<L> {
  readonly type = 'counter';
  readonly #series = new Series<{ n: number }>();

  inc(...args: [L] extends [never] ? [amount?: number] : [labels: Labels<L>, amount?: number]): void {
    const [labels, amount] = (this.labelNames.length ? args : [undefined, args[0]]) as [Labels<L> | undefined, number | undefined];
    const by = amount ?? 1;
    if (!(by >= 0)) throw new Error(`${this.name}: a counter only goes up (got ${by})`);
    this.#series.get(this.key(labels), () => ({ n: 0 })).n += by;
  }

  samples(): string[] {
    return [...this.#series.entries()].map(({ labels, value }) => `${this.name}${labelText(this.labelNames, labels)} ${formatValue(value.n)}`);
  }
}

export class Gauge<L extends string = never> extends Metric<L> {
  readonly type = 'gauge';
  readonly #series = new Series<{ n: number }>();
  /** called at each scrape to set the current values (for figures that are read, not counted) */
  readonly #collect: Collector<L> | undefined;

  constructor(name: string, help: string, labelNames: readonly L[], collect?: Collector<L>) {
    super(name, help, labelNames);
    this.#collect = collect;
  }

  /** Runs the collector, if any; a failing one leaves the last values (the scrape still answers). */
  async collect(): Promise<void> {
    try {
      await this.#collect?.(this);
    } catch {
      // the figure is stale rather than the whole scrape failing
    }
  }

  set(...args: [L] extends [never] ? [value: number] : [labels: Labels<L>, value: number]): void {
    const [labels, value] = (this.labelNames.length ? args : [undefined, args[0]]) as [Labels<L> | undefined, number];
    this.#series.get(this.key(labels), () => ({ n: 0 })).n = value;
  }

  samples(): string[] {
    return [...this.#series.entries()].map(({ labels, value }) => `${this.name}${labelText(this.labelNames, labels)} ${formatValue(value.n)}`);
  }
}

export class Histogram<L extends string = never> extends Metric<L> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  readonly #series = new Series<{ counts: number[]; sum: number; count: number }>();

  constructor(name: string, help: string, labelNames: readonly L[], buckets: readonly number[]) {
    super(name, help, labelNames);
    if (buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw new Error(`${name}: buckets must be finite and increasing`);
    }
    this.buckets = buckets;
  }

  observe(...args: [L] extends [never] ? [value: number] : [labels: Labels<L>, value: number]): void {
    const [labels, value] = (this.labelNames.length ? args : [undefined, args[0]]) as [Labels<L> | undefined, number];
    const series = this.#series.get(this.key(labels), () => ({ counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    // counts are per bucket here and made cumulative when rendered
    const at = this.buckets.findIndex((bound) => value <= bound);
    if (at >= 0) series.counts[at]!++;
    series.sum += value;
    series.count++;
  }

  samples(): string[] {
    const lines: string[] = [];
    for (const { labels, value } of this.#series.entries()) {
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += value.counts[i]!;
        lines.push(`${this.name}_bucket${labelText(this.labelNames, labels, `le="${formatValue(bound)}"`)} ${cumulative}`);
      });
      lines.push(`${this.name}_bucket${labelText(this.labelNames, labels, 'le="+Inf"')} ${value.count}`);
      lines.push(`${this.name}_sum${labelText(this.labelNames, labels)} ${formatValue(value.sum)}`);
      lines.push(`${this.name}_count${labelText(this.labelNames, labels)} ${value.count}`);
    }
    return lines;
  }
}

/** Seconds: from 5 ms to 30 s, for reconcile passes and requests. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/** The metrics of one daemon, rendered together. */
export class Registry {
  readonly #metrics = new Map<string, Metric<string>>();

  #add<M extends Metric<string>>(metric: M): M {
    if (this.#metrics.has(metric.name)) throw new Error(`metric ${metric.name} is defined twice`);
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return this.#add(new Counter<L>(name, help, labelNames));
  }

  gauge<L extends string = never>(name: string, help: string, labelNames: readonly L[] = [], collect?: Collector<L>): Gauge<L> {
    return this.#add(new Gauge<L>(name, help, labelNames, collect));
  }

  histogram<L extends string = never>(name: string, help: string, labelNames: readonly L[] = [], buckets: readonly number[] = DURATION_BUCKETS): Histogram<L> {
    return this.#add(new Histogram<L>(name, help, labelNames, buckets));
  }

  /** The exposition text: every metric, each with HELP and TYPE, ending with a newline (gauges collected first). */
  async render(): Promise<string> {
    await Promise.all([...this.#metrics.values()].map((metric) => (metric instanceof Gauge ? metric.collect() : undefined)));
    return `${[...this.#metrics.values()].map((metric) => metric.render()).join('\n')}\n`;
  }
}
