import type {Cluster, Redis} from 'ioredis'

import {isPattern} from './channels.js'
import type {Keys} from './keys.js'
import {LiveHub, type Entry} from './live.js'

/** How often a cluster hub looks for new channels matching its subscriptions' globs. */
export const DEFAULT_FOLLOW_MS = 1000

/** What a cluster hub needs beside its connections. */
export interface ShardedLiveOptions {
  /** Every concrete channel (the topology's and the registry's). */
  knownChannels: () => Promise<string[]>
  /** How often new channels matching a glob are looked for. @defaultValue 1000 */
  followMs?: number
}

/**
 * Live fan-out on a Redis Cluster, over sharded pub/sub: every channel's live name is a shard
 * channel under the channel's hash tag (`Keys.live`), published with SPUBLISH by the publish script,
 * so a publish costs CPU on its own shard only (classic PUBLISH is broadcast to every node of a
 * cluster). ioredis's cluster client with `shardedSubscribers` holds one subscriber connection per
 * master and SSUBSCRIBEs each name on the master that owns its slot (again after a failover or a
 * resharding).
 *
 * Redis has no pattern form of SSUBSCRIBE, so a glob is expanded to the concrete channels it matches
 * (the topology's and the channel registry's) and follows new ones: the registry's size is checked
 * every `followMs`, and when it grew the new matching channels are subscribed. Events published on a
 * new channel before it is picked up are not delivered live (they are in its history).
 */
export class ShardedLiveHub extends LiveHub {
  /** Live name → subscriptions holding it. */
  private readonly names = new Map<string, number>()
  /** The channels each subscription listens to. */
  private readonly channelsOf = new Map<Entry, Set<string>>()
  private followTimer?: NodeJS.Timeout
  private following?: Promise<void>
  private registrySize = -1
  private down = false

  /**
   * @param sub a cluster client with `shardedSubscribers: true`, used for nothing else
   * @param commands the bus's command client
   */
  constructor(
    private readonly sub: Cluster,
    keys: Keys,
    commands: Redis | Cluster,
    private readonly options: ShardedLiveOptions,
  ) {
    super(undefined, keys, commands as Redis)
    sub.on('smessage', (name: string, message: string) => this.dispatch(name, message))
    // A shard subscriber that dropped is replaced (and its names subscribed again) by ioredis; the
    // group reports `-node` with the node's key when one drops, `subscribersReady` once all are back.
    sub.on('-node', (_redis: unknown, nodeKey?: unknown) => {
      if (typeof nodeKey === 'string' && this.entries.size > 0) this.down = true
    })
    sub.on('subscribersReady', () => {
      if (!this.down) return
      this.down = false
      for (const entry of this.entries) void this.accountGap(entry)
    })
  }

  /** The live names subscribed on Redis right now (for tests and `metrics`). */
  get subscribedNames(): string[] {
    return [...this.names.keys()]
  }

  protected override async listen(entry: Entry): Promise<void> {
    const exact = entry.patterns.filter((p) => !isPattern(p))
    const globs = entry.patterns.some(isPattern)
    const matched = globs ? await this.matching(entry) : []
    this.channelsOf.set(entry, new Set())
    await this.add(entry, [...exact, ...matched])
    if (globs) this.follow()
  }

  protected override async unlisten(entry: Entry): Promise<void> {
    const channels = this.channelsOf.get(entry) ?? new Set<string>()
    this.channelsOf.delete(entry)
    if (![...this.channelsOf.keys()].some((e) => e.patterns.some(isPattern))) {
      clearInterval(this.followTimer)
      this.followTimer = undefined
    }
    const unused: string[] = []
    for (const c of channels) {
      const name = this.keys.live(c)
      const n = (this.names.get(name) ?? 1) - 1
      if (n > 0) this.names.set(name, n)
      else {
        this.names.delete(name)
        unused.push(name)
      }
    }
    if (this.sub.status !== 'ready') return
    // One SUNSUBSCRIBE per name: names of different slots cannot share one.
    await Promise.all(unused.map((name) => this.sub.sunsubscribe(name).catch(() => {})))
  }

  /** Concrete channels matching a subscription's globs. */
  private async matching(entry: Entry): Promise<string[]> {
    const known = await this.options.knownChannels()
    return known.filter((c) => entry.matchers.some((m) => m(c)))
  }

  /** Subscribes a subscription to channels it does not listen to yet. */
  private async add(entry: Entry, channels: string[]): Promise<void> {
    const mine = this.channelsOf.get(entry)
    if (!mine) return
    const fresh: string[] = []
    for (const c of channels) {
      if (mine.has(c)) continue
      mine.add(c)
      const name = this.keys.live(c)
      const n = this.names.get(name) ?? 0
      this.names.set(name, n + 1)
      if (n === 0) fresh.push(name)
    }
    // One SSUBSCRIBE per name: names of different slots cannot share one (CROSSSLOT).
    await Promise.all(fresh.map((name) => this.sub.ssubscribe(name)))
  }

  /** Starts looking for new channels matching the globs (once). */
  private follow(): void {
    if (this.followTimer) return
    this.followTimer = setInterval(() => {
      this.following ??= this.pickUpNewChannels()
        .catch(() => {})
        .finally(() => (this.following = undefined))
    }, this.options.followMs ?? DEFAULT_FOLLOW_MS)
    this.followTimer.unref()
  }

  /** When the channel registry grew, subscribes the glob subscriptions to their new channels. */
  private async pickUpNewChannels(): Promise<void> {
    const size = await this.commands.scard(this.keys.channelRegistry())
    if (size === this.registrySize) return
    const known = await this.options.knownChannels()
    for (const [entry] of this.channelsOf) {
      if (!entry.patterns.some(isPattern)) continue
      await this.add(
        entry,
        known.filter((c) => entry.matchers.some((m) => m(c))),
      )
    }
    this.registrySize = size
  }

  override async clear(): Promise<void> {
    await super.clear()
    clearInterval(this.followTimer)
  }
}

/**
 * A copy of a cluster client with `shardedSubscribers` (one subscriber connection per master that
 * holds a subscription), ready.
 * @param name the client name of its subscriber connections (ioredis names them
 *   `ioredis-cluster(ssubscriber):<name>`)
 */
export async function openShardSubscriber(commands: Cluster, name: string): Promise<Cluster> {
  const sub = commands.duplicate(undefined, {
    shardedSubscribers: true,
    redisOptions: {...commands.options.redisOptions, connectionName: name},
  })
  // Errors after it is up are handled by its reconnecting; keep them from crashing the process.
  sub.on('error', () => {})
  // A client made with lazyConnect (as raptor's are) waits for connect(); another is on its way.
  if (sub.status === 'wait') await sub.connect()
  else if (sub.status !== 'ready')
    await new Promise<void>((resolve, reject) => {
      sub.once('ready', resolve)
      sub.once('end', () => reject(new Error('the cluster subscriber client ended before it was ready')))
    })
  return sub
}

/** Opens a cluster hub on a subscriber client of its own. */
export async function openShardedHub(
  commands: Cluster,
  keys: Keys,
  name: string,
  options: ShardedLiveOptions,
): Promise<{hub: ShardedLiveHub; sub: Cluster}> {
  const sub = await openShardSubscriber(commands, name)
  return {hub: new ShardedLiveHub(sub, keys, commands, options), sub}
}
