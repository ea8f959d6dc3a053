import type {ChainableCommander, Cluster, Redis} from 'ioredis'

/**
 * What differs on a Redis Cluster, in one place: which client a connection is, the masters to fan
 * out to, the one node server time comes from, and pipelines whose commands touch several slots.
 *
 * On a cluster every per-channel key shares the hash tag `{<channel>}` (see keys.ts), so one
 * script or one command never spans slots; what spans channels (listing lengths, looking an event
 * up in every channel, metrics) goes out as single commands, each to the node owning its slot.
 */

/** An ioredis client: one server (`Redis`) or a cluster (`Cluster`). */
export type RedisClient = Redis | Cluster

/** True for an ioredis `Cluster` client. */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true
}

/** The database a client is on (a cluster has only database 0). */
export function dbOf(client: RedisClient): number {
  return isCluster(client) ? 0 : (client.options.db ?? 0)
}

/**
 * The servers to ask for per-server state (INFO, CLIENT LIST, SCAN): the server itself, or every
 * master of a cluster (replicas hold copies, so counting them would count keys twice).
 */
export function masters(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client]
}

/** Every server of a deployment, replicas included (where a connection may be: CLIENT LIST). */
export function allNodes(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('all') : [client]
}

/**
 * Every key matching a glob, master by master (SCAN is per server; a cluster's keys are spread
 * over its masters), with the master that holds it.
 */
export async function* scanKeys(
  client: RedisClient,
  match: string,
): AsyncGenerator<{node: Redis; keys: string[]}> {
  for (const node of masters(client)) {
    let cursor = '0'
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) yield {node, keys}
    } while (cursor !== '0')
  }
}

/**
 * Deletes keys of one server (UNLINK). On a cluster node the keys may be in different slots, which
 * one multi-key UNLINK refuses (CROSSSLOT): there each key is unlinked alone, pipelined.
 */
export async function unlinkKeys(client: RedisClient, node: Redis, keys: string[]): Promise<number> {
  if (!isCluster(client)) return node.unlink(...keys)
  const pipeline = node.pipeline()
  for (const key of keys) pipeline.unlink(key)
  const results = (await pipeline.exec()) ?? []
  return results.reduce((n, [error, count]) => n + (error ? 0 : Number(count)), 0)
}

/** `host:port` of a server connection. */
export function nodeKey(node: Redis): string {
  return `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`
}

/**
 * The one server whose clock is "Redis server time": the server itself, or the master serving slot
 * 0 of a cluster. Retention, `--since` and stale-agent checks compare times from this node only,
 * so they never depend on which node answered (cluster nodes' clocks drift apart).
 */
export function clockNode(client: RedisClient): Redis {
  if (!isCluster(client)) return client
  const all = client.nodes('master')
  const owner = client.slots[0]?.[0]
  const node =
    all.find((n) => nodeKey(n) === owner) ?? [...all].sort((a, b) => nodeKey(a).localeCompare(nodeKey(b)))[0]
  return node ?? (client as unknown as Redis)
}

/**
 * A pipeline whose commands may touch keys of different slots. On one server it is a real
 * pipeline (one round trip). A cluster refuses a pipeline across slots, so there each queued
 * command is sent at once to the node owning its key, all in parallel; `exec()` answers as a
 * pipeline does: `[error, result]` per command, in order. Commands are independent, as in a
 * pipeline (no MULTI): neither form is atomic across commands.
 */
export function anySlotPipeline(client: RedisClient): ChainableCommander {
  if (!isCluster(client)) return client.pipeline()
  const sent: Promise<[Error | null, unknown]>[] = []
  const commands = client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  const proxy: ChainableCommander = new Proxy({} as ChainableCommander, {
    get(_target, name) {
      if (name === 'exec') return () => Promise.all(sent)
      if (name === 'length') return sent.length
      if (typeof name !== 'string' || typeof commands[name] !== 'function') return undefined
      return (...args: unknown[]) => {
        sent.push(
          commands[name](...args).then(
            (result): [null, unknown] => [null, result],
            (error: Error): [Error, null] => [error, null],
          ),
        )
        return proxy
      }
    },
  })
  return proxy
}
