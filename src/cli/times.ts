import {parseDuration} from '../bus/durations.js'
import {InvalidInputError} from '../bus/errors.js'

/** A point in time from a flag: absolute (ms since the epoch) or relative to the server's now. */
export type TimePoint = {at: number} | {ago: number}

/**
 * Parses `--from`/`--until`: RFC 3339 (`2026-11-29T07:00:00Z`), epoch ms (`1732863600000`), or a
 * duration meaning that long ago (`10m`).
 */
export function parseTimePoint(value: string, flag: string): TimePoint {
  const text = value.trim()
  if (/^\d+$/.test(text)) return {at: Number(text)}
  if (/^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?([Zz]|[+-]\d{2}:?\d{2})?$/.test(text)) {
    const at = Date.parse(text)
    if (Number.isFinite(at)) return {at}
  }
  try {
    return {ago: parseDuration(text)}
  } catch {
    throw new InvalidInputError(
      `invalid ${flag} '${value}': use RFC 3339 (2026-11-29T07:00:00Z), epoch ms, or a duration ago (10m)`,
    )
  }
}

/** Resolves a time point against the server's now. */
export function resolveTimePoint(point: TimePoint, now: number): number {
  return 'at' in point ? point.at : now - point.ago
}

/** Parses `--rate`: `N`, `N/s` or `N/m` → events per second. */
export function parseRate(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(s|sec|m|min))?\s*$/.exec(value)
  const n = match ? Number(match[1]) : NaN
  if (!match || !(n > 0))
    throw new InvalidInputError(`invalid --rate '${value}': use events per second like 100/s (or 600/m)`)
  return match[2]?.startsWith('m') ? n / 60 : n
}
