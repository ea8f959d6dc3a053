import type {RaptorBus} from '../bus/bus.js'
import {channelMatcher} from '../bus/channels.js'
import type {RaptorEvent} from '../bus/envelope.js'
import {invokeHandler, type HandlerLogger} from '../bus/handler.js'
import type {LoadedHandler} from './plugins.js'

/** What `replay --plugin` did. */
export interface PluginReplayResult {
  /** Events read from history. */
  replayed: number
  /** Handler runs that succeeded, threw or timed out (an event runs once per matching handler). */
  succeeded: number
  failed: number
  /** The first failures, for the report. */
  failures: {handler: string; eventId: string; error: string}[]
}

/**
 * Runs plugin handlers over history (the seed's `replay_channel(handler)`): each event once per
 * handler whose channels and types match it, in publish order, with the handler's timeout. Nothing is
 * acknowledged or dead-lettered — this is a replay, not consumption — but `ctx.publish` and
 * `ctx.reply` are real.
 */
export async function replayThroughHandlers(
  bus: RaptorBus,
  handlers: LoadedHandler[],
  events: AsyncIterable<RaptorEvent>,
  log: (handler: string) => HandlerLogger,
  onEvent?: () => void,
): Promise<PluginReplayResult> {
  const result: PluginReplayResult = {replayed: 0, succeeded: 0, failed: 0, failures: []}
  const matchers = handlers.map((h) => h.channels.map(channelMatcher))
  for await (const event of events) {
    result.replayed++
    for (const [i, handler] of handlers.entries()) {
      if (!matchers[i].some((m) => m(event.channel))) continue
      if (handler.types && !handler.types.includes(event.type)) continue
      const outcome = await invokeHandler(handler, event, {
        publish: (input) => bus.publish({source: `${handler.name}-replay`, ...input}),
        reply: (payload, options = {}) => bus.reply(event, payload, options),
        attempt: 1,
        channel: event.channel,
        handler: handler.name,
        log: log(handler.name),
      })
      if (outcome.kind === 'ok') {
        result.succeeded++
        continue
      }
      result.failed++
      const error = outcome.kind === 'error' ? outcome.error : `exceeded timeoutMs ${handler.timeoutMs}`
      if (result.failures.length < 20) result.failures.push({handler: handler.name, eventId: event.id, error})
    }
    onEvent?.()
  }
  return result
}
