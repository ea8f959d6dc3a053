import {fileURLToPath} from 'node:url'

import {describe, expect, it} from 'vitest'

import {redisUrl, runCli, testBuses} from '../helpers/index.js'

const WORKER = fileURLToPath(new URL('../fixtures/plugins/worker.mjs', import.meta.url))
const newBus = testBuses()

describe('raptor replay --plugin', () => {
  it('runs the handlers over history in order, with real publishes, and exits 3 when some runs fail', async () => {
    const bus = await newBus()
    const ids = await bus.publishMany([
      {channel: 'sys.state.update', type: 'job', payload: {n: 1}},
      {channel: 'sys.state.update', type: 'other', payload: {}},
      {channel: 'sys.state.update', type: 'job', payload: {n: 2}},
    ])
    const ok = await runCli([
      'replay',
      'sys.state.update',
      '--plugin',
      WORKER,
      '--json',
      '--redis-url',
      redisUrl(),
      '--prefix',
      bus.keys.prefix,
    ])
    expect(ok.stderr).toContain('working')
    expect(ok.code).toBe(0)
    expect(JSON.parse(ok.stdout)).toMatchObject({replayed: 3, succeeded: 2, failed: 0})
    const done = []
    for await (const e of bus.replay('sys.alert.warning')) done.push(e.data)
    expect(done.map((d) => d.id)).toEqual([ids[0], ids[2]])

    await bus.publish({channel: 'sys.state.update', type: 'boom'})
    const partial = await runCli([
      'replay',
      'sys.state.update',
      '--plugin',
      WORKER,
      '--redis-url',
      redisUrl(),
      '--prefix',
      bus.keys.prefix,
    ])
    expect(partial.code).toBe(3)
    expect(partial.stdout).toContain('2 succeeded, 1 failed')
    expect(partial.stderr).toContain('boom on purpose')
  })

  it('refuses --plugin together with --to-channel', async () => {
    const result = await runCli([
      'replay',
      'sys.state.update',
      '--plugin',
      WORKER,
      '--to-channel',
      'sys.alert.warning',
      '--redis-url',
      redisUrl(),
    ])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/cannot also be provided|--to-channel/)
  })
})
