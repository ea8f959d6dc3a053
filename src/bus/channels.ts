import {closest} from 'fastest-levenshtein'
import picomatch from 'picomatch'

import {parseDuration, type DurationBounds} from './durations.js'
import {isChannelName} from './envelope.js'
import {InvalidInputError} from './errors.js'

/** Reasons an event is dead-lettered; each is a DLQ `sys.dlq.<reason>`. */
export const DLQ_REASONS = [
  'max_retries_exceeded',
  'schema_violation',
  'routing_error',
  'processing_timeout',
] as const
/** A dead-letter reason. */
export type DlqReason = (typeof DLQ_REASONS)[number]

/** How long dead-letter entries are kept. */
export const DLQ_RETENTION_MS = 30 * 24 * 3600 * 1000

/** The channel on which agents publish heartbeats. */
export const HEARTBEAT_CHANNEL = 'sys.global.heartbeat'

/** The pseudo-channel under which events addressed to unknown channels are parked. */
export const ROUTING_DLQ_CHANNEL = 'sys.dlq.routing_error'

/** A channel of the topology, or a pattern of channels (`app.orders.*`). */
export interface ChannelSpec {
  /** Channel name, or a glob pattern when `pattern` is true. */
  name: string
  /** How long history is kept, in ms. */
  retentionMs: number
  /** True for a glob pattern added by a config file. */
  pattern: boolean
  /** True for the channels raptor defines itself. */
  builtin: boolean
}

const HOUR = 3600 * 1000
const DAY = 24 * HOUR

/**
 * What a channel's retention may be: whole milliseconds, at most 10 years. History is trimmed by
 * `XADD MINID (server now − retention)` and the id index expires with `PX retention`: a fraction
 * or a retention reaching back before 1970 would make every publish fail in Redis.
 */
export const RETENTION_BOUNDS: DurationBounds = {
  min: 1,
  integer: true,
  max: {ms: 3650 * DAY, why: 'history is kept by server time; use a database for longer'},
}

/** The built-in channels and their retention (SPEC §2). */
export const BUILTIN_CHANNELS: readonly ChannelSpec[] = [
  {name: HEARTBEAT_CHANNEL, retentionMs: 60 * 1000},
  {name: 'sys.guild.research.broadcast', retentionMs: HOUR},
  {name: 'sys.guild.muse.broadcast', retentionMs: DAY},
  {name: 'sys.guild.matrix.broadcast', retentionMs: 7 * DAY},
  {name: 'sys.guild.guardians.broadcast', retentionMs: DAY},
  {name: 'sys.alert.critical', retentionMs: DAY},
  {name: 'sys.alert.warning', retentionMs: DAY},
  {name: 'sys.state.update', retentionMs: HOUR},
].map((c) => ({...c, pattern: false, builtin: true}))

/** Guild names with a built-in broadcast channel. */
export const GUILDS = ['research', 'muse', 'matrix', 'guardians'] as const

/** A channel as written in a config file. */
export interface ChannelConfig {
  name: string
  /** Retention: ms or a duration string (`1h`). */
  retention: string | number
}

/**
 * Converts a channel glob into a matcher. Segments are separated by dots: `*` matches one segment,
 * `**` any number of them (`sys.**` matches every `sys.` channel); `?` and `[...]` work as in shell globs.
 */
export function channelMatcher(pattern: string): (channel: string) => boolean {
  if (pattern === '*' || pattern === '**' || pattern === '>') return () => true
  // Live fan-out asks every subscription about every message: a plain name is one comparison, and
  // a glob's answers are remembered per channel (channels are few; the memo is bounded anyway).
  if (!isPattern(pattern)) return (channel) => channel === pattern
  const glob = pattern.replace(/\.>$/, '.**').split('.').join('/')
  const isMatch = picomatch(glob, {dot: true})
  const memo = new Map<string, boolean>()
  return (channel) => {
    let hit = memo.get(channel)
    if (hit === undefined) {
      hit = isMatch(channel.split('.').join('/'))
      if (memo.size >= 1024) memo.clear()
      memo.set(channel, hit)
    }
    return hit
  }
}

/** True when the string has glob characters. */
export function isPattern(name: string): boolean {
  return /[*?[\]>]/.test(name)
}

/** The topology: which channels exist and how long each keeps history. */
export class Topology {
  private readonly exact = new Map<string, ChannelSpec>()
  private readonly patterns: {spec: ChannelSpec; match: (c: string) => boolean}[] = []

  constructor(extra: readonly ChannelConfig[] = []) {
    for (const spec of BUILTIN_CHANNELS) this.exact.set(spec.name, spec)
    for (const c of extra) {
      const retentionMs = parseDuration(c.retention, `retention of channel '${c.name}'`, RETENTION_BOUNDS)
      if (isPattern(c.name)) {
        const literal = c.name.replace(/\*\*|\*|>|\?/g, 'x')
        if (!isChannelName(literal)) {
          throw new InvalidInputError(
            `invalid channel pattern '${c.name}' in config: use dot-separated lowercase segments and * or **`,
          )
        }
        const spec = {name: c.name, retentionMs, pattern: true, builtin: false}
        this.patterns.push({spec, match: channelMatcher(c.name)})
      } else {
        assertChannelName(c.name)
        if (c.name.startsWith('sys.dlq.'))
          throw new InvalidInputError(`'${c.name}' is reserved for dead-letter queues`)
        this.exact.set(c.name, {
          name: c.name,
          retentionMs,
          pattern: false,
          builtin: this.exact.get(c.name)?.builtin ?? false,
        })
      }
    }
  }

  /** The spec a channel falls under, or undefined when it is outside the topology. */
  resolve(channel: string): ChannelSpec | undefined {
    const exact = this.exact.get(channel)
    if (exact) return exact
    for (const p of this.patterns) if (p.match(channel)) return p.spec
    return undefined
  }

  /** Retention of a channel in ms (DLQ retention for `sys.dlq.*`), or undefined when unknown. */
  retentionMs(channel: string): number | undefined {
    if (channel.startsWith('sys.dlq.')) return DLQ_RETENTION_MS
    return this.resolve(channel)?.retentionMs
  }

  /** Every exact channel and every pattern, built-in first. */
  list(): ChannelSpec[] {
    return [...this.exact.values(), ...this.patterns.map((p) => p.spec)]
  }

  /** Exact channel names (not patterns). */
  names(): string[] {
    return [...this.exact.keys()]
  }

  /** The valid channel nearest (by edit distance) to a name, for "did you mean" hints. */
  nearest(channel: string, known: readonly string[] = []): string | undefined {
    const candidates = [...new Set([...this.exact.keys(), ...known.filter((k) => this.resolve(k))])]
    return candidates.length > 0 ? closest(channel, candidates) : undefined
  }
}

/** @throws InvalidInputError when the name is not a valid channel name. */
export function assertChannelName(channel: string): void {
  if (!isChannelName(channel)) {
    throw new InvalidInputError(
      `invalid channel name '${channel}': use dot-separated lowercase segments of a-z 0-9 _ - (e.g. app.orders.created)`,
      {channel},
    )
  }
}

/**
 * @throws InvalidInputError when the string is neither a channel name nor a channel glob
 *   (`sys.alert.*`, `sys.**`, `**`).
 */
export function assertChannelPattern(pattern: string): void {
  if (pattern === '*' || pattern === '**' || pattern === '>') return
  const literal = pattern.replace(/\*\*|\*|>|\?/g, 'x').replace(/\[[^\]]*\]/g, 'x')
  if (!isChannelName(literal)) {
    throw new InvalidInputError(
      `invalid channel pattern '${pattern}': use dot-separated lowercase segments with * (one segment) or ** (any number), e.g. sys.alert.*`,
      {pattern},
    )
  }
}
