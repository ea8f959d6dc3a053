import {InvalidInputError} from '../bus/errors.js'
import {
  buildEnvelope,
  checkEnvelope,
  formatIssues,
  serializeData,
  type PublishInput,
  type RaptorEvent,
} from '../bus/envelope.js'
import {channelMatcher} from '../bus/channels.js'
import {invokeHandler} from '../bus/handler.js'
import type {LoadedHandler} from './plugins.js'

/** What one handler did with the test event. */
export interface TestRunResult {
  handler: string
  plugin: string
  outcome: 'succeeded' | 'threw' | 'timed out' | 'skipped'
  error?: string
  durationMs: number
  /** Events it published through ctx.publish (not sent anywhere). */
  published: RaptorEvent[]
  /** Replies it sent through ctx.reply (not sent anywhere). */
  replies: RaptorEvent[]
  logs: {level: string; message: string; fields?: Record<string, unknown>}[]
}

/**
 * Reads a test event: a full envelope, or a short form `{channel, type, payload|data, …}` that is
 * completed into one.
 */
export function toTestEvent(value: unknown, origin: string): RaptorEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidInputError(`event in ${origin} must be a JSON object`)
  }
  const v = value as Record<string, unknown>
  if (v.specversion !== undefined) {
    const parsed = checkEnvelope(v)
    if (!parsed.ok)
      throw new InvalidInputError(
        `event in ${origin} is not a valid envelope: ${formatIssues(parsed.issues)}`,
      )
    return parsed.event
  }
  const event = buildEnvelope(
    {
      channel: v.channel as string,
      type: v.type as string,
      payload: (v.payload ?? v.data ?? {}) as Record<string, unknown>,
      priority: v.priority as PublishInput['priority'],
      source: v.source as string | undefined,
      correlationId: (v.correlationId ?? v.correlationid) as string | undefined,
    },
    'raptor-agent-test',
  )
  // The handler sees the payload as a consumer would: as it reads back from JSON.
  serializeData(event.data, event.channel)
  return event
}

/**
 * Runs each handler that would receive the event once, with a context whose publish and reply
 * are recorded instead of sent: nothing is read from or written to Redis.
 */
export async function runHandlersOnce(
  handlers: LoadedHandler[],
  event: RaptorEvent,
): Promise<TestRunResult[]> {
  const results: TestRunResult[] = []
  for (const handler of handlers) {
    const base = {handler: handler.name, plugin: handler.plugin, published: [], replies: [], logs: []}
    const matches = handler.channels.some((c) => channelMatcher(c)(event.channel))
    if (!matches || (handler.types && !handler.types.includes(event.type))) {
      results.push({...base, outcome: 'skipped', durationMs: 0})
      continue
    }
    const result: TestRunResult = {...base, outcome: 'succeeded', durationMs: 0}
    const log = (level: string) => (message: string, fields?: Record<string, unknown>) =>
      void result.logs.push({level, message, fields})
    const started = process.hrtime.bigint()
    const outcome = await invokeHandler(handler, event, {
      publish: async (input) => {
        const published = buildEnvelope({source: `${handler.name}-test`, ...input}, `${handler.name}-test`)
        result.published.push(published)
        return published.id
      },
      reply: async (payload, options = {}) => {
        if (!event.correlationid)
          throw new InvalidInputError(`event ${event.id} carries no correlationid: nothing to reply to`)
        result.replies.push(
          buildEnvelope(
            {
              channel: event.channel,
              type: options.type ?? `${event.type}.reply`,
              payload,
              correlationId: event.correlationid,
            },
            `${handler.name}-test`,
          ),
        )
      },
      attempt: 1,
      channel: event.channel,
      handler: handler.name,
      log: {info: log('info'), warn: log('warn'), error: log('error')},
    })
    result.durationMs = Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100
    if (outcome.kind === 'error') Object.assign(result, {outcome: 'threw', error: outcome.error})
    if (outcome.kind === 'timeout')
      Object.assign(result, {outcome: 'timed out', error: `exceeded timeoutMs ${handler.timeoutMs}`})
    results.push(result)
  }
  return results
}
