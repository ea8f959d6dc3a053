import {Cluster, Redis} from 'ioredis'
import {afterEach, describe, expect, it} from 'vitest'

import {clockNode, isCluster, nodeKey} from '../../src/bus/cluster.js'
import {ConnectionError, InvalidInputError, RaptorBus} from '../../src/bus/index.js'
import {clusterSeeds, clusterUrl, randomPrefix, redisUrl, runCli} from '../helpers/index.js'
import {freePort} from '../helpers/redis-server.js'

const buses: RaptorBus[] = []
const clients: (Redis | Cluster)[] = []
afterEach(async () => {
  while (buses.length > 0) await buses.pop()!.close()
  for (const c of clients.splice(0)) c.disconnect()
})

async function connect(options: Parameters<typeof RaptorBus.connect>[0]): Promise<RaptorBus> {
  const bus = await RaptorBus.connect({prefix: randomPrefix(), reconnect: false, ...options})
  buses.push(bus)
  return bus
}

/** host and port of a `redis://host:port` URL. */
function node(url: string): {host: string; port: number} {
  const {hostname, port} = new URL(url)
  return {host: hostname, port: Number(port)}
}

describe('Redis Cluster: detection and the cluster client', () => {
  it('detects a cluster from the URL of any one node, and writes each channel on its own master', async () => {
    const bus = await connect({redisUrl: clusterUrl()})
    expect(isCluster(bus.redis)).toBe(true)
    const channels = [
      'sys.alert.critical',
      'sys.alert.warning',
      'sys.state.update',
      'sys.guild.research.broadcast',
      'sys.guild.muse.broadcast',
      'sys.guild.matrix.broadcast',
    ]
    const ids = await Promise.all(channels.map((channel) => bus.publish({channel, type: 't'})))
    // The keys spread over more than one master (the test would prove nothing on one).
    const cluster = bus.redis as unknown as Cluster
    const owners = new Set<string>()
    for (const m of cluster.nodes('master'))
      for (const c of channels)
        if ((await m.exists(bus.keys.stream(c)).catch(() => 0)) === 1) owners.add(nodeKey(m))
    expect(owners.size).toBeGreaterThan(1)
    for (const [i, id] of ids.entries()) expect((await bus.getEvent(id)).channel).toBe(channels[i])
  })

  it('takes several seeds, comma-separated, and finds the cluster through a dead one', async () => {
    const dead = await freePort()
    const seeds = clusterSeeds().replace('redis://', `redis://127.0.0.1:${dead},`)
    const bus = await connect({redisUrl: seeds})
    expect(isCluster(bus.redis)).toBe(true)
    const id = await bus.publish({channel: 'sys.state.update', type: 't'})
    expect((await bus.getEvent(id)).id).toBe(id)
  })

  it('a single server stays a single-server client; cluster: true on it is a clear error', async () => {
    const bus = await connect({redisUrl: redisUrl()})
    expect(isCluster(bus.redis)).toBe(false)
    const forced = RaptorBus.connect({redisUrl: redisUrl(), cluster: true, reconnect: false})
    await expect(forced).rejects.toThrow(InvalidInputError)
    await expect(forced).rejects.toThrow(/is not a Redis Cluster \(cluster support disabled/)
    const seeds = RaptorBus.connect({redisUrl: `${redisUrl().replace(/\/0$/, '')},127.0.0.1:1`})
    await expect(seeds).rejects.toThrow(/is not a Redis Cluster/)
  })

  it('refuses a database other than 0 on a cluster, before sending anything', async () => {
    const attempt = RaptorBus.connect({redisUrl: `${clusterUrl()}/2`, reconnect: false})
    await expect(attempt).rejects.toThrow(InvalidInputError)
    await expect(attempt).rejects.toThrow(/a Redis Cluster has only database 0; drop the \/2 from the URL/)
    const cli = await runCli(['channels', '--redis-url', `${clusterUrl()}/2`])
    expect(cli.code).toBe(2)
    expect(cli.stderr.trim().split('\n')).toEqual([
      `Error: database 2 in '${clusterUrl()}/2': a Redis Cluster has only database 0; drop the /2 from the URL`,
    ])
  })

  it('names the seeds when none answers (exit 69 from the CLI), and never prints the password', async () => {
    const [a, b] = [await freePort(), await freePort()]
    const url = `redis://:s3cret-pw@127.0.0.1:${a},127.0.0.1:${b}`
    const attempt = RaptorBus.connect({redisUrl: url, reconnect: false, connectTimeoutMs: 1000})
    await expect(attempt).rejects.toThrow(ConnectionError)
    await expect(attempt).rejects.toThrow(`cannot reach Redis at redis://:***@127.0.0.1:${a},127.0.0.1:${b}`)
    const cli = await runCli(['channels'], {env: {REDIS_URL: url}})
    expect(cli.code).toBe(69)
    expect(cli.stderr).toContain(`cannot reach Redis at redis://:***@127.0.0.1:${a},127.0.0.1:${b}`)
    expect(cli.stderr).not.toContain('s3cret')
  })

  it('--cluster / RAPTOR_CLUSTER=1 on a single server is exit 2 with one line', async () => {
    for (const run of [
      runCli(['channels', '--redis-url', redisUrl(), '--cluster']),
      runCli(['channels'], {env: {REDIS_URL: redisUrl().replace(/\/0$/, ''), RAPTOR_CLUSTER: '1'}}),
    ]) {
      const result = await run
      expect(result.code, result.stderr).toBe(2)
      expect(result.stderr.trim().split('\n')).toHaveLength(1)
      expect(result.stderr).toMatch(/is not a Redis Cluster .*drop --cluster \/ RAPTOR_CLUSTER/)
    }
  })

  it('accepts an application ioredis Cluster client, and leaves it open on close', async () => {
    const app = new Cluster([node(clusterUrl())])
    clients.push(app)
    const bus = await connect({redis: app})
    expect(bus.redis).toBe(app)
    const id = await bus.publish({channel: 'sys.guild.muse.broadcast', type: 't', payload: {n: 1}})
    expect(await bus.getEvent(id)).toMatchObject({id, data: {n: 1}})
    const channels = await bus.channels()
    expect(channels.find((c) => c.name === 'sys.guild.muse.broadcast')?.length).toBe(1)
    await bus.close()
    expect(await app.set(`${bus.keys.prefix}:still-open`, '1')).toBe('OK')
    await app.del(`${bus.keys.prefix}:still-open`)
  })

  it('takes server time from one node: the master serving slot 0', async () => {
    const bus = await connect({redisUrl: clusterUrl()})
    const cluster = bus.redis as unknown as Cluster
    const clock = clockNode(cluster)
    expect(nodeKey(clock)).toBe(cluster.slots[0][0])
    const before = await clock.time()
    const t = await bus.history.serverTime()
    const after = await clock.time()
    expect(t).toBeGreaterThanOrEqual(Number(before[0]) * 1000 + Math.floor(Number(before[1]) / 1000))
    expect(t).toBeLessThanOrEqual(Number(after[0]) * 1000 + Math.floor(Number(after[1]) / 1000))
  })
})
