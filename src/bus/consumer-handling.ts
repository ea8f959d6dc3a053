import {setTimeout as delay} from 'node:timers/promises'

import type {DlqReason} from './channels.js'
import type {AckBatcher} from './consumer-acks.js'
import type {IsolationGate} from './consumer-gate.js'
import type {ConsumeScripts, DeadLetter, Source} from './consumer-scripts.js'
import {
  checkPayload,
  formatIssues,
  type PayloadSchema,
  type PublishInput,
  type RaptorEvent,
} from './envelope.js'
import {Abortable, backoffDelay, invokeHandler, type HandlerLogger, type ResolvedHandler} from './handler.js'
import {toEntry} from './history.js'

/** How an attempt (or an event) ended, reported to `onOutcome`. */
export interface ConsumeOutcome {
  handler: string
  channel: string
  eventId?: string
  type?: string
  attempt: number
  outcome: 'acked' | 'retrying' | 'dead-lettered' | 'lost' | 'skipped'
  reason?: DlqReason
  error?: string
  /** What else happened to the event: e.g. its history was trimmed while it was pending. */
  note?: string
  /** How long the handler ran in this attempt (0 when it did not run). */
  durationMs: number
  /** True when the handler ran in this attempt (false: e.g. a schema violation never reached it). */
  ran?: boolean
  /** Next retry in ms (outcome `retrying`). */
  retryInMs?: number
}

/** One entry this consumer holds, from the read (or the takeover) until its outcome. */
export interface Flight {
  source: Source
  id: string
  fields: string[]
  /** Attempts started so far (the delivery count in Redis, unless the history was trimmed). */
  attempt: number
  /** True until the first run of an entry read fresh (XREADGROUP has counted that attempt already). */
  fresh: boolean
  /** Taken over from a consumer that died or stalled holding it: every attempt runs alone. */
  isolated: boolean
  abortable: Abortable
  /** Set when another consumer took the entry over (seen by the keep-alive). */
  lost: boolean
  /** Set when its history was trimmed while held; `held` once the copy is stored in Redis. */
  trimmed: boolean
  held: boolean
}

/** What handlers reach through their bus: payload schemas, publish, reply. */
export interface BusAccess {
  schemas: Record<string, PayloadSchema>
  publish(input: PublishInput): Promise<string>
  reply(
    request: RaptorEvent,
    payload: Record<string, unknown>,
    options: {type?: string; source: string},
  ): Promise<void>
}

/** What handling needs from its consumer. */
export interface HandlingContext extends BusAccess {
  handler: ResolvedHandler
  consumerId: string
  scripts: ConsumeScripts
  acks: AckBatcher
  gate: IsolationGate
  logger: HandlerLogger
  report(outcome: Omit<ConsumeOutcome, 'handler'>): void
  /** False when nobody listens to outcomes (no report closures are made on the hot path then). */
  reportsOutcomes: boolean
  /** Aborted when the consumer stops taking work: waits for the gate give up. */
  stopping: AbortSignal
  /** Aborted when the consumer stops hard: backoffs end. */
  hardStop: AbortSignal
}

const TRIMMED_NOTE = 'history trimmed by retention while pending; this consumer held a copy'

function field(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]
  return undefined
}

const errorMessage = (error: unknown) => (error instanceof Error ? error.message : String(error))

/**
 * The outcome decision of one entry: checks, attempts under the isolation gate, retries with backoff,
 * and the one dead-letter path. An event that succeeds is acked (in a batch; alone, and awaited, when
 * it runs isolated); one that fails is retried, then dead-lettered; a stale consumer's outcome is
 * refused by the fenced scripts and reported as lost.
 */
export class Handling {
  constructor(private readonly ctx: HandlingContext) {}

  /** Handles one held entry to its outcome. */
  async run(f: Flight): Promise<void> {
    const {handler} = this.ctx
    const entry = toEntry(f.source.channel, f.id, f.fields)
    const base = {channel: f.source.channel, eventId: entry.event?.id, type: entry.event?.type}
    if (!entry.event) {
      const error = `not a valid envelope: ${formatIssues(entry.issues)}`
      return this.deadLetter(f, base, {
        json: JSON.stringify(entry.raw),
        reason: 'schema_violation',
        error,
        ran: false,
      })
    }
    const event = entry.event
    if (handler.types && !handler.types.includes(event.type)) {
      this.ctx.acks.ack(f.source, f.id, false)
      this.ctx.report({...base, attempt: f.attempt, outcome: 'skipped', durationMs: 0})
      return
    }
    try {
      checkPayload(event, this.ctx.schemas[event.type])
    } catch (error) {
      return this.deadLetter(f, base, {reason: 'schema_violation', error: errorMessage(error), ran: false})
    }
    // A crash always gets one run alone, even with maxRetries 0: the crash may have been a neighbour's.
    if (f.isolated && f.attempt >= Math.max(handler.maxRetries + 1, 2)) {
      const error = `gave up after ${f.attempt} attempts that never finished (its consumer crashed or stalled each time, the last ones running it alone)`
      return this.deadLetter(f, base, {reason: 'max_retries_exceeded', error, ran: false})
    }
    for (;;) {
      const entered = f.isolated
        ? await this.ctx.gate.enterAlone(this.ctx.stopping)
        : this.ctx.gate.tryEnter() || (await this.ctx.gate.enter(this.ctx.stopping))
      // Stopping before it ran: the entry stays pending and another consumer takes it over.
      if (!entered) return
      let inGate = true
      const leave = () => {
        if (!inGate) return
        inGate = false
        if (f.isolated) this.ctx.gate.release()
        else this.ctx.gate.leave()
      }
      let backoffMs: number
      try {
        if (!f.fresh) {
          const begun = await this.ctx.scripts.begin(f.source, f.id)
          if (!begun)
            return this.lost(f, base, 0, 'another consumer took it over before this attempt started')
          f.attempt = begun.trimmed ? f.attempt + 1 : begun.attempt
          if (begun.trimmed) await this.hold(f)
        }
        f.fresh = false
        const attempt = f.attempt
        const t0 = Date.now()
        const result = await this.attempt(f, event)
        const durationMs = Date.now() - t0
        // A shared place is given back as soon as the handler is done; an isolated run keeps the gate
        // until its outcome is written, so that the next suspect cannot crash the process before.
        if (!f.isolated) leave()
        if (f.lost) return this.lost(f, base, durationMs, 'another consumer took it over while it ran')
        if (result.kind === 'stopped')
          return this.lost(f, base, durationMs, 'the consumer stopped while it ran')
        if (result.kind === 'ok') {
          if (f.isolated) return await this.ackedAlone(f, base, attempt, durationMs)
          return this.ctx.acks.ack(f.source, f.id, true, this.ackReport(f, base, attempt, durationMs))
        }
        if (result.kind === 'timeout') {
          const error = `handler exceeded timeoutMs ${handler.timeoutMs}`
          return await this.deadLetter(f, base, {reason: 'processing_timeout', error, ran: true}, durationMs)
        }
        if (attempt > handler.maxRetries) {
          return await this.deadLetter(
            f,
            base,
            {reason: 'max_retries_exceeded', error: result.error, ran: true},
            durationMs,
          )
        }
        const retry = await this.ctx.scripts.retry(f.source, f.id)
        if (retry === 'lost')
          return this.lost(f, base, durationMs, 'another consumer took it over', result.error)
        if (retry === 'trimmed') await this.hold(f)
        backoffMs = backoffDelay(handler.backoff, attempt)
        this.ctx.report({
          ...base,
          attempt,
          outcome: 'retrying',
          error: result.error,
          durationMs,
          ran: true,
          retryInMs: backoffMs,
        })
      } finally {
        leave()
      }
      await delay(backoffMs, undefined, {signal: this.ctx.hardStop}).catch(() => {})
      if (this.ctx.hardStop.aborted) return
    }
  }

  /** The entry's history was trimmed while held: store this consumer's copy in Redis (once). */
  async hold(f: Flight): Promise<void> {
    f.trimmed = true
    if (f.held) return
    f.held = true
    const stored = await this.ctx.scripts.hold(
      f.source,
      f.id,
      field(f.fields, 'e') ?? '',
      field(f.fields, 'requeues') ?? '0',
    )
    if (stored < 0) f.held = false
  }

  /** Runs the handler once, with the timeout and the abort signal. */
  private attempt(f: Flight, event: RaptorEvent) {
    const {ctx} = this
    f.abortable = new Abortable()
    return invokeHandler(
      ctx.handler,
      event,
      {
        publish: (input) => ctx.publish({source: ctx.consumerId, ...input}),
        reply: (payload, options = {}) => ctx.reply(event, payload, {...options, source: ctx.consumerId}),
        attempt: f.attempt,
        channel: f.source.channel,
        handler: ctx.handler.name,
        log: ctx.logger,
      },
      f.abortable,
    )
  }

  /** Reports an ack's outcome once Redis has answered. */
  private ackReport(f: Flight, base: Partial<ConsumeOutcome>, attempt: number, durationMs: number) {
    if (!this.ctx.reportsOutcomes) return undefined
    return (acked: boolean) =>
      acked
        ? this.ctx.report({
            ...base,
            channel: f.source.channel,
            attempt,
            outcome: 'acked',
            note: f.trimmed ? TRIMMED_NOTE : undefined,
            durationMs,
            ran: true,
          })
        : this.lost(f, base, durationMs, 'another consumer took it over before the ack')
  }

  /** Acks an isolated run at once and waits for Redis, so that the next suspect runs after it. */
  private async ackedAlone(f: Flight, base: Partial<ConsumeOutcome>, attempt: number, durationMs: number) {
    const acked = await this.ctx.scripts.ackNow(f.source, f.id)
    this.ackReport(f, base, attempt, durationMs)?.(acked)
  }

  /** The one dead-letter path: parks the entry (fenced, atomic with its ack) and reports it. */
  private async deadLetter(
    f: Flight,
    base: Partial<ConsumeOutcome>,
    dead: Pick<DeadLetter, 'reason' | 'error' | 'ran'> & {json?: string},
    durationMs = 0,
  ): Promise<void> {
    const parked = await this.ctx.scripts.deadLetter(f.source, f.id, {
      json: dead.json ?? field(f.fields, 'e') ?? '{}',
      reason: dead.reason,
      error: dead.error,
      attempts: f.attempt,
      requeues: field(f.fields, 'requeues') ?? '0',
      ran: dead.ran,
    })
    if (!parked)
      return this.lost(
        f,
        base,
        durationMs,
        'another consumer took it over before it was dead-lettered',
        dead.error,
      )
    this.ctx.report({
      ...base,
      channel: f.source.channel,
      attempt: f.attempt,
      outcome: 'dead-lettered',
      reason: dead.reason,
      error: dead.error,
      note: f.trimmed ? TRIMMED_NOTE : undefined,
      durationMs,
      ran: dead.ran,
    })
  }

  private lost(
    f: Flight,
    base: Partial<ConsumeOutcome>,
    durationMs: number,
    why: string,
    error?: string,
  ): void {
    this.ctx.report({
      ...base,
      channel: f.source.channel,
      attempt: f.attempt,
      outcome: 'lost',
      error,
      note: `not acknowledged here: ${why}`,
      durationMs,
    })
  }
}
