import type {DlqReason} from './channels.js'

/**
 * Every Redis key and pub/sub channel name raptor uses, built in one place.
 *
 * All keys of a channel share the hash tag `{<channel>}` so that every per-channel script
 * (publish, dead-letter, requeue) touches a single Redis Cluster slot. Global keys (the channel
 * registry, agents) are only ever touched outside those scripts.
 */
export class Keys {
  /**
   * @param prefix the key prefix (PREFIX_PATTERN: no `@`)
   * @param db the database index: pub/sub ignores databases, so live names carry it
   * @param sharded on a Redis Cluster: live names are shard channels (SPUBLISH/SSUBSCRIBE) under
   *   their channel's hash tag, so that the publish script's SPUBLISH stays on the channel's slot
   */
  constructor(
    readonly prefix: string,
    readonly db = 0,
    readonly sharded = false,
  ) {}

  private tag(channel: string): string {
    return `${this.prefix}:ch:{${channel}}`
  }

  /** The channel's history: a stream, one entry per event, field `e` = envelope JSON. */
  stream(channel: string): string {
    return `${this.tag(channel)}:stream`
  }

  /**
   * Event id → stream entry id of that event, expiring with the channel's retention (for `get`). Only
   * events whose id does not tell where they are have one (see event-ids.ts).
   */
  eventIndex(channel: string, eventId: string): string {
    return this.eventIndexPrefix(channel) + eventId
  }

  /** The head of a channel's event index keys (the publish script appends the event id). */
  eventIndexPrefix(channel: string): string {
    return `${this.tag(channel)}:id:`
  }

  /** Per-channel counters (hash): published, delivered, acked, failed, retried, deadLettered, … */
  stats(channel: string): string {
    return `${this.tag(channel)}:stats`
  }

  /** Per-handler counters on one channel (hash), kept by the consume scripts. */
  handlerStats(channel: string, handler: string): string {
    return `${this.tag(channel)}:hstats:${handler}`
  }

  /** Dead-lettered events of one channel and reason (a stream). */
  dlq(channel: string, reason: DlqReason): string {
    return `${this.tag(channel)}:dlq:${reason}`
  }

  /** Events requeued to one handler only, on one channel (a stream read by the handler's group). */
  requeue(channel: string, handler: string): string {
    return `${this.tag(channel)}:rq:${handler}`
  }

  /**
   * Copies of pending entries whose history was trimmed by retention, held for their owner (hash:
   * `<entry id>` → ms the owner was last seen, `<id>:e` → envelope JSON, `<id>:r` → times requeued).
   * One per source stream of a handler: the channel stream, or (`requeue`) its requeue stream.
   */
  heldCopies(channel: string, handler: string, requeue: boolean): string {
    return `${this.tag(channel)}:${requeue ? 'rqheld' : 'held'}:${handler}`
  }

  /**
   * Marker that a DLQ entry was already re-published onto this channel (requeue to a channel): makes
   * the cross-slot move idempotent. Lives as long as a DLQ entry can.
   */
  requeueMarker(channel: string, dlqEntryId: string): string {
    return `${this.tag(channel)}:rqmark:${dlqEntryId}`
  }

  /** Every concrete channel ever published to under this prefix (a set). */
  channelRegistry(): string {
    return `${this.prefix}:channels`
  }

  /** The lease on an agent id (a string with a TTL): at most one live agent per id. */
  agentLease(agentId: string): string {
    return `${this.prefix}:lease:agent:${agentId}`
  }

  /** Live agents: agent id → last heartbeat JSON (a hash). */
  agents(): string {
    return `${this.prefix}:agents`
  }

  /**
   * The head of every pub/sub name of this prefix and database: `<prefix>:<kind>@<db>:`. Pub/sub
   * names are global to a server (databases do not separate them), so the database is in the name;
   * and since a prefix can never hold `@`, the first `@` ends the prefix: `a:live@0:*` can match no
   * name of prefix `a:live` (`a:live:live@0:…`) nor of database 5 (`a:live@5:…`).
   */
  private pubsub(kind: string): string {
    return `${this.prefix}:${kind}@${this.db}:`
  }

  /**
   * Pub/sub channel for live delivery of a channel's events. On a cluster (`sharded`), a shard
   * channel under the channel's hash tag: `<prefix>:live@0:{<channel>}`.
   */
  live(channel: string): string {
    return this.pubsub('live') + (this.sharded ? `{${channel}}` : channel)
  }

  /**
   * On a cluster: the shard channel that rings once per publish (and republish) on a channel, telling
   * its durable consumers to read its stream (they cannot block on streams of several slots at once).
   * Under the channel's hash tag, like its keys.
   */
  bell(channel: string): string {
    return `${this.pubsub('bell')}{${channel}}`
  }

  /** Channel name from a bell name; undefined when the name is not one of ours. */
  channelOfBell(bell: string): string | undefined {
    const head = this.pubsub('bell')
    return bell.startsWith(head) && bell.endsWith('}') ? bell.slice(head.length + 1, -1) : undefined
  }

  /** Pub/sub pattern covering the live channels a glob can match (a superset; matched exactly client-side). */
  livePattern(pattern: string): string {
    const redisGlob = pattern.replace(/\*\*|>$/g, '*')
    return this.pubsub('live') + redisGlob
  }

  /** Channel name from a live pub/sub channel name; undefined when the name is not one of ours. */
  channelOfLive(liveChannel: string): string | undefined {
    const head = this.pubsub('live')
    if (!liveChannel.startsWith(head)) return undefined
    if (!this.sharded) return liveChannel.slice(head.length)
    return liveChannel.endsWith('}') ? liveChannel.slice(head.length + 1, -1) : undefined
  }

  /** Pub/sub channel on which replies to a request with this correlation id arrive. */
  reply(correlationId: string): string {
    return this.pubsub('reply') + correlationId
  }

  /** Client name of live subscriber connections (counted by `metrics` via CLIENT LIST). */
  subscriberClientName(): string {
    return `${this.prefix}:sub@${this.db}`
  }
}

/** Prefix rule: keeps key names and pub/sub patterns unambiguous. */
export const PREFIX_PATTERN = /^[A-Za-z0-9_-]+(:[A-Za-z0-9_-]+)*$/
