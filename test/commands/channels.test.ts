import {afterAll, beforeAll, expect, it} from 'vitest'

import {RaptorBus} from '../../src/bus/index.js'
import {describeTargets, randomPrefix, redisUrl, runCli, target, tempDir} from '../helpers/index.js'

const config = {
  channels: [
    {name: 'app.orders.*', retention: '2h'},
    {name: 'app.audit', retention: '30d'},
  ],
}
describeTargets('raptor channels', () => {
  let bus: RaptorBus
  let prefix: string

  beforeAll(async () => {
    prefix = randomPrefix()
    bus = await RaptorBus.connect({redisUrl: redisUrl(), prefix, channels: config.channels})
  })
  afterAll(() => bus.close())

  it('lists the topology with retention, stream length and last event time', async () => {
    await bus.publishMany([
      {channel: 'sys.alert.warning', type: 'a'},
      {channel: 'sys.alert.warning', type: 'b'},
      {channel: 'app.orders.eu', type: 'order_created'},
    ])
    // One dead letter: an event for a channel outside the topology.
    await bus.publish({channel: 'sys.alert.warnin', type: 'a'}).catch(() => undefined)
    const cwd = tempDir({'raptor.config.json': config})
    const [json, human] = await Promise.all([
      runCli(['channels', ...target(prefix), '--json'], {cwd}),
      runCli(['channels', ...target(prefix)], {cwd}),
    ])
    expect(json.code, json.stderr).toBe(0)
    const {channels} = JSON.parse(json.stdout) as {channels: Record<string, unknown>[]}
    const byName = Object.fromEntries(channels.map((c) => [c.name, c]))
    expect(byName['sys.alert.warning']).toMatchObject({retention: '1d', retentionMs: 86_400_000, length: 2})
    expect(Date.parse(byName['sys.alert.warning'].lastEventAt as string)).toBeGreaterThan(Date.now() - 60_000)
    expect(byName['sys.guild.matrix.broadcast']).toMatchObject({
      retention: '7d',
      length: 0,
      lastEventAt: null,
    })
    expect(byName['sys.global.heartbeat']).toMatchObject({retention: '1min'})
    expect(byName['app.orders.eu']).toMatchObject({retention: '2h', length: 1})
    expect(byName['app.orders.*']).toMatchObject({pattern: true, retention: '2h'})
    expect(byName['app.audit']).toMatchObject({retention: '30d', length: 0})
    expect(byName['sys.dlq.routing_error']).toMatchObject({retention: '30d', length: 1})
    expect(byName['sys.dlq.max_retries_exceeded']).toMatchObject({retention: '30d', length: 0})

    expect(human.code, human.stderr).toBe(0)
    const lines = human.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^CHANNEL +RETENTION +LENGTH +LAST EVENT$/)
    expect(lines.find((l) => l.startsWith('sys.alert.warning '))).toMatch(/ 1d +2 +\d{4}-\d\d-\d\dT/)
    expect(lines.find((l) => l.startsWith('app.orders.* '))).toMatch(/ 2h +- +-$/)
  })
})
