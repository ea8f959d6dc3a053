import ms from 'ms'

import {InvalidInputError} from './errors.js'

/** Bounds a duration must keep. */
export interface DurationBounds {
  /** Smallest value accepted, in ms. @defaultValue 0 */
  min?: number
  /** Largest value accepted, in ms (and how to word it). */
  max?: {ms: number; why: string}
  /** Only whole milliseconds. @defaultValue false */
  integer?: boolean
}

/**
 * Parses a duration: a number of milliseconds, or an ms-style string (`500ms`, `30s`, `10m`, `1h`, `7d`).
 * @throws InvalidInputError when the value is not a duration within the bounds.
 */
export function parseDuration(
  value: string | number,
  what = 'duration',
  bounds: DurationBounds = {},
): number {
  let parsed: number | undefined
  if (typeof value === 'number') parsed = value
  else if (typeof value === 'string') {
    const text = value.trim()
    try {
      parsed = /^\d+$/.test(text) ? Number(text) : text === '' ? undefined : ms(text as ms.StringValue)
    } catch {
      parsed = undefined
    }
  }
  const shown = typeof value === 'string' ? `'${value}'` : String(value)
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed < 0) {
    throw new InvalidInputError(
      `invalid ${what} ${shown}: use a number of ms or a duration like 30s, 10m, 1h, 7d`,
    )
  }
  if (bounds.integer && !Number.isInteger(parsed))
    throw new InvalidInputError(`invalid ${what} ${shown}: use a whole number of milliseconds`)
  if (parsed < (bounds.min ?? 0))
    throw new InvalidInputError(`invalid ${what} ${shown}: at least ${formatDuration(bounds.min ?? 0)}`)
  if (bounds.max && parsed > bounds.max.ms)
    throw new InvalidInputError(
      `invalid ${what} ${shown}: at most ${formatDuration(bounds.max.ms)} (${bounds.max.why})`,
    )
  return parsed
}

/** Formats milliseconds as a short duration (`1h`, `7d`, `60s`). */
export function formatDuration(millis: number): string {
  return ms(millis)
}
