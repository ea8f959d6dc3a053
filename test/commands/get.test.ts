import calculateSlot from 'cluster-key-slot'
import {afterAll, beforeAll, expect, it} from 'vitest'

import {RaptorBus} from '../../src/bus/index.js'
import {describeTargets, randomPrefix, redisUrl, runCli, target} from '../helpers/index.js'

describeTargets('raptor get', () => {
  let bus: RaptorBus
  let prefix: string

  beforeAll(async () => {
    prefix = randomPrefix()
    bus = await RaptorBus.connect({redisUrl: redisUrl(), prefix})
  })
  afterAll(() => bus.close())

  it('prints the envelope of an event in history', async () => {
    const id = await bus.publish({
      channel: 'sys.guild.research.broadcast',
      type: 'research_complete',
      payload: {topic: 'redis'},
      source: 'RES-001',
    })
    const [json, human] = await Promise.all([
      runCli(['get', id, ...target(prefix), '--json']),
      runCli(['get', id, ...target(prefix)]),
    ])
    expect(json.code, json.stderr).toBe(0)
    const event = JSON.parse(json.stdout)
    expect(event).toEqual(await bus.getEvent(id))
    expect(event).toMatchObject({id, type: 'research_complete', source: 'RES-001', data: {topic: 'redis'}})
    // Not a terminal: one line of JSON.
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout.trim().split('\n')).toHaveLength(1)
    expect(JSON.parse(human.stdout)).toEqual(event)
  })

  it('exits 1 with one line when the event is not in history', async () => {
    const missing = 'evt-00000000-0000-4000-8000-000000000000'
    const result = await runCli(['get', missing, ...target(prefix)])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr.trim().split('\n')).toEqual([
      `Error: event ${missing} not found: it was never published here or has expired with its channel's retention`,
    ])
  })

  it('exits 1 for a raptor id whose event was trimmed from history', async () => {
    const channel = 'sys.state.update'
    const id = await bus.publish({channel, type: 'trimmed'})
    expect((await runCli(['get', id, ...target(prefix), '--json'])).code).toBe(0)
    await bus.redis.xtrim(bus.keys.stream(channel), 'MAXLEN', 0)
    const result = await runCli(['get', id, ...target(prefix)])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(new RegExp(`^Error: event ${id} not found`))
  })

  it('finds events by any producer id: braces, spaces, colons, quotes, globs, unicode', async () => {
    const ids = ['{other}', 'a b', 'x:y:z', 'q"uote\\', '*?[', 'ünï 😀', '-starts-with-dash', 'x'.repeat(256)]
    const channel = 'sys.alert.warning'
    for (const id of ids) {
      expect(await bus.publish({channel, type: 'by_id', id, payload: {id}})).toBe(id)
      // The index key stays in the channel's hash slot: an id cannot move it (Redis Cluster).
      expect(calculateSlot(bus.keys.eventIndex(channel, id))).toBe(calculateSlot(bus.keys.stream(channel)))
      const result = await runCli(['get', ...target(prefix), '--', id])
      expect(result.code, result.stderr).toBe(0)
      expect(JSON.parse(result.stdout)).toMatchObject({id, data: {id}})
    }
    // An id that is a prefix of another finds only its own event.
    await expect(bus.getEvent('{other')).rejects.toThrow(/not found/)
  })
})
