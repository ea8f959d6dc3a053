import {formatWithOptions} from 'node:util'

import createDebug from 'debug'
import {Cluster, Redis, type ClusterOptions, type RedisOptions} from 'ioredis'

import {waitUntilLoaded} from './acl.js'
import {isCluster, type RedisClient} from './cluster.js'
import {ConnectionError, InvalidInputError, RaptorError} from './errors.js'
import {sentinelDiagnosis, sentinelOptions} from './sentinel.js'
import {tlsDiagnosis, tlsFor, type TlsOptions} from './tls.js'
import {parseRedisUrl, redactText, redactUrl, secretsOf, type RedisUrl} from './url.js'

export {redactUrl} from './url.js'
export type {RedisClient} from './cluster.js'

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
   * server lacks is an `InvalidInputError` before anything is sent. For a Redis Cluster, the URL of
   * any node is enough (cluster mode is detected), or several seeds: `redis://n1:7000,n2:7001`.
   * @defaultValue `redis://127.0.0.1:6379/0`
   */
  redisUrl?: string
  /**
   * An ioredis client the application already has, instead of `redisUrl`: the bus runs its commands
   * on it and makes the other connections it needs (live subscriber, blocking reads) with
   * `duplicate()`. It must not have a `keyPrefix` (use the bus's `prefix`). `close()` leaves it open.
   */
  redis?: RedisClient
  /**
   * Redis Cluster: `true` uses a cluster client, `false` a single-server one; unset, it is detected
   * (a URL with several hosts is a cluster; one host is asked `INFO cluster`).
   */
  cluster?: boolean
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
const closing = new WeakSet<RedisClient>()

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
  if (url.sentinel) return sentinelOptions(url, tlsOptions)
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
function watch(redis: RedisClient, name: string, report: (change: ConnectionChange) => void): void {
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
): Promise<RedisClient> {
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
  if (url.sentinel && options.cluster === true)
    throw new InvalidInputError(
      `${url.redacted} is a Sentinel URL (one master): leave --cluster / RAPTOR_CLUSTER out, or give the URL of a cluster node`,
    )
  if (
    !url.sentinel &&
    (options.cluster === true || (options.cluster === undefined && url.endpoints.length > 1))
  )
    return openCluster(options, url, raw, clientName, extra)
  const commandTimeout = options.commandTimeoutMs ?? (oneShot ? 5000 : undefined)
  let everReady = false
  const redis = new Redis({
    ...redisOptions(url, options.tls),
    lazyConnect: true,
    connectTimeout: timeout,
    connectionName: clientName,
    enableAutoPipelining: false,
    // Its INFO-based check prints to the console for an ACL user without INFO: ours is quiet.
    enableReadyCheck: false,
    maxRetriesPerRequest: oneShot ? 0 : null,
    ...(commandTimeout ? {commandTimeout} : {}),
    retryStrategy: (times) => {
      if (!everReady || oneShot) return null
      return Math.min(50 * 2 ** Math.min(times, 6), 2000)
    },
    // Sentinel: asking the Sentinels again is how a failover is followed; one-shot use gives up soon.
    ...(url.sentinel
      ? {
          sentinelRetryStrategy: (times: number) =>
            (!everReady || oneShot) && times > 3 ? null : Math.min(100 * times, 1000),
        }
      : {}),
    ...extra,
  })
  // Errors after a connection is up are handled by reconnecting; keep them from crashing the process.
  let lastError: unknown
  redis.on('error', (error) => {
    lastError = error
  })
  try {
    await withinTimeout(redis.connect(), timeout)
    everReady = true
  } catch (error) {
    closing.add(redis)
    redis.disconnect()
    const cause = lastError ?? error
    throw connectionError(
      raw,
      cause,
      url.sentinel ? await sentinelDiagnosis(url) : await tlsDiagnosis(url, cause, options.tls),
    )
  }
  try {
    // A Sentinel URL names a master, never a cluster node.
    if (!url.sentinel && options.cluster === undefined && (await clusterEnabled(redis))) {
      await assertServing(redis, url, raw)
      closing.add(redis)
      redis.disconnect()
      return openCluster(options, url, raw, clientName, extra)
    }
    await waitUntilLoaded(redis, timeout)
    await selectDb(redis, url)
  } catch (error) {
    closing.add(redis)
    redis.disconnect()
    if (error instanceof RaptorError) throw error
    // The connection dropped right after it was up (a TLS server refusing the client certificate).
    throw connectionError(raw, error, await tlsDiagnosis(url, error, options.tls))
  }
  if (options.onConnectionChange && !oneShot) watch(redis, clientName ?? 'redis', options.onConnectionChange)
  return redis
}

/**
 * True when the server is a Redis Cluster node: `INFO cluster` says `cluster_enabled:1`. A user
 * whose ACL denies INFO is asked `CLUSTER INFO` instead; denied both, the server is taken as a
 * single one (`--cluster` / `RAPTOR_CLUSTER=1` says otherwise).
 */
async function clusterEnabled(redis: Redis): Promise<boolean> {
  // Only a refusal by the server (a reply) means "ask otherwise"; a lost connection is an error.
  const refused = (error: unknown) => {
    if ((error as Error)?.name !== 'ReplyError') throw error
  }
  try {
    return /^cluster_enabled:1\b/m.test(await redis.info('cluster'))
  } catch (error) {
    refused(error)
    try {
      await redis.call('CLUSTER', 'INFO')
      return true
    } catch (again) {
      refused(again)
      return false
    }
  }
}

/**
 * A cluster node that says `cluster_state:fail` (slots never assigned, or a master down with no
 * replica to take over) serves no command: say so rather than time out. Unchecked when this user
 * may not run CLUSTER INFO.
 * @throws ConnectionError naming the state and the slots assigned
 */
async function assertServing(redis: Redis, url: RedisUrl, raw: string): Promise<void> {
  const info = (await redis.call('CLUSTER', 'INFO').catch(() => '')) as string
  const state = /^cluster_state:(\w+)/m.exec(info)?.[1]
  if (state === undefined || state === 'ok') return
  const assigned = /^cluster_slots_assigned:(\d+)/m.exec(info)?.[1] ?? '?'
  const {host, port} = url.endpoints[0]
  throw new ConnectionError(
    `the Redis Cluster at ${host}:${port} is not serving (cluster_state:${state}, ${assigned} of 16384 slots assigned): assign every slot (redis-cli --cluster create …, or --cluster fix) and wait for cluster_state:ok`,
    {url: redactUrl(raw)},
  )
}

/**
 * Opens a Redis Cluster client from the URL's seeds and waits until it knows every slot. Commands
 * go to the master owning their key (`scaleReads: 'master'`: reads see the latest write). The same
 * guarantees as one server: the first connect fails within `connectTimeoutMs` naming the seeds,
 * one-shot commands fail after `commandTimeoutMs`, long-lived clients reconnect with backoff.
 * @throws InvalidInputError for a database other than 0 (a cluster has only database 0)
 */
async function openCluster(
  options: ConnectionOptions,
  url: RedisUrl,
  raw: string,
  clientName: string | undefined,
  extra: RedisOptions,
): Promise<Cluster> {
  if (url.db !== 0)
    throw new InvalidInputError(
      `database ${url.db} in '${url.redacted}': a Redis Cluster has only database 0; drop the /${url.db} from the URL`,
      {url: url.redacted, db: url.db},
    )
  const timeout = options.connectTimeoutMs ?? 3000
  const oneShot = options.reconnect === false
  const commandTimeout = options.commandTimeoutMs ?? (oneShot ? 5000 : undefined)
  let everReady = false
  // The TLS options checked as for one server; each node is its own host, so the server name
  // comes from its address unless one is given.
  const checked = tlsFor(url, options.tls)
  const tls = checked && {...checked, servername: options.tls?.servername}
  if (tls && tls.servername === undefined) delete tls.servername
  const clusterOptions: ClusterOptions = {
    lazyConnect: true,
    scaleReads: 'master',
    enableReadyCheck: true,
    slotsRefreshTimeout: Math.min(timeout, 2000),
    clusterRetryStrategy: (times) => {
      if (!everReady || oneShot) return null
      return Math.min(50 * 2 ** Math.min(times, 6), 2000)
    },
    // Nodes are reached by the addresses the cluster announces; with TLS, keep them as given so
    // that the certificates' names match (ioredis's advice for TLS clusters).
    ...(url.tls ? {dnsLookup: (address, callback) => callback(null, address)} : {}),
    redisOptions: {
      username: url.username,
      password: url.password,
      ...(url.family ? {family: url.family} : {}),
      ...(tls ? {tls} : {}),
      connectTimeout: timeout,
      connectionName: clientName,
      enableAutoPipelining: false,
      // Each node's INFO ready check prints "Skipping the ready check" for an ACL user without INFO.
      enableReadyCheck: false,
      maxRetriesPerRequest: oneShot ? 0 : null,
      ...(commandTimeout ? {commandTimeout} : {}),
      ...extra,
    },
  }
  const cluster = new Cluster(url.endpoints, clusterOptions)
  let lastError: unknown
  // A seed that is a single server (not a cluster node) is named as such, whatever the others said.
  let notCluster = false
  const seen = (error: unknown) => {
    lastError = error
    if (/cluster support disabled/i.test(String((error as Error)?.message))) notCluster = true
  }
  cluster.on('error', seen)
  cluster.on('node error', seen)
  try {
    await withinTimeout(cluster.connect(), timeout)
    everReady = true
  } catch (error) {
    closing.add(cluster)
    cluster.disconnect()
    const cause = (lastError as {lastNodeError?: unknown})?.lastNodeError ?? lastError ?? error
    if (notCluster || /cluster support disabled/i.test(String((cause as Error)?.message)))
      throw new InvalidInputError(
        `'${url.redacted}' is not a Redis Cluster (cluster support disabled on the server): give one host, or drop --cluster / RAPTOR_CLUSTER`,
        {url: url.redacted},
      )
    throw connectionError(raw, cause, await tlsDiagnosis(url, cause, options.tls))
  }
  if (options.onConnectionChange && !oneShot)
    watch(cluster, clientName ?? 'redis', options.onConnectionChange)
  return cluster
}

/** Where a client points, for messages (no password). */
function clientUrl(client: RedisClient): string {
  if (isCluster(client))
    return `redis://${client
      .nodes('master')
      .map((n) => `${n.options.host}:${n.options.port}`)
      .join(',')}`
  const {host, port, db} = client.options
  return `redis://${host ?? '127.0.0.1'}:${port ?? 6379}/${db ?? 0}`
}

/** Waits for `work`, or rejects with an ETIMEDOUT error after `ms` (the timer is always cleared). */
async function withinTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('connect timed out'), {code: 'ETIMEDOUT'})), ms)
  })
  try {
    return await Promise.race([work, expiry])
  } finally {
    clearTimeout(timer)
  }
}

/** Waits until a client is ready (connecting it when it was created with `lazyConnect`). */
async function ready<C extends RedisClient>(client: C, timeoutMs: number): Promise<C> {
  if (client.status === 'ready') return client
  let onReady: (() => void) | undefined
  try {
    await withinTimeout(
      client.status === 'wait'
        ? client.connect()
        : new Promise<void>((resolve) => client.once('ready', (onReady = resolve))),
      timeoutMs,
    )
  } catch (error) {
    throw connectionError(clientUrl(client), error)
  } finally {
    if (onReady) client.off('ready', onReady)
  }
  return client
}

/** One more connection like an application's client. */
async function duplicate(client: RedisClient, timeoutMs: number, extra: RedisOptions): Promise<RedisClient> {
  const copy = isCluster(client)
    ? client.duplicate(undefined, {redisOptions: {...client.options.redisOptions, ...extra}})
    : client.duplicate(extra)
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
export async function adoptConnection(client: RedisClient, options: ConnectionOptions): Promise<RedisClient> {
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
export async function closeConnection(conn: RedisClient, timeoutMs = 1000): Promise<void> {
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
