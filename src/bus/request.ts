import type {RedisClient} from './cluster.js'
import {TimeoutError} from './errors.js'
import {parseEnvelope, type RaptorEvent} from './envelope.js'
import type {Keys} from './keys.js'
import {setLongTimeout, type LongTimer} from './timers.js'

/**
 * Request/response over the bus: a requester listens on `P:reply:<correlationId>` before it
 * publishes, and the first valid reply settles the request. Replies are live only (never persisted on
 * a channel, so a handler can never consume its own replies in a loop).
 */
export class Replies {
  private readonly waiting = new Map<string, (event: RaptorEvent) => void>()
  private readonly listener = (channel: string, message: string) => {
    const resolve = this.waiting.get(channel)
    if (!resolve) return
    const parsed = parseEnvelope(message)
    if (parsed.ok) resolve(parsed.event)
  }

  constructor(
    private readonly conn: RedisClient,
    private readonly keys: Keys,
  ) {
    conn.on('message', this.listener)
  }

  /** Subscribes to the reply channel, runs `send`, and resolves with the first reply. */
  async request(
    correlationId: string,
    timeoutMs: number,
    send: () => Promise<unknown>,
  ): Promise<RaptorEvent> {
    const channel = this.keys.reply(correlationId)
    let timer: LongTimer | undefined
    const reply = new Promise<RaptorEvent>((resolve, reject) => {
      this.waiting.set(channel, resolve)
      timer = setLongTimeout(
        () =>
          reject(
            new TimeoutError(
              `no reply to request ${correlationId} within ${timeoutMs} ms: is a handler consuming that channel?`,
              {correlationId},
            ),
          ),
        timeoutMs,
      )
    })
    try {
      await this.conn.subscribe(channel)
      await send()
      return await reply
    } finally {
      timer?.clear()
      this.waiting.delete(channel)
      await this.conn.unsubscribe(channel).catch(() => {})
    }
  }

  close(): void {
    this.conn.off('message', this.listener)
  }
}
