import {DLQ_RETENTION_MS, type DlqReason} from './channels.js'
import type {Keys} from './keys.js'
import {scriptPipeline, type ScriptPipeline, type ScriptedRedis} from './scripts.js'

type Arg = string | number

declare module './scripts.js' {
  interface ScriptCommands {
    /** lua/ack.lua: returns the ids that were not acknowledged (owned by another consumer). */
    raptorAck(...args: Arg[]): Promise<string[]>
    /** lua/retry.lua: 0, -1 when the entry was lost, 1 when its history was trimmed and no copy is held. */
    raptorRetry(...args: Arg[]): Promise<number>
    /** lua/begin.lua: {attempt, trimmed}, attempt -1 when the entry was lost. */
    raptorBegin(...args: Arg[]): Promise<[number, number]>
    /** lua/dead-letter.lua: returns the DLQ entry id, or null when the entry was lost. */
    raptorDeadLetter(...args: Arg[]): Promise<string | null>
    /** lua/touch.lua: {lost ids, trimmed ids with no held copy}. */
    raptorTouch(...args: Arg[]): Promise<[string[], string[]]>
    /** lua/hold.lua: 1 stored, 0 nothing to do, -1 lost. */
    raptorHold(...args: Arg[]): Promise<number>
    /** lua/claim.lua: {next scan start, claimed [id, count, fields, owner], gone [id, owner]}. */
    raptorClaim(...args: Arg[]): Promise<[string, [string, number, string[], string][], [string, string][]]>
    /** lua/forget.lua: number of consumers removed. */
    raptorForget(...args: Arg[]): Promise<number>
  }
}

/** A stream a consumer reads: a channel stream, or the handler's requeue stream of a channel. */
export interface Source {
  channel: string
  stream: string
  /** True for the handler's requeue stream (entries are deleted once acknowledged). */
  requeue: boolean
}

/** What a dead letter records beside the entry itself. */
export interface DeadLetter {
  /** The envelope JSON (the consumer's own copy), or the raw entry as JSON when it was not an envelope. */
  json: string
  reason: DlqReason
  error: string
  attempts: number
  /** Times the event was requeued before. */
  requeues: string
  /** Whether the handler ran (the attempt counts as delivered and failed). */
  ran: boolean
}

/** An entry taken over from another consumer. */
export interface Claimed {
  id: string
  /** Attempts that started so far (the delivery count). */
  count: number
  fields: string[]
  /** The consumer that held it. */
  from: string
}

/** The result of one claim call. */
export interface ClaimResult {
  /** Where the next scan of the pending list starts (`-` once it wrapped). */
  next: string
  claimed: Claimed[]
  /** Entries whose history was trimmed while their silent owner held them: dead-lettered from its copy. */
  gone: {id: string; owner: string}[]
}

/**
 * The consume scripts of one consumer, one typed method each (in the manner of BullMQ's `Scripts`):
 * KEYS and ARGV are built here only. Every script is fenced on this consumer's ownership of the entry
 * in the group's pending-entries list.
 */
export class ConsumeScripts {
  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: Keys,
    readonly group: string,
    readonly consumer: string,
  ) {}

  private held(s: Source): string {
    return this.keys.heldCopies(s.channel, this.group, s.requeue)
  }

  /** The channel's and the handler's counter hashes. */
  private counters(s: Source): [string, string] {
    return [this.keys.stats(s.channel), this.keys.handlerStats(s.channel, this.group)]
  }

  /** A pipeline to queue several calls on (acks of several streams, keep-alives). */
  pipeline(): ScriptPipeline {
    return scriptPipeline(this.redis)
  }

  /** Queues a fenced ack of ids of one stream; the reply is the ids not acknowledged. */
  ack(pipeline: ScriptPipeline, s: Source, ids: string[], counted: boolean): void {
    pipeline.raptorAck(
      s.stream,
      ...this.counters(s),
      this.held(s),
      this.group,
      this.consumer,
      s.requeue ? '1' : '0',
      counted ? '1' : '0',
      ...ids,
    )
  }

  /** Acks one entry now (not batched); false when this consumer no longer owns it. */
  async ackNow(s: Source, id: string): Promise<boolean> {
    const pipeline = this.pipeline()
    this.ack(pipeline, s, [id], true)
    const [[error, lost]] = ((await pipeline.exec()) ?? [[new Error('ack not sent'), null]]) as [
      Error | null,
      string[],
    ][]
    if (error) throw error
    return lost.length === 0
  }

  /** Dead-letters an entry (fenced, atomic with its ack); false when this consumer no longer owns it. */
  async deadLetter(s: Source, id: string, dead: DeadLetter): Promise<boolean> {
    const parked = await this.redis.raptorDeadLetter(
      s.stream,
      this.keys.dlq(s.channel, dead.reason),
      ...this.counters(s),
      this.held(s),
      this.group,
      this.consumer,
      id,
      dead.json,
      dead.reason,
      s.channel,
      dead.error,
      dead.attempts,
      DLQ_RETENTION_MS,
      dead.requeues,
      dead.ran ? '1' : '0',
      s.requeue ? '1' : '0',
    )
    return parked !== null
  }

  /** Records a failed attempt that will be retried. */
  async retry(s: Source, id: string): Promise<'ok' | 'lost' | 'trimmed'> {
    const r = await this.redis.raptorRetry(
      s.stream,
      ...this.counters(s),
      this.held(s),
      this.group,
      this.consumer,
      id,
    )
    return r === -1 ? 'lost' : r === 1 ? 'trimmed' : 'ok'
  }

  /** Starts an attempt that is not a first read: the delivery count grows by one (unless trimmed). */
  async begin(s: Source, id: string): Promise<{attempt: number; trimmed: boolean} | undefined> {
    const [attempt, trimmed] = await this.redis.raptorBegin(
      s.stream,
      this.held(s),
      this.group,
      this.consumer,
      id,
    )
    return attempt < 0 ? undefined : {attempt: Number(attempt), trimmed: Number(trimmed) === 1}
  }

  /** Queues a keep-alive of entries of one stream; the reply is {lost, trimmed with no copy}. */
  touch(pipeline: ScriptPipeline, s: Source, ids: string[]): void {
    pipeline.raptorTouch(s.stream, this.held(s), this.group, this.consumer, ...ids)
  }

  /** Stores this consumer's copy of an entry whose history was trimmed while it held it. */
  async hold(s: Source, id: string, json: string, requeues: string): Promise<number> {
    return this.redis.raptorHold(
      s.stream,
      this.held(s),
      ...this.counters(s),
      this.group,
      this.consumer,
      id,
      json,
      requeues,
    )
  }

  /** Takes over up to `want` entries other consumers left idle for `minIdleMs`. */
  async claim(s: Source, from: string, want: number, minIdleMs: number, scan = 100): Promise<ClaimResult> {
    const [next, claimed, gone] = await this.redis.raptorClaim(
      s.stream,
      this.held(s),
      this.keys.dlq(s.channel, 'max_retries_exceeded'),
      ...this.counters(s),
      this.group,
      this.consumer,
      minIdleMs,
      from,
      want,
      scan,
      s.channel,
      DLQ_RETENTION_MS,
      s.requeue ? '1' : '0',
    )
    return {
      next,
      claimed: claimed.map(([id, count, fields, from]) => ({id, count: Number(count), fields, from})),
      gone: gone.map(([id, owner]) => ({id, owner})),
    }
  }

  /** Forgets consumers of the group on a stream that hold nothing and were silent for `idleMs`. */
  forget(s: Source, idleMs: number): Promise<number> {
    return this.redis.raptorForget(s.stream, this.group, idleMs)
  }
}
