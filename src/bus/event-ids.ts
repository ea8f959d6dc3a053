/**
 * The ids raptor gives events: `evt-<uuid v7>` (RFC 9562), whose first 48 bits are the time it was
 * made, in ms. That time tells `get` where in a channel's history the event is, so that no Redis key
 * per event is needed to find it: the publish script writes an index key only for an event that
 * `get` could not find by its id's time (a producer's own id, or an id whose time is outside the
 * window below around the stream entry's server time). Events published with `evt-<uuid v4>` ids by
 * earlier versions have index keys, and are found by them.
 */
import {randomUUID} from 'node:crypto'

/**
 * How far an id's time may be after the server time of its stream entry (a client clock ahead of
 * Redis's) for the event to go without an index key.
 */
export const ID_EARLY_MS = 1000
/**
 * How far the server time of the stream entry may be after the id's time (a client clock behind
 * Redis's, or a publish that waited, e.g. through a reconnect) for the event to go without an index key.
 */
export const ID_LATE_MS = 5000

/** A raptor event id: `evt-` and a UUID version 7 (lowercase hex). */
const TIME_ORDERED_ID = /^evt-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** The time part of the last id made (`evt-tttttttt-tttt-7`) and its ms: many ids share a ms. */
let lastMs = -1
let lastHead = ''

/** A fresh event id made at `ms` (default now): `evt-<uuid v7>`. */
export function newEventId(ms = Date.now()): string {
  if (ms !== lastMs) {
    const time = ms.toString(16).padStart(12, '0')
    lastHead = `evt-${time.slice(0, 8)}-${time.slice(8, 12)}-7`
    lastMs = ms
  }
  // randomUUID is a v4 from a cached pool of entropy: keep its random bits after the version digit.
  return lastHead + randomUUID().slice(15)
}

/** The time (ms) a raptor `evt-<uuid v7>` id was made at; undefined for any other id. */
export function eventIdTime(id: string): number | undefined {
  if (id.length !== 40 || !TIME_ORDERED_ID.test(id)) return undefined
  return parseInt(id.slice(4, 12) + id.slice(13, 17), 16)
}
