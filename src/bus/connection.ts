import {formatWithOptions} from 'node:util'

import createDebug from 'debug'
import {Redis, type RedisOptions} from 'ioredis'

import {ConnectionError, InvalidInputError} from './errors.js'
import {tlsDiagnosis, tlsFor, type TlsOptions} from './tls.js'
import {parseRedisUrl, redactText, redactUrl, secretsOf, type RedisUrl} from './url.js'

export {redactUrl} from './url.js'

/** Default Redis URL. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379/0'

/** A connection of the bus went down, or came back. */
export interface ConnectionChange {
  /** `lost`: the connection dropped (it reconnects by itself); `reconnected`: it is back. */
  state: 'lost' | 'reconnected'
  /** Which connection (its client name, e.g. `raptor:sub`). */
  connection: string
  /** Unique per connection within the process (client names may repeat). */
  connectionId: number
  /** Why it was lost, when known (never with a password in it). */
  reason?: string
}

/** How to reach Redis. */
export interface ConnectionOptions {
  /**
   * `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. A password may hold `/`
   * unencoded; `?password=` works too. A malformed URL, an unsupported scheme or a database the
   * server lacks is an `InvalidInputError` before anything is sent.
   * @defaultValue `redis://127.0.0.1:6379/0`
   */
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
   * A command with no reply for this long fails with a ConnectionError (a frozen Redis). One-shot
   * use (`reconnect: false`) defaults to 5000; long-lived connections wait for the reconnect.
   * @defaultValue 5000 when `reconnect` is false, else none
   */
  commandTimeoutMs?: number
  /**
   * Reconnect after the connection drops (a Redis restart). Long-lived processes want this; one-shot
   * commands fail at once instead. @defaultValue true
   */
  reconnect?: boolean
  /**
   * TLS options for a `rediss://` URL: `ca` (PEM) to trust instead of the system CAs, a client
   * `cert` and `key` (PEM) for servers that require one (mutual TLS), and the `servername` to check
   * the certificate against when it is not the host. `rediss://` alone uses the system CAs. Given
   * with a plain `redis://` URL, they are an `InvalidInputError` (never a silent plain connection).
   */
  tls?: TlsOptions
  /**
   * Told when the link to Redis is lost and when it is back (long-lived connections only; a one-shot
   * connection fails instead). A bus folds all its connections into one link: `lost` when the first
   * drops, `reconnected` when every one is back.
   */
  onConnectionChange?: (change: ConnectionChange) => void
}

/** Passwords seen in URLs, scrubbed from every `debug` line (DEBUG=ioredis:* prints AUTH). */
const debugSecrets = new Set<string>()
let debugGuarded = false

/**
 * Scrubs these secrets (and any URL password) from everything the `debug` package prints, which is
 * what `DEBUG=ioredis:*` and `DEBUG=oclif:*` write with: ioredis logs `auth([…])`, oclif its argv.
 */
export function guardDebugOutput(secrets: Iterable<string>): void {
  for (const s of secrets) debugSecrets.add(s)
  if (debugGuarded) return
  debugGuarded = true
  const original = createDebug.log
  const options = (createDebug as unknown as {inspectOpts?: object}).inspectOpts ?? {}
  createDebug.log = function (this: unknown, ...args: unknown[]) {
    return original.call(this, '%s', redactText(formatWithOptions(options, ...args), debugSecrets))
  }
}

/** Connections being closed on purpose: their `close` is not a loss. */
const closing = new WeakSet<Redis>()

function describe(error: unknown, secrets: string[]): string {
  const e = error as NodeJS.ErrnoException
  const text =
    e?.message && e.code && !e.message.includes(e.code)
      ? `${e.code}: ${e.message}`
      : (e?.message ?? e?.code ?? String(error))
  return redactText(text, secrets)
}

/** Wraps a failure to reach Redis in a ConnectionError with a hint of what to do. */
export function connectionError(url: string, error: unknown, diagnosis?: string): ConnectionError {
  const safeUrl = redactUrl(url)
  const reason = describe(error, secretsOf(url))
  if (diagnosis) return new ConnectionError(`${diagnosis} (${safeUrl})`, {url: safeUrl}, {cause: error})
  const auth = /NOAUTH|WRONGPASS|invalid password|invalid username-password|AUTH/i.test(reason)
  const hint = auth
    ? 'check the user and password in --redis-url / REDIS_URL'
    : 'start redis-server there, or point --redis-url / REDIS_URL at a reachable Redis'
  return new ConnectionError(
    `cannot reach Redis at ${safeUrl} (${reason}): ${hint}`,
    {url: safeUrl},
    {cause: error},
  )
}

/** ioredis options for a parsed URL (the URL itself never reaches ioredis, so its errors hold no password). */
function redisOptions(url: RedisUrl, tlsOptions: TlsOptions | undefined): RedisOptions {
  const {host, port} = url.endpoints[0]
  const tls = tlsFor(url, tlsOptions)
  return {
    host,
    port,
    username: url.username,
    password: url.password,
    ...(url.family ? {family: url.family} : {}),
    ...(tls ? {tls} : {}),
  }
}

/** Switches to the URL's database, refusing one the server does not have (nothing written yet). */
async function selectDb(redis: Redis, url: RedisUrl): Promise<void> {
  if (url.db === 0) return
  try {
    await redis.select(url.db)
  } catch (error) {
    const {host, port} = url.endpoints[0]
    const why = (error as Error).message
    throw new InvalidInputError(
      /out of range|invalid DB/i.test(why)
        ? `database ${url.db} does not exist on the Redis at ${host}:${port} (${why}): use one from 0 to the server's "databases" setting minus 1`
        : `cannot use database ${url.db} on the Redis at ${host}:${port} (${why}): use database 0`,
      {url: url.redacted, db: url.db},
    )
  }
  // Reconnections select it again from the start.
  redis.options.db = url.db
}

let connectionIds = 0

/** Reports losses and recoveries of one connection, once per transition. */
function watch(redis: Redis, name: string, report: (change: ConnectionChange) => void): void {
  const connectionId = ++connectionIds
  let down = false
  let lastError: unknown
  redis.on('error', (error) => (lastError = error))
  redis.on('close', () => {
    if (down || closing.has(redis)) return
    // A connection closed on purpose (quit/disconnect) ends; one that was lost reconnects.
    setImmediate(() => {
      if (down || closing.has(redis) || redis.status === 'end') return
      down = true
      const reason = lastError ? describe(lastError, []) : 'connection closed'
      report({state: 'lost', connection: name, connectionId, reason})
    })
  })
  redis.on('ready', () => {
    if (!down) return
    down = false
    lastError = undefined
    report({state: 'reconnected', connection: name, connectionId})
  })
}

/**
 * Opens one ioredis connection and waits until it is ready. The first connection fails within
 * `connectTimeoutMs`; once up, a `reconnect` connection retries forever with capped backoff, and a
 * one-shot connection fails any command Redis leaves unanswered for `commandTimeoutMs`.
 * @throws InvalidInputError for a malformed URL or a database the server lacks (nothing sent)
 * @throws ConnectionError when Redis cannot be reached (naming a TLS mismatch as such)
 */
export async function openConnection(
  options: ConnectionOptions,
  clientName?: string,
  extra: RedisOptions = {},
): Promise<Redis> {
  const timeout = options.connectTimeoutMs ?? 3000
  const oneShot = options.reconnect === false
  if (options.redis) {
    // A client of the application's: its own options (auth, TLS, retries), one more connection.
    const copy = await duplicate(options.redis, timeout, {...extra, connectionName: clientName})
    if (options.onConnectionChange && !oneShot) watch(copy, clientName ?? 'redis', options.onConnectionChange)
    return copy
  }
  const raw = options.redisUrl ?? DEFAULT_REDIS_URL
  const url = parseRedisUrl(raw)
  guardDebugOutput(secretsOf(raw))
  const commandTimeout = options.commandTimeoutMs ?? (oneShot ? 5000 : undefined)
  let everReady = false
  const redis = new Redis({
    ...redisOptions(url, options.tls),
    lazyConnect: true,
    connectTimeout: timeout,
    connectionName: clientName,
    enableAutoPipelining: false,
    maxRetriesPerRequest: oneShot ? 0 : null,
    ...(commandTimeout ? {commandTimeout} : {}),
    retryStrategy: (times) => {
      if (!everReady || oneShot) return null
      return Math.min(50 * 2 ** Math.min(times, 6), 2000)
    },
    ...extra,
  })
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
    closing.add(redis)
    redis.disconnect()
    const cause = lastError ?? error
    throw connectionError(raw, cause, await tlsDiagnosis(url, cause, options.tls))
  } finally {
    clearTimeout(timer)
  }
  try {
    await selectDb(redis, url)
  } catch (error) {
    closing.add(redis)
    redis.disconnect()
    throw error
  }
  if (options.onConnectionChange && !oneShot) watch(redis, clientName ?? 'redis', options.onConnectionChange)
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
  closing.add(conn)
  if (conn.status !== 'ready') {
    conn.disconnect()
    return
  }
  let timer: NodeJS.Timeout | undefined
  await Promise.race([conn.quit().catch(() => {}), new Promise((r) => (timer = setTimeout(r, timeoutMs)))])
  clearTimeout(timer)
  conn.disconnect()
}
