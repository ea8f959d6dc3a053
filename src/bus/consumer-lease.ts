import type {Claimed, ConsumeScripts, Source} from './consumer-scripts.js'

/** An entry a consumer holds: running, waiting to run, or waiting to be retried. */
export interface HeldEntry {
  source: Source
  id: string
}

/** What the lease keeper needs from its consumer. */
export interface LeaseHolder {
  /** The streams the consumer reads. */
  sources(): readonly Source[]
  /** Every entry the consumer holds now. */
  held(): Iterable<HeldEntry>
  /** How many more entries it takes over now (suspects run one at a time: 0 or 1). */
  wantsClaims(): number
  /** Another consumer owns this entry now. */
  lost(entry: HeldEntry): void
  /** The entry's history was trimmed while it was held and no copy is stored yet. */
  trimmed(entry: HeldEntry): void
  /** Entries taken over from a consumer that went silent. */
  claimed(source: Source, entries: Claimed[]): void
  /** Entries of a silent consumer whose history was trimmed, dead-lettered from its held copy. */
  gone(source: Source, entries: {id: string; owner: string}[]): void
  error(error: unknown): void
}

/** How long a consumer that holds nothing stays in a group's consumer list after it was last seen. */
const FORGET_AFTER_MS = 15 * 60 * 1000

/**
 * The lease side of a consumer (as BullMQ's lock manager is to its worker): keeps every entry the
 * consumer holds alive, so that a slow handler is never stolen, and takes over the entries of
 * consumers that went silent — whether or not a slot is free, so that a backlog cannot delay the
 * redelivery of a dead consumer's events.
 */
export class LeaseKeeper {
  private readonly timers: NodeJS.Timeout[] = []
  private readonly cursors = new Map<string, string>()
  private reclaiming?: Promise<void>
  private again = false
  private stopped = false
  /** Where the next reclaim round starts among the sources (round robin). */
  private turn = 0

  constructor(
    private readonly scripts: ConsumeScripts,
    private readonly holder: LeaseHolder,
    /** Entries held by a silent consumer for this long are taken over. */
    readonly reclaimAfterMs: number,
  ) {}

  /** Entries are refreshed this often: a quarter of the reclaim time. */
  get keepAliveMs(): number {
    return Math.max(50, Math.floor(this.reclaimAfterMs / 4))
  }

  start(): void {
    const every = (ms: number, task: () => Promise<unknown>) => {
      const timer = setInterval(() => void task().catch((e) => this.holder.error(e)), ms)
      timer.unref()
      this.timers.push(timer)
    }
    every(this.keepAliveMs, () => this.keepAlive())
    every(Math.min(this.keepAliveMs, 5000), () => this.reclaim())
    every(Math.min(FORGET_AFTER_MS / 10, 60_000), () => this.forget())
  }

  stop(): void {
    this.stopped = true
    for (const t of this.timers) clearInterval(t)
  }

  /** Refreshes the idle time of every held entry; reports the ones lost or trimmed. */
  async keepAlive(): Promise<void> {
    const byStream = new Map<string, {source: Source; ids: string[]}>()
    for (const e of this.holder.held()) {
      const group = byStream.get(e.source.stream) ?? {source: e.source, ids: []}
      group.ids.push(e.id)
      byStream.set(e.source.stream, group)
    }
    if (byStream.size === 0) return
    const pipeline = this.scripts.pipeline()
    const groups = [...byStream.values()]
    for (const g of groups) this.scripts.touch(pipeline, g.source, g.ids)
    const results = (await pipeline.exec()) ?? []
    results.forEach(([error, reply], i) => {
      if (error) return this.holder.error(error)
      const [lost, trimmed] = reply as [string[], string[]]
      for (const id of lost) this.holder.lost({source: groups[i].source, id})
      for (const id of trimmed) this.holder.trimmed({source: groups[i].source, id})
    })
  }

  /** Takes over idle entries of silent consumers, as many as the consumer wants now. Runs once at a time. */
  reclaim(): Promise<void> {
    if (this.reclaiming) {
      this.again = true
      return this.reclaiming
    }
    this.reclaiming = (async () => {
      try {
        do {
          this.again = false
          await this.reclaimRound()
        } while (this.again && !this.stopped)
      } finally {
        this.reclaiming = undefined
      }
    })()
    return this.reclaiming
  }

  private async reclaimRound(): Promise<void> {
    const sources = this.holder.sources()
    for (let k = 0; k < sources.length; k++) {
      const want = this.holder.wantsClaims()
      if (want <= 0 || this.stopped) return
      const source = sources[(this.turn + k) % sources.length]
      const from = this.cursors.get(source.stream) ?? '-'
      const result = await this.scripts.claim(source, from, want, this.reclaimAfterMs)
      this.cursors.set(source.stream, result.next)
      if (result.gone.length > 0) this.holder.gone(source, result.gone)
      if (result.claimed.length > 0) {
        this.turn = (this.turn + k + 1) % sources.length
        this.holder.claimed(source, result.claimed)
      } else if (from !== '-' && result.next === '-') {
        // The scan wrapped past the end: look at the start of this stream again next round.
        this.again = true
      }
    }
  }

  /** Drops consumers of the group that hold nothing and have not been seen for a long time. */
  private async forget(): Promise<void> {
    for (const source of this.holder.sources()) {
      if (this.stopped) return
      await this.scripts.forget(source, Math.max(FORGET_AFTER_MS, this.reclaimAfterMs * 3))
    }
  }
}
