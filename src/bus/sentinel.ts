import {Redis, type RedisOptions} from 'ioredis'

import type {RedisClient} from './cluster.js'
import {TimeoutError} from './errors.js'
import {tlsFor, type TlsOptions} from './tls.js'
import type {RedisUrl} from './url.js'

/**
 * Redis Sentinel: `redis-sentinel://[[user]:password@]s1:26379,s2:26379[/db]?master=NAME`
 * (`rediss-sentinel://` for TLS). The hosts are Sentinels; ioredis asks them for the master, follows
 * a failover (the Sentinels' `+switch-master`, or a `READONLY` reply from a demoted master) and
 * reconnects to the new master. Publishes wait for a replica (`WAIT`) so that a failover loses no
 * publish that was acknowledged.
 */

/** ioredis options for a Sentinel URL (instead of host and port). */
export function sentinelOptions(url: RedisUrl, tls: TlsOptions | undefined): RedisOptions {
  const sentinel = url.sentinel!
  const tlsOptions = tlsFor(url, tls)
  return {
    sentinels: url.endpoints.map(({host, port}) => ({host, port})),
    name: sentinel.master,
    role: 'master',
    username: url.username,
    password: url.password,
    ...(sentinel.username ? {sentinelUsername: sentinel.username} : {}),
    ...(sentinel.password ? {sentinelPassword: sentinel.password} : {}),
    ...(url.family ? {family: url.family} : {}),
    // The master's address comes from the Sentinels: SNI takes the name given, or none.
    ...(tlsOptions
      ? {
          enableTLSForSentinelMode: true,
          tls: {...tlsOptions, servername: tls?.servername},
          sentinelTLS: {...tlsOptions, servername: tls?.servername},
        }
      : {}),
    // Hear the Sentinels' +switch-master at once rather than at the next error.
    failoverDetector: true,
    // A master demoted by a failover answers writes with READONLY: reconnect (to the new master) and resend.
    reconnectOnError: (error) => (/^READONLY\b/.test(error.message) ? 2 : false),
  }
}

/**
 * Names what failed when no master could be reached through the Sentinels: none answered, or
 * they know no master of that name.
 */
export async function sentinelDiagnosis(url: RedisUrl, timeoutMs = 1000): Promise<string | undefined> {
  const sentinel = url.sentinel
  if (!sentinel) return undefined
  const list = url.endpoints.map(({host, port}) => `${host}:${port}`).join(',')
  let answered = false
  for (const {host, port} of url.endpoints) {
    const client = new Redis({
      host,
      port,
      username: sentinel.username,
      password: sentinel.password,
      lazyConnect: true,
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableReadyCheck: false,
      ...(url.tls ? {tls: {rejectUnauthorized: false}} : {}),
    })
    client.on('error', () => {})
    try {
      await client.connect()
      const addr = await client.call('SENTINEL', 'get-master-addr-by-name', sentinel.master)
      answered = true
      if (Array.isArray(addr)) return undefined
    } catch {
      // not this one
    } finally {
      client.disconnect()
    }
  }
  return answered
    ? `the Sentinels at ${list} know no master named '${sentinel.master}': check ?master=NAME (SENTINEL MASTERS lists them)`
    : `no Sentinel answered at ${list}: start redis-sentinel there, or point the redis-sentinel:// URL at running Sentinels`
}

/**
 * How a bus on Sentinel waits for replicas after a publish: `WAIT replicas timeoutMs`, so that a
 * publish resolves only once a replica has it and a failover (which promotes a replica) keeps it.
 */
export interface ReplicaWait {
  /** Replicas that must have the write. 0 turns the wait off. @defaultValue 1 on Sentinel, else 0 */
  replicas: number
  /** How long to wait for them. @defaultValue 2000 */
  timeoutMs?: number
}

/**
 * Waits until `replicas` replicas have every write this connection made so far.
 * @throws TimeoutError when fewer confirm within the time: the events are on the master but a
 *   failover now could lose them (publishing them again is safe to retry by event id)
 */
export async function waitForReplicas(
  redis: RedisClient,
  wait: ReplicaWait,
  ids: readonly string[],
): Promise<void> {
  if (wait.replicas <= 0) return
  const timeoutMs = wait.timeoutMs ?? 2000
  const acked = Number(await redis.call('WAIT', wait.replicas, timeoutMs))
  if (acked < wait.replicas)
    throw new TimeoutError(
      `published ${ids.length === 1 ? ids[0] : `${ids.length} events`} on the master, but ${acked} of ${wait.replicas} replica(s) confirmed it within ${timeoutMs} ms (WAIT): a failover now could lose it; check the replicas (INFO replication) or lower the replicas option`,
      {ids: [...ids], replicas: acked},
    )
}
