import {Redis, type RedisOptions} from 'ioredis'

import {ConnectionError, InvalidInputError} from './errors.js'

/** Default Redis URL. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379/0'

/** How to reach Redis. */
export interface ConnectionOptions {
  /** `redis://[user:password@]host:port/db`, or `rediss://` for TLS. @defaultValue `redis://127.0.0.1:6379/0` */
  redisUrl?: string
  /**
   * An ioredis client the application already has, instead of `redisUrl`: the bus runs its commands
   * on it and makes the other connections it needs (live subscriber, blocking reads) with
   * `duplicate()`. It must not have a `keyPrefix` (use the bus's `prefix`). `close()` leaves it open.
   */
  redis?: Redis
  /** How long the first connection may take before `connect` fails. @defaultValue 3000 */
  connectTimeoutMs?: number
  /**
   * Reconnect after the connection drops (a Redis restart). Long-lived processes want this; one-shot
   * commands fail at once instead. @defaultValue true
   */
  reconnect?: boolean
}

/** The URL with any password replaced by `***`, safe to print. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')
  }
}

function describe(error: unknown): string {
  const e = error as NodeJS.ErrnoException
  const text = e?.code ?? e?.message ?? String(error)
  // ioredis sometimes embeds the URL (with its password) in messages; never let it through.
  return text.replace(/\/\/([^:@/\s]*):[^@/\s]*@/g, '//$1:***@')
}

/** Wraps a failure to reach Redis in a ConnectionError with a hint of what to do. */
export function connectionError(url: string, error: unknown): ConnectionError {
  const reason = describe(error)
  const auth = /NOAUTH|WRONGPASS|invalid password|AUTH/i.test(reason)
  const hint = auth
    ? 'check the password in --redis-url / REDIS_URL'
    : 'start redis-server there, or point --redis-url / REDIS_URL at a reachable Redis'
  return new ConnectionError(
    `cannot reach Redis at ${redactUrl(url)} (${reason}): ${hint}`,
    {url: redactUrl(url)},
    {cause: error},
  )
}

/**
 * Opens one ioredis connection and waits until it is ready. The first connection fails within
 * `connectTimeoutMs`; once up, a `reconnect` connection retries forever with capped backoff.
 * @throws ConnectionError when Redis cannot be reached
 */
export async function openConnection(
  options: ConnectionOptions,
  clientName?: string,
  extra: RedisOptions = {},
): Promise<Redis> {
  const url = options.redis ? clientUrl(options.redis) : (options.redisUrl ?? DEFAULT_REDIS_URL)
  const timeout = options.connectTimeoutMs ?? 3000
  let everReady = false
  let redis: Redis
  try {
    // A client of the application's: its own options (auth, TLS, retries), one more connection.
    if (options.redis) return await duplicate(options.redis, timeout, {...extra, connectionName: clientName})
    redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout: timeout,
      connectionName: clientName,
      enableAutoPipelining: false,
      maxRetriesPerRequest: options.reconnect === false ? 0 : null,
      retryStrategy: (times) => {
        if (!everReady || options.reconnect === false) return null
        return Math.min(50 * 2 ** Math.min(times, 6), 2000)
      },
      ...extra,
    })
  } catch (error) {
    throw connectionError(url, error)
  }
  // Errors after a connection is up are handled by reconnecting; keep them from crashing the process.
  let lastError: unknown
  redis.on('error', (error) => {
    lastError = error
  })
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      redis.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(Object.assign(new Error('connect timed out'), {code: 'ETIMEDOUT'})),
          timeout,
        )
      }),
    ])
    everReady = true
  } catch (error) {
    redis.disconnect()
    throw connectionError(url, lastError ?? error)
  } finally {
    clearTimeout(timer)
  }
  return redis
}

/** Where a client points, for messages (no password). */
function clientUrl(client: Redis): string {
  const {host, port, db} = client.options
  return `redis://${host ?? '127.0.0.1'}:${port ?? 6379}/${db ?? 0}`
}

/** Waits until a client is ready (connecting it when it was created with `lazyConnect`). */
async function ready(client: Redis, timeoutMs: number): Promise<Redis> {
  if (client.status === 'ready') return client
  let timer: NodeJS.Timeout | undefined
  let onReady: (() => void) | undefined
  try {
    await Promise.race([
      client.status === 'wait'
        ? client.connect()
        : new Promise<void>((resolve) => client.once('ready', (onReady = resolve))),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(Object.assign(new Error('connect timed out'), {code: 'ETIMEDOUT'})),
          timeoutMs,
        )
      }),
    ])
  } catch (error) {
    throw connectionError(clientUrl(client), error)
  } finally {
    clearTimeout(timer)
    if (onReady) client.off('ready', onReady)
  }
  return client
}

/** One more connection like an application's client. */
async function duplicate(client: Redis, timeoutMs: number, extra: RedisOptions): Promise<Redis> {
  const copy = client.duplicate(extra)
  // Errors after it is up are handled by its reconnecting; keep them from crashing the process.
  copy.on('error', () => {})
  try {
    return await ready(copy, timeoutMs)
  } catch (error) {
    copy.disconnect()
    throw error
  }
}

/**
 * Takes an application's ioredis client as the bus's command connection, once it is ready.
 * @throws InvalidInputError when it has a `keyPrefix`; ConnectionError when it does not become ready
 */
export async function adoptConnection(client: Redis, options: ConnectionOptions): Promise<Redis> {
  if (client.options.keyPrefix)
    throw new InvalidInputError(
      `the ioredis client given to RaptorBus.connect has keyPrefix '${client.options.keyPrefix}': remove it and pass the bus option prefix instead`,
    )
  return ready(client, options.connectTimeoutMs ?? 3000)
}

/**
 * Closes a connection: QUIT when it is up (so that pending replies arrive first), but never waits
 * more than `timeoutMs` for a Redis that is gone.
 */
export async function closeConnection(conn: Redis, timeoutMs = 1000): Promise<void> {
  if (conn.status !== 'ready') {
    conn.disconnect()
    return
  }
  let timer: NodeJS.Timeout | undefined
  await Promise.race([conn.quit().catch(() => {}), new Promise((r) => (timer = setTimeout(r, timeoutMs)))])
  clearTimeout(timer)
  conn.disconnect()
}
