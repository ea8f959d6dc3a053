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

/** Formats milliseconds as a short duration (`1h`, `7d`, `60s`). */
export function formatDuration(millis: number): string {
  return ms(millis)
}
