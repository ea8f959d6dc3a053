import type {Cluster, Redis} from 'ioredis'

import {openConnection, type ConnectionOptions} from './connection.js'
import type {Source} from './consumer-scripts.js'
import type {Keys} from './keys.js'
import {openShardSubscriber} from './live-sharded.js'

/** Takes one entry read fresh. */
export type Dispatch = (source: Source, id: string, fields: string[]) => void

/**
 * How a consumer reads new entries of its streams (the group's `>`): one blocking XREADGROUP over
 * every stream on one server; on a cluster, where one command cannot span slots, reads woken by the
 * channels' bells ({@link BellReader}).
 */
export interface EntryReader {
  /**
   * Reads at most `count` new entries of the sources and dispatches each; when there are none, waits
   * up to the read timeout (or until `wake`) first. A failed read throws once what did arrive is
   * dispatched.
   */
  read(sources: readonly Source[], count: number, dispatch: Dispatch): Promise<void>
  /** The consumer reads these sources too from now on. */
  added(sources: readonly Source[]): Promise<void>
  /** Ends a wait in progress at once (a suspect must run alone, or the consumer stops). */
  wake(): Promise<void>
  close(): void
}

type ReadReply = [string, [string, string[]][]][] | null

/** What a reader needs to know of its consumer. */
export interface ReaderContext {
  commands: Redis | Cluster
  keys: Keys
  connection: ConnectionOptions
  group: string
  consumer: string
  /** How long one read waits for new entries (one server), or the safety poll (cluster). */
  blockMs: number
}

/** Opens the reader for the kind of Redis the bus is on. */
export async function openReader(ctx: ReaderContext): Promise<EntryReader> {
  const name = `${ctx.keys.prefix}:consumer:${ctx.group}`
  if (ctx.commands.isCluster)
    return new BellReader(ctx, await openShardSubscriber(ctx.commands as Cluster, name))
  const conn = await openConnection(ctx.connection, name, {maxRetriesPerRequest: null})
  return new BlockingReader(ctx, conn as Redis, Number(await conn.client('ID')))
}

/**
 * One server: one blocking XREADGROUP over every stream of the consumer, on a connection of its
 * own; woken early with CLIENT UNBLOCK.
 */
class BlockingReader implements EntryReader {
  constructor(
    private readonly ctx: ReaderContext,
    private readonly conn: Redis,
    private readonly clientId: number,
  ) {}

  async read(sources: readonly Source[], count: number, dispatch: Dispatch): Promise<void> {
    const result = (await this.conn.xreadgroup(
      'GROUP',
      this.ctx.group,
      this.ctx.consumer,
      'COUNT',
      count,
      'BLOCK',
      this.ctx.blockMs,
      'STREAMS',
      ...sources.map((s) => s.stream),
      ...sources.map(() => '>'),
    )) as ReadReply
    if (!result) return
    const byStream = new Map(sources.map((s) => [s.stream, s]))
    for (const [stream, entries] of result) {
      const source = byStream.get(stream)
      if (!source) continue
      for (const [id, fields] of entries) dispatch(source, id, fields)
    }
  }

  async added(): Promise<void> {}

  async wake(): Promise<void> {
    const commands = this.ctx.commands as Redis
    if (commands.status !== 'ready') return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      commands.client('UNBLOCK', this.clientId).catch(() => {}),
      new Promise((r) => (timer = setTimeout(r, 500))),
    ])
    clearTimeout(timer)
  }

  close(): void {
    this.conn.disconnect()
  }
}

/**
 * A Redis Cluster: a blocking XREADGROUP cannot span slots, and a blocking connection per channel
 * would not scale, so reads are rung instead. Each channel's bell (a shard channel under its hash
 * tag, `Keys.bell`) rings once per publish script call; the consumer SSUBSCRIBEs the bells of its
 * channels (ioredis's sharded subscribers: one connection per master) and reads, without blocking,
 * exactly the streams that rang, each on the node that owns it, all at once. A slow safety poll
 * (every `blockMs`) reads every stream anyway: it catches what no bell announced (a bell lost while a
 * shard subscriber reconnected, entries added by a foreign XADD, requeued entries).
 */
class BellReader implements EntryReader {
  /** Streams that may hold new entries, in the order they are to be read (round robin). */
  private readonly dirty = new Set<string>()
  private readonly bells = new Set<string>()
  /** The consumer's sources by stream (read from here: the list a read was called with may be older). */
  private readonly known = new Map<string, Source>()
  private waiter?: () => void
  /** A wake that came while no read waited: the next read returns at once. */
  private woken = false
  private readonly poll: NodeJS.Timeout
  private down = false

  constructor(
    private readonly ctx: ReaderContext,
    private readonly sub: Cluster,
  ) {
    sub.on('smessage', (bell: string) => {
      const channel = ctx.keys.channelOfBell(bell)
      if (channel === undefined) return
      this.mark([ctx.keys.stream(channel)])
    })
    // A shard subscriber that dropped missed its bells: read everything once it is back.
    sub.on('-node', (_redis: unknown, nodeKey?: unknown) => {
      if (typeof nodeKey === 'string') this.down = true
    })
    sub.on('subscribersReady', () => {
      if (!this.down) return
      this.down = false
      this.markAll()
    })
    this.poll = setInterval(() => this.markAll(), ctx.blockMs)
    this.poll.unref()
  }

  private mark(streams: Iterable<string>): void {
    for (const s of streams) this.dirty.add(s)
    this.wakeNow()
  }

  private markAll(): void {
    this.mark(this.known.keys())
  }

  private wakeNow(): void {
    const waiter = this.waiter
    this.waiter = undefined
    if (waiter) waiter()
    else this.woken = true
  }

  async added(sources: readonly Source[]): Promise<void> {
    for (const s of sources) this.known.set(s.stream, s)
    const fresh = [
      ...new Set(sources.filter((s) => !s.requeue).map((s) => this.ctx.keys.bell(s.channel))),
    ].filter((b) => !this.bells.has(b))
    for (const b of fresh) this.bells.add(b)
    // One SSUBSCRIBE per bell: bells of different slots cannot share one (CROSSSLOT).
    await Promise.all(fresh.map((b) => this.sub.ssubscribe(b)))
    this.mark(sources.map((s) => s.stream))
  }

  async read(_sources: readonly Source[], count: number, dispatch: Dispatch): Promise<void> {
    if (this.dirty.size === 0 && !this.woken) await new Promise<void>((resolve) => (this.waiter = resolve))
    this.woken = false
    const byStream = this.known
    const chosen: {source: Source; n: number}[] = []
    const k = Math.min(this.dirty.size, count)
    let left = count
    for (const stream of this.dirty) {
      if (chosen.length >= k) break
      this.dirty.delete(stream)
      const source = byStream.get(stream)
      if (!source) continue
      const n = Math.max(1, Math.floor(left / (k - chosen.length)))
      left -= n
      chosen.push({source, n})
    }
    // Each stream on the node that owns it, all at once; never more than `count` entries in all.
    const replies = await Promise.allSettled(
      chosen.map(
        ({source, n}) =>
          this.ctx.commands.xreadgroup(
            'GROUP',
            this.ctx.group,
            this.ctx.consumer,
            'COUNT',
            n,
            'STREAMS',
            source.stream,
            '>',
          ) as Promise<ReadReply>,
      ),
    )
    let failure: unknown
    replies.forEach((reply, i) => {
      const {source, n} = chosen[i]
      if (reply.status === 'rejected') {
        failure ??= reply.reason
        this.dirty.add(source.stream)
        return
      }
      const entries = reply.value?.[0]?.[1] ?? []
      for (const [id, fields] of entries) dispatch(source, id, fields)
      // A full read may have left more behind: read it again (after the other rung streams).
      if (entries.length >= n) this.dirty.add(source.stream)
    })
    if (failure) throw failure
  }

  async wake(): Promise<void> {
    this.wakeNow()
  }

  close(): void {
    clearInterval(this.poll)
    this.wakeNow()
    this.sub.disconnect()
  }
}
