/**
 * The resume position of a live stream, as text: the SSE `id:` of every event (so the browser sends it
 * back as `Last-Event-ID`) and the `cursor` of every WebSocket event.
 *
 * One stream id cannot say where a multi-channel stream stopped (entries of different channels in
 * the same millisecond interleave), so the cursor keeps, per channel, the last entry sent, plus the
 * server time the stream started for the channels it has sent nothing on yet:
 *
 *   1795936715000,sys.alert.warning@1795936715199-0,sys.state.update@1795936716004-3
 *
 * (`@` and `,` never occur in channel names.)
 */
import type {StreamCursor} from '../bus/bus.js'
import {isChannelName} from '../bus/envelope.js'
import {InvalidInputError} from '../bus/errors.js'
import {compareIds, idTime} from '../bus/stream-ids.js'

/** Longest cursor text accepted. */
const MAX_LENGTH = 16_384
const STREAM_ID = /^\d{1,15}-\d{1,15}$/

/** A cursor that moves as events are sent. */
export class CursorTracker {
  private readonly after = new Map<string, string>()
  private text?: string

  constructor(
    readonly from: number,
    after: Readonly<Record<string, string>> = {},
  ) {
    for (const [channel, id] of Object.entries(after)) this.after.set(channel, id)
  }

  /** Records that the entry `streamId` of `channel` was sent. */
  advance(channel: string, streamId: string): void {
    this.after.set(channel, streamId)
    this.text = undefined
  }

  /** True when the entry `streamId` of `channel` is at or before this cursor (already sent). */
  covers(channel: string, streamId: string): boolean {
    const after = this.after.get(channel)
    return after === undefined ? idTime(streamId) < this.from : compareIds(streamId, after) <= 0
  }

  /** The library's form, for `bus.subscribe({resume})`. */
  toStreamCursor(): StreamCursor {
    return {from: this.from, after: Object.fromEntries(this.after)}
  }

  toString(): string {
    if (this.text === undefined) {
      let text = String(this.from)
      for (const [channel, id] of this.after) text += `,${channel}@${id}`
      this.text = text
    }
    return this.text
  }
}

/**
 * Parses cursor text (a `Last-Event-ID`).
 * @throws InvalidInputError when it is not a cursor this gateway wrote
 */
export function parseCursor(text: string, what = 'Last-Event-ID'): CursorTracker {
  const bad = (why: string) =>
    new InvalidInputError(
      `invalid ${what} '${text.length > 60 ? text.slice(0, 60) + '…' : text}': ${why}; ` +
        'send back the id of the last event received, or leave it out to start live',
    )
  if (text.length > MAX_LENGTH) throw bad(`longer than ${MAX_LENGTH} characters`)
  const [head, ...parts] = text.trim().split(',')
  if (!/^\d{1,15}$/.test(head)) throw bad('it must start with a time in ms')
  const after: Record<string, string> = Object.create(null) as Record<string, string>
  for (const part of parts) {
    const at = part.lastIndexOf('@')
    const channel = part.slice(0, at)
    const id = part.slice(at + 1)
    if (at <= 0 || !isChannelName(channel) || !STREAM_ID.test(id))
      throw bad(`'${part}' is not <channel>@<stream id>`)
    after[channel] = id
  }
  return new CursorTracker(Number(head), after)
}
