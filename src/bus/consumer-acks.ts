import type {ConsumeScripts, Source} from './consumer-scripts.js'
import {compareIds} from './stream-ids.js'

interface Batch {
  source: Source
  counted: boolean
  ids: string[]
  waiters: (((acked: boolean) => void) | undefined)[]
}

/** Ids in ascending order (they almost always are already: entries finish in the order they were read). */
function ascending(ids: string[]): string[] {
  for (let i = 1; i < ids.length; i++)
    if (compareIds(ids[i - 1], ids[i]) > 0) return [...ids].sort(compareIds)
  return ids
}

/**
 * Acknowledges finished events in batches without holding them back: acks queued while the current
 * microtasks run go out together (one fenced script call per stream, in one pipeline) before the
 * process turns to anything else — before the next timer, I/O callback or `setImmediate` of any other
 * handler. So an event whose handler has finished is on its way to Redis before another handler can
 * crash the process in a later macrotask. (A crash in the very same microtask run can still catch it:
 * the event is then redelivered, a duplicate, never lost.)
 */
export class AckBatcher {
  private readonly batches = new Map<string, Batch>()
  private scheduled = false
  private inFlight = new Set<Promise<void>>()

  constructor(
    private readonly scripts: ConsumeScripts,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Queues an ack; `done` learns whether it was acknowledged (false: another consumer owns it now). */
  ack(source: Source, id: string, counted: boolean, done?: (acked: boolean) => void): void {
    const key = counted ? source.stream : `${source.stream}\n0`
    let batch = this.batches.get(key)
    if (!batch) {
      batch = {source, counted, ids: [], waiters: []}
      this.batches.set(key, batch)
    }
    batch.ids.push(id)
    batch.waiters.push(done)
    if (!this.scheduled) {
      this.scheduled = true
      queueMicrotask(() => void this.flush())
    }
  }

  /** Resolves once every ack queued so far has been answered by Redis. */
  async settled(): Promise<void> {
    if (this.scheduled) await this.flush()
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight])
  }

  private flush(): Promise<void> {
    this.scheduled = false
    if (this.batches.size === 0) return Promise.resolve()
    const batches = [...this.batches.values()]
    this.batches.clear()
    const pipeline = this.scripts.pipeline()
    for (const b of batches) this.scripts.ack(pipeline, b.source, ascending(b.ids), b.counted)
    const sent = pipeline.exec().then(
      (results) => this.answer(batches, results ?? []),
      (error: unknown) => {
        this.onError(error)
        this.answer(batches, [])
      },
    )
    const tracked = sent.finally(() => this.inFlight.delete(tracked))
    this.inFlight.add(tracked)
    return tracked
  }

  private answer(batches: Batch[], results: [Error | null, unknown][]): void {
    batches.forEach((b, i) => {
      const [error, lost] = results[i] ?? [new Error('ack not sent'), []]
      if (error) this.onError(error)
      const notAcked = new Set(error ? b.ids : (lost as string[]))
      b.ids.forEach((id, j) => b.waiters[j]?.(!notAcked.has(id)))
    })
  }
}
