import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {keysUnder, randomPrefix, runCli, target, tempDir} from '../helpers/index.js'

const publish = (cwd: string, prefix: string, type = 'order_created', payload = '{}') =>
  runCli(['publish', '-c', 'app.orders.eu', '-t', type, '--payload', payload, ...target(prefix)], {cwd})

describe('a config file is checked when it is loaded: exit 2 naming the key and the file, nothing written', () => {
  it.each([
    ['"60y" (reaching back before 1970)', '60y', /at most 3650d/],
    ['1e300', 1e300, /at most 3650d/],
    ['0.5 (not whole milliseconds)', 0.5, /use a whole number of milliseconds/],
    ['"1.5ms"', '1.5ms', /use a whole number of milliseconds/],
    ['"" (empty)', '', /use a number of ms or a duration like 30s/],
  ])('retention %s', async (_name, retention, why) => {
    const prefix = randomPrefix()
    const cwd = tempDir({'raptor.config.json': {channels: [{name: 'app.orders.*', retention}]}})
    const result = await publish(cwd, prefix)
    expect(result.code, result.stderr).toBe(2)
    expect(result.stderr).toContain(`invalid config ${join(cwd, 'raptor.config.json')}`)
    expect(result.stderr).toMatch(/channels\[0\]\.retention \(app\.orders\.\*\)/)
    expect(result.stderr).toMatch(why)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('a JSON Schema whose $ref never descends into the value ({"$ref":"#"})', async () => {
    const prefix = randomPrefix()
    const cwd = tempDir({
      'raptor.config.json': {
        channels: [{name: 'app.orders.*', retention: '1h'}],
        schemas: {
          order_created: {$ref: '#'},
          other: {allOf: [{$ref: '#/$defs/a'}], $defs: {a: {anyOf: [{$ref: '#'}]}}},
        },
      },
    })
    const result = await publish(cwd, prefix)
    expect(result.code, result.stderr).toBe(2)
    expect(result.stderr).toMatch(
      /invalid JSON Schema for type 'order_created' \(schemas\.order_created\) in .*raptor\.config\.json: "\$ref": "#" refers back to itself/,
    )
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('a recursive JSON Schema that descends into the value (a tree) is fine', async () => {
    const prefix = randomPrefix()
    const tree = {type: 'object', properties: {children: {type: 'array', items: {$ref: '#'}}}}
    const cwd = tempDir({
      'raptor.config.json': {
        channels: [{name: 'app.orders.*', retention: '1h'}],
        schemas: {order_created: tree},
      },
    })
    const ok = await publish(cwd, prefix, 'order_created', '{"children":[{"children":[]}]}')
    expect(ok.code, ok.stderr).toBe(0)
    const bad = await publish(cwd, prefix, 'order_created', '{"children":[{"children":5}]}')
    expect(bad.code, bad.stderr).toBe(2)
  })
})
