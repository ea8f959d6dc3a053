import {execFileSync} from 'node:child_process'
import {cpus} from 'node:os'

/** Settings of one suite run, from flags (`--quick`, `--runs N`, `--only a,b`) and env (`BENCH_QUICK`, `BENCH_RUNS`). */
export interface Settings {
  quick: boolean
  /** Each figure is the median of this many runs. */
  runs: number
  /** Events per throughput run. */
  events: number
  /** In-flight window of the throughput rows. */
  window: number
  /** Duration of each fixed-rate latency run, ms. */
  liveMs: number
  /** Spawns per CLI command. */
  cliRuns: number
  /** Sections to run (publish, live, durable, cli); all when empty. */
  only: string[]
  payloadBytes: number
}

export function settings(argv = process.argv.slice(2)): Settings {
  const flag = (name: string) => {
    const i = argv.indexOf(`--${name}`)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const quick = argv.includes('--quick') || process.env.BENCH_QUICK === '1'
  const runs = Number(flag('runs') ?? process.env.BENCH_RUNS ?? (quick ? 3 : 5))
  return {
    quick,
    runs,
    events: quick ? 5000 : 20_000,
    window: 100,
    liveMs: quick ? 2000 : 10_000,
    cliRuns: quick ? 10 : 30,
    only: (flag('only') ?? process.env.BENCH_ONLY ?? '').split(',').filter(Boolean),
    payloadBytes: 500,
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export function median(values: number[]): number {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (xs.length === 0) return NaN
  const mid = Math.floor(xs.length / 2)
  return xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2
}

/** Runs `op(i)` for i in [0, total) with at most `window` in flight; returns ops per second. */
export async function windowed(
  total: number,
  window: number,
  op: (i: number) => Promise<unknown>,
): Promise<number> {
  let next = 0
  const started = performance.now()
  const worker = async () => {
    while (next < total) await op(next++)
  }
  await Promise.all(Array.from({length: Math.min(window, total)}, worker))
  return total / ((performance.now() - started) / 1000)
}

/** A JSON object payload of about `bytes` bytes, carrying a send timestamp (µs, monotonic clock). */
export function payloadMaker(bytes: number, now: () => number): () => {ts: number; pad: string} {
  const overhead = JSON.stringify({ts: now(), pad: ''}).length
  const pad = 'x'.repeat(Math.max(0, bytes - overhead))
  return () => ({ts: now(), pad})
}

export interface Machine {
  cores: number
  cpu: string
  node: string
  redis: string
  os: string
}

export function machine(redisVersion: string): Machine {
  let os = process.platform
  try {
    os = execFileSync('uname', ['-sr'], {encoding: 'utf8'}).trim() as NodeJS.Platform
  } catch {
    // keep the platform name
  }
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    redis: redisVersion,
    os,
  }
}

/** Formats a number for a table: thousands separated, `digits` decimals. */
export function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '–'
  return value.toLocaleString('en-US', {minimumFractionDigits: digits, maximumFractionDigits: digits})
}

export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '–'
  return `${(a / b).toFixed(2)}×`
}

/** A Markdown table. */
export function markdownTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => (c ?? '').padEnd(widths[i])).join(' | ')} |`
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}

export function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`)
}
