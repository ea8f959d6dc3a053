import {fileURLToPath} from 'node:url'

import {Redis} from 'ioredis'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {RaptorBus, TimeoutError} from '../../src/bus/index.js'
import {childProcesses} from '../helpers/child.js'
import {BIN, isolatedEnv, randomPrefix, runCli, waitFor} from '../helpers/index.js'
import {SentinelSetup} from '../helpers/sentinel.js'

// A real Sentinel deployment started here: one master, one replica, one Sentinel, on free ports.
let setup: SentinelSetup

beforeAll(async () => {
  setup = await SentinelSetup.start()
}, 60_000)

afterAll(async () => {
  await setup?.stop()
})

const spawnChild = childProcesses()
const WORKER = fileURLToPath(new URL('../fixtures/plugins/worker.mjs', import.meta.url))

/** Every event id in a channel's stream, read from a server directly. */
async function idsIn(port: number, prefix: string, channel: string): Promise<Set<string>> {
  const redis = new Redis(port, '127.0.0.1')
  try {
    const entries = await redis.xrange(`${prefix}:ch:{${channel}}:stream`, '-', '+')
    return new Set(entries.map(([, fields]) => (JSON.parse(fields[1]) as {id: string}).id))
  } finally {
    redis.disconnect()
  }
}

describe('Redis Sentinel: redis-sentinel://s1:26379,…/db?master=NAME', {timeout: 120_000}, () => {
  it('publish, get and an agent work through the Sentinels', async () => {
    const prefix = randomPrefix()
    const target = ['--redis-url', setup.url(), '--prefix', prefix]
    const published = await runCli([
      'publish',
      '--channel',
      'sys.state.update',
      '--type',
      'job',
      '--payload',
      '{"n":1}',
      ...target,
    ])
    expect(published.code, published.stderr).toBe(0)
    const id = published.stdout.trim()
    const got = await runCli(['get', id, '--json', ...target])
    expect(got.code, got.stderr).toBe(0)
    expect(JSON.parse(got.stdout)).toMatchObject({id, data: {n: 1}})
    // It went to the master, and WAIT made sure the replica has it.
    expect(await idsIn(setup.replica.port, prefix, 'sys.state.update')).toContain(id)

    const agent = spawnChild([BIN, 'agent', '--json', '--plugin', WORKER, ...target], isolatedEnv())
    await waitFor(() => agent.lines.some((l) => String(l.msg).includes('started')), 15_000, 'agent start')
    const bus = await RaptorBus.connect({redisUrl: setup.url(), prefix})
    try {
      const ids = await bus.publishMany(
        [2, 3].map((n) => ({channel: 'sys.state.update', type: 'job', payload: {n}})),
      )
      await waitFor(
        async () => {
          const done: string[] = []
          for await (const e of bus.replay('sys.alert.warning', {types: ['done']}))
            done.push(String(e.data.id))
          return ids.every((i) => done.includes(i))
        },
        20_000,
        'the agent handled the jobs',
      )
    } finally {
      await bus.close()
      agent.child.kill('SIGTERM')
    }
    expect(await agent.exit).toBe(0)
  })

  it('a missing ?master=, an unknown master and no Sentinel answering are named; secrets are redacted', async () => {
    const missing = await runCli([
      'channels',
      '--redis-url',
      `redis-sentinel://127.0.0.1:${setup.sentinelPorts[0]}/0`,
    ])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/a Sentinel URL needs the master's name: add \?master=NAME/)
    const url = `redis-sentinel://app:pa55word-x@127.0.0.1:${setup.sentinelPorts[0]}/0?master=nosuch&sentinelPassword=s3ntinel-x`
    const unknown = await runCli(['channels'], {env: {REDIS_URL: url}})
    expect(unknown.code).toBe(69)
    expect(unknown.stderr).toMatch(
      /the Sentinels at 127\.0\.0\.1:\d+ know no master named 'nosuch': check \?master=NAME/,
    )
    expect(unknown.stderr).toContain('redis-sentinel://app:***@127.0.0.1')
    expect(unknown.stderr).toContain('sentinelPassword=***')
    expect(unknown.stderr).not.toMatch(/pa55word-x|s3ntinel-x/)
    const none = await runCli(['channels', '--redis-url', 'redis-sentinel://127.0.0.1:1/0?master=x'])
    expect(none.code).toBe(69)
    expect(none.stderr).toMatch(/no Sentinel answered at 127\.0\.0\.1:1/)
  })

  it('a failover (master killed -9) during a publish burst loses no acknowledged publish', async () => {
    const prefix = randomPrefix()
    const channel = 'sys.state.update'
    // The default replicaWait on Sentinel (WAIT 1 2000 after each publish) is what is tested: with
    // {replicas: 0} this test loses the publishes acknowledged while the replica was cut off.
    const bus = await RaptorBus.connect({redisUrl: setup.url(), prefix})
    const acked: string[] = []
    let refused = 0
    let stop = false
    const oldMaster = setup.master
    const newMasterPort = setup.replica.port
    let failedOver = false
    let ackedAfter = 0
    // Four publishers in a loop; a publish that rejects (connection lost, no replica confirmed it)
    // is not acknowledged, and is not counted.
    const loops = Array.from({length: 4}, async (_, p) => {
      for (let n = 0; !stop; n++) {
        try {
          acked.push(await bus.publish({channel, type: 'job', payload: {p, n}}))
          if (failedOver) ackedAfter++
        } catch (error) {
          refused++
          if (
            !(error instanceof TimeoutError) &&
            !/Connection|closed|ECONN|READONLY|MaxRetries/i.test(String(error))
          )
            throw error
        }
      }
    })
    try {
      await waitFor(() => acked.length >= 200, 20_000, '200 acknowledged publishes')
      // The replica falls behind (frozen, its link cut), the master goes on taking writes, then dies:
      // what the replica never got is lost, so no publish may have been acknowledged in that window.
      setup.replica.pause()
      const master = new Redis(oldMaster.port, '127.0.0.1')
      await master.client('KILL', 'TYPE', 'replica')
      master.disconnect()
      const attempts = acked.length + refused
      await waitFor(
        () => acked.length + refused >= attempts + 4,
        20_000,
        'publishes while the replica is frozen',
      )
      await oldMaster.stop(true)
      setup.replica.resume()
      await setup.waitForMaster(newMasterPort)
      // The old master comes back empty; the Sentinels make it a replica of the new one, so that
      // WAIT can be satisfied again.
      await oldMaster.start()
      failedOver = true
      await waitFor(() => ackedAfter >= 100, 40_000, '100 acknowledged publishes after the failover')
    } finally {
      stop = true
      await Promise.all(loops)
      await bus.close()
    }
    const stored = await idsIn(newMasterPort, prefix, channel)
    const lost = acked.filter((id) => !stored.has(id))
    expect({acked: acked.length, lost: lost.length}).toEqual({acked: acked.length, lost: 0})
    expect(acked.length).toBeGreaterThanOrEqual(300)
    // The publishes made while the replica was cut off were refused (no replica confirmed them).
    expect(refused).toBeGreaterThanOrEqual(4)
  }, 120_000)
})
