import {execFileSync} from 'node:child_process'
import {randomBytes, randomUUID} from 'node:crypto'
import {existsSync} from 'node:fs'
import {cpus} from 'node:os'
import {join, resolve} from 'node:path'

/**
 * Settings of one suite run, from flags (`--quick`, `--rounds N` (or `--runs N`), `--only a,b`,
 * `--events N`, `--live-ms N`) and env (`BENCH_QUICK=1`, `BENCH_ROUNDS`, `BENCH_ONLY`).
 */
export interface Settings {
  quick: boolean
  /** Rounds of every comparison: each case runs once a round, interleaved (A, B, C, A, B, C, …). */
  runs: number
  /** Events per throughput measurement. */
  events: number
  /** In-flight window of the concurrent single-publish rows. */
  window: number
  /** Duration of each fixed-rate latency run, ms. */
  liveMs: number
  /** Pairs of spawns in the CLI row. */
  cliRuns: number
  /** Rows to run (their names); all when empty. */
  only: string[]
  /** Default payload size, bytes of JSON. */
  payloadBytes: number
  /**
   * Another raptor checkout with a built dist/ (`--vs DIR`): its bus runs as one more case beside
   * this tree's in the publish, consume and live rows (A/B of two builds in the same run).
   */
  vs?: string
}

export function settings(argv = process.argv.slice(2)): Settings {
  const flag = (...names: string[]) => {
    for (const name of names) {
      const i = argv.indexOf(`--${name}`)
      if (i >= 0) return argv[i + 1]
      const eq = argv.find((a) => a.startsWith(`--${name}=`))
      if (eq) return eq.slice(name.length + 3)
    }
    return undefined
  }
  const quick = argv.includes('--quick') || process.env.BENCH_QUICK === '1'
  const runs = Number(
    flag('rounds', 'runs') ?? process.env.BENCH_ROUNDS ?? process.env.BENCH_RUNS ?? (quick ? 3 : 5),
  )
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error('--rounds takes a whole number ≥ 1, e.g. --rounds 5')
  const events = Number(flag('events') ?? (quick ? 5000 : 20_000))
  const liveMs = Number(flag('live-ms') ?? (quick ? 2000 : 5000))
  if (!Number.isInteger(events) || events < 1000 || events % 1000 !== 0)
    throw new Error('--events takes a multiple of 1000, e.g. --events 20000')
  if (!Number.isInteger(liveMs) || liveMs < 500)
    throw new Error('--live-ms takes whole ms ≥ 500, e.g. --live-ms 5000')
  const vs = flag('vs') ?? process.env.BENCH_VS
  if (vs !== undefined && !existsSync(join(resolve(vs), 'dist/bus/index.js')))
    throw new Error(
      `--vs takes a raptor checkout with a built dist/ (npm run build there): no ${join(resolve(vs), 'dist/bus/index.js')}`,
    )
  return {
    vs: vs === undefined ? undefined : resolve(vs),
    quick,
    runs,
    events,
    window: 100,
    liveMs,
    cliRuns: quick ? 6 : 20,
    only: (flag('only') ?? process.env.BENCH_ONLY ?? '').split(',').filter(Boolean),
    payloadBytes: 500,
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A short random tag for names (prefixes, channels, streams) unique to one measurement. */
export const tag = () => randomBytes(4).toString('hex')

export function median(values: number[]): number {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (xs.length === 0) return NaN
  const mid = Math.floor(xs.length / 2)
  return xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2
}

/** Median and range of a list of figures (NaN when there are none). */
export interface Stat {
  median: number
  min: number
  max: number
  n: number
}

export function stat(values: number[]): Stat {
  const xs = values.filter((v) => Number.isFinite(v))
  return {
    median: median(xs),
    min: xs.length ? Math.min(...xs) : NaN,
    max: xs.length ? Math.max(...xs) : NaN,
    n: xs.length,
  }
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

/**
 * A JSON object payload of about `bytes` bytes (a few typed fields and a pad), carrying a send
 * timestamp (µs, monotonic clock). Every row builds raptor's and the baselines' payloads with this
 * one builder: a fresh object per event.
 */
export function payloadMaker(
  bytes: number,
  now: () => number,
): () => {ts: number; user: string; seq: number; ok: boolean; pad: string} {
  let seq = 0
  const overhead = JSON.stringify({ts: now(), user: 'u-000000', seq: 1_000_000, ok: true, pad: ''}).length
  const pad = 'x'.repeat(Math.max(0, bytes - overhead))
  return () => ({ts: now(), user: `u-${String(seq % 1_000_000).padStart(6, '0')}`, seq: seq++, ok: true, pad})
}

/**
 * The record a hand-written publisher would store for an event: the same attributes raptor's
 * envelope carries (a fresh `evt-<uuid>` id and ISO time per event, type, source, channel, the
 * payload), built as a plain object and `JSON.stringify`-ed once. The raw baselines store this, so
 * that both sides store the same bytes per event.
 */
export function rawEnvelope(channel: string, type: string, data: object): string {
  return JSON.stringify({
    specversion: '1.0',
    id: `evt-${randomUUID()}`,
    type,
    source: 'bench',
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    channel,
    priority: 'normal',
    data,
  })
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

/** A median with its range: `41,488 (37,231–45,947)`. */
export function fmtStat(s: Stat, digits = 0): string {
  if (!Number.isFinite(s.median)) return '–'
  if (s.n < 2) return fmt(s.median, digits)
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`
}

/** A ratio with its range: `1.03× (0.95–1.10)`. */
export function fmtRatio(s: Stat): string {
  if (!Number.isFinite(s.median)) return '–'
  if (s.n < 2) return `${s.median.toFixed(2)}×`
  return `${s.median.toFixed(2)}× (${s.min.toFixed(2)}–${s.max.toFixed(2)})`
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
