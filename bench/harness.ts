/**
 * The harness every bench row uses: the row registration type, interleaved rounds, and the per-event
 * profile (client CPU, Redis server CPU, Redis memory) of one measurement.
 */
import {Redis} from 'ioredis'

import {progress, stat, type Settings, type Stat} from './lib.js'

/** What a row gets to run. */
export interface RowContext {
  /** The bench's own redis-server (no persistence), e.g. `redis://127.0.0.1:PORT/0`. */
  url: string
  port: number
  s: Settings
  /** An admin connection to that server (INFO, FLUSHALL between cases). */
  admin: Redis
}

/** A target line of the report's summary: what, the limit, the measured figure, met or not. */
export interface Target {
  what: string
  limit: string
  measured: string
  met: boolean | undefined
}

/** What a row returns: its Markdown (tables and notes, no heading) and its target lines. */
export interface RowResult {
  markdown: string
  targets?: Target[]
}

/**
 * One row of `npm run bench`. Register it with one line in `ROWS` of bench/run.ts; `--only NAME`
 * runs it alone.
 */
export interface BenchRow {
  /** Short name for `--only` (lowercase, no spaces). */
  name: string
  /** Section heading. */
  title: string
  run(ctx: RowContext): Promise<RowResult>
}

/** A target line: `value` against `limit`, higher or lower is better. */
export function target(what: string, value: number, limit: number, higher: boolean): Target {
  const ok = Number.isFinite(value)
  return {
    what,
    limit: `${higher ? '≥' : '≤'} ${limit}×`,
    measured: ok ? `${value.toFixed(2)}×` : '–',
    met: ok ? (higher ? value >= limit : value <= limit) : undefined,
  }
}

/** The server's CPU seconds (user + sys) and used memory, from INFO. */
export async function serverUsage(admin: Redis): Promise<{cpuUs: number; memBytes: number}> {
  const info = await admin.info()
  const num = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN)
  return {
    cpuUs: (num('used_cpu_user') + num('used_cpu_sys')) * 1e6,
    memBytes: num('used_memory'),
  }
}

/** A measurement's figures per event. */
export interface Profile {
  /** Events per second. */
  rate: number
  /** Wall time, ms. */
  ms: number
  /** CPU (user + sys) of this process per event, µs. */
  clientUs: number
  /** CPU (user + sys) of redis-server per event, µs (INFO cpu delta). */
  redisUs: number
  /** Growth of redis-server's used_memory per event, bytes (INFO memory delta). */
  memBytes: number
}

/**
 * Runs `work` (which handles `events` events) and profiles it: wall time, this process's CPU,
 * the Redis server's CPU and memory growth, each divided by `events`.
 */
export async function profiled(admin: Redis, events: number, work: () => Promise<unknown>): Promise<Profile> {
  const before = await serverUsage(admin)
  const cpu = process.cpuUsage()
  const started = performance.now()
  await work()
  const ms = performance.now() - started
  const used = process.cpuUsage(cpu)
  const after = await serverUsage(admin)
  return {
    rate: events / (ms / 1000),
    ms,
    clientUs: (used.user + used.system) / events,
    redisUs: (after.cpuUs - before.cpuUs) / events,
    memBytes: (after.memBytes - before.memBytes) / events,
  }
}

/** A case of an interleaved comparison; `skip` set on the error of `run` leaves the case out. */
export interface Case<T> {
  key: string
  label: string
  run(round: number): Promise<T>
}

/** Figures of every round of one case (or why it was skipped). */
export interface CaseResult<T> {
  key: string
  label: string
  rounds: T[]
  skipped?: string
}

/**
 * Runs every case once a round for `rounds` rounds, interleaved (A, B, C, A, B, C, …) so that a
 * noisy neighbour spreads over all cases alike. A case whose run throws an error with `skip` set
 * (e.g. NATS not reachable) is left out from then on; any other error stops the row. `between`
 * runs after every case (e.g. FLUSHALL, so that each case starts from an empty server).
 */
export async function interleave<T>(
  cases: Case<T>[],
  rounds: number,
  options: {between?: () => Promise<void>; describe?: (r: T) => string} = {},
): Promise<Map<string, CaseResult<T>>> {
  const results = new Map(
    cases.map((c) => [c.key, {key: c.key, label: c.label, rounds: [] as T[]} as CaseResult<T>]),
  )
  for (let round = 0; round < rounds; round++) {
    for (const c of cases) {
      const result = results.get(c.key)!
      if (result.skipped) continue
      try {
        const r = await c.run(round)
        result.rounds.push(r)
        progress(
          `round ${round + 1}/${rounds} ${c.label}${options.describe ? `: ${options.describe(r)}` : ''}`,
        )
      } catch (error) {
        if (!(error as {skip?: boolean}).skip) throw error
        result.skipped = (error as Error).message
        progress(`${c.label}: skipped (${result.skipped})`)
      } finally {
        await options.between?.()
      }
    }
  }
  return results
}

/** The stat of one figure over the rounds of a case. */
export function over<T>(result: CaseResult<T> | undefined, pick: (r: T) => number): Stat {
  return stat(result?.rounds.map(pick) ?? [])
}

/**
 * The ratio of two cases round by round (case a of round i over case b of round i), as a stat:
 * pairs measured close together in time, so the ratio is steadier than the ratio of medians.
 */
export function ratioOver<T>(
  a: CaseResult<T> | undefined,
  b: CaseResult<T> | undefined,
  pick: (r: T) => number,
): Stat {
  if (!a || !b) return stat([])
  const n = Math.min(a.rounds.length, b.rounds.length)
  return stat(Array.from({length: n}, (_, i) => pick(a.rounds[i]) / pick(b.rounds[i])))
}

/** An error that leaves its case out of the row (shown as skipped). */
export function skip(message: string): Error {
  return Object.assign(new Error(message), {skip: true})
}

/** Empties the bench server (between cases), and waits for lazy frees to be done. */
export async function flush(admin: Redis): Promise<void> {
  await admin.flushall('SYNC')
}
