/** Small statistics helpers for the benchmark: percentiles by nearest rank, medians, ratios, spreads. */

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export const median = (values: readonly number[]): number => percentile(values, 50);

export interface Distribution {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function distribution(values: readonly number[]): Distribution {
  return {
    n: values.length,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    max: values.length ? Math.max(...values) : Number.NaN,
  };
}

/** (max − min) / median: how far one run may land from another on this machine. */
export function spread(values: readonly number[]): number {
  const m = median(values);
  return m > 0 ? (Math.max(...values) - Math.min(...values)) / m : 0;
}

export function ratio(value: number, reference: number): string {
  return reference > 0 && Number.isFinite(value) ? `${(value / reference).toFixed(2)}×` : 'n/a';
}

export function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** Rounds every sample to `digits` decimals, to keep the JSON report readable. */
export const rounded = (values: readonly number[], digits = 2): number[] => values.map((v) => Number(v.toFixed(digits)));
