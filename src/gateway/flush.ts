/**
 * Coalesced writes for live clients. A fan-out to N clients that wrote every event to every socket
 * at once would make N system calls per event (a million a second for 1,000 clients at 1k events/s);
 * instead each client queues the shared frames and all dirty clients are flushed together, one write
 * each. With few clients the flush runs on the next turn of the event loop (no added latency); with
 * many it waits up to `clients / 100` ms (10 ms at 1,000), so that each write carries a batch.
 */

/** Longest a flush is put off, in ms. */
const MAX_DELAY_MS = 20

export class FlushScheduler {
  private readonly dirty = new Set<() => void>()
  private scheduled = false

  /** @param clients how many clients may be flushed (sets the delay) */
  constructor(private readonly clients: () => number) {}

  /** Runs `flush` once, with every other flush marked before it runs. */
  mark(flush: () => void): void {
    this.dirty.add(flush)
    if (this.scheduled) return
    this.scheduled = true
    const delay = Math.min(MAX_DELAY_MS, Math.floor(this.clients() / 100))
    if (delay < 1) setImmediate(this.run)
    else setTimeout(this.run, delay)
  }

  private readonly run = () => {
    this.scheduled = false
    const flushes = [...this.dirty]
    this.dirty.clear()
    for (const flush of flushes) flush()
  }
}

/** A client's queue of frames not yet written, bounded in bytes by its caller. */
export class FrameQueue {
  private frames: Buffer[] = []
  /** Bytes queued. */
  bytes = 0

  /** Frames queued. */
  get count(): number {
    return this.frames.length
  }

  push(frame: Buffer): void {
    this.frames.push(frame)
    this.bytes += frame.length
  }

  /** Everything queued as one buffer (undefined when empty), and the queue emptied. */
  take(): Buffer | undefined {
    const {frames, bytes} = this
    if (frames.length === 0) return undefined
    this.frames = []
    this.bytes = 0
    return frames.length === 1 ? frames[0] : Buffer.concat(frames, bytes)
  }

  clear(): void {
    this.frames = []
    this.bytes = 0
  }
}
