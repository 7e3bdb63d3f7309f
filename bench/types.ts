// A benchmark section: each room contributes one (bench/<room>.ts exporting `run`),
// bench/run.ts runs them in one process/run, prints the tables and writes
// bench/results/<section>.json. Figures are compared side by side with the peers
// measured in the same run, and reported as ratios.
export type Cell = string | number | null;

export interface BenchSection {
  /** Short id, also the results file name: bench/results/<name>.json */
  name: string;
  title: string;
  /** One object per table row; the keys of the first row are the columns. */
  rows: Array<Record<string, Cell>>;
  /** Targets and whether they were met, caps applied to peers, machine notes. */
  notes: string[];
}

export interface BenchOptions {
  /** Smaller sizes and shorter runs (used by `npm run bench -- --quick`). */
  quick: boolean;
}

export type BenchFn = (opts: BenchOptions) => Promise<BenchSection | BenchSection[]>;
