import ms from 'ms'

import {InvalidInputError} from './errors.js'

/**
 * Parses a duration: a number of milliseconds, or an ms-style string (`500ms`, `30s`, `10m`, `1h`, `7d`).
 * @throws InvalidInputError when the value is not a positive duration.
 */
export function parseDuration(value: string | number, what = 'duration'): number {
  const parsed =
    typeof value === 'number'
      ? value
      : /^\d+$/.test(value.trim())
        ? Number(value)
        : ms(value.trim() as ms.StringValue)
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed < 0) {
    throw new InvalidInputError(
      `invalid ${what} '${value}': use a number of ms or a duration like 30s, 10m, 1h, 7d`,
    )
  }
  return parsed
}

const UNITS: [number, string][] = [
  [24 * 3600_000, 'd'],
  [3600_000, 'h'],
  [60_000, 'min'],
  [1000, 's'],
]

/**
 * Formats milliseconds as an exact short duration in the largest whole unit: `7d`, `1h`, `90min`,
 * `60s`, `250ms`. Minutes are `min`, never `m`, so that nobody reads a month; `parseDuration` reads
 * every form back.
 */
export function formatDuration(millis: number): string {
  for (const [size, unit] of UNITS)
    if (millis >= size && millis % size === 0) return `${millis / size}${unit}`
  return `${millis}ms`
}
