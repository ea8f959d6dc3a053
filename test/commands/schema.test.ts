import {describe, expect, it} from 'vitest'

import {runCli, tempDir} from '../helpers/index.js'

// Schema needs no Redis: point it at one that does not exist to prove it.
const noRedis = ['--redis-url', 'redis://127.0.0.1:1/0']

describe('raptor schema', () => {
  it('prints the JSON Schema of the envelope', async () => {
    const result = await runCli(['schema', ...noRedis])
    expect(result.code, result.stderr).toBe(0)
    const schema = JSON.parse(result.stdout)
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema')
    expect(schema.type).toBe('object')
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['specversion', 'id', 'type', 'source', 'time', 'data', 'channel', 'priority']),
    )
    expect(schema.properties.priority.enum).toEqual(['low', 'normal', 'high', 'critical'])
    expect(schema.required).toEqual(expect.arrayContaining(['specversion', 'id', 'type', 'data', 'channel']))
  })

  it('prints the payload schema of a type from the config file, and exits 1 for a type without one', async () => {
    const cwd = tempDir({
      'raptor.config.json': {
        schemas: {
          order_created: {type: 'object', properties: {orderId: {type: 'string'}}, required: ['orderId']},
        },
      },
    })
    const [found, missing] = await Promise.all([
      runCli(['schema', '--type', 'order_created', '--json', ...noRedis], {cwd}),
      runCli(['schema', '--type', 'order_shipped', ...noRedis], {cwd}),
    ])
    expect(found.code, found.stderr).toBe(0)
    expect(JSON.parse(found.stdout)).toMatchObject({
      type: 'object',
      properties: {orderId: {type: 'string'}},
      required: ['orderId'],
    })
    expect(missing.code).toBe(1)
    expect(missing.stdout).toBe('')
    expect(missing.stderr.trim()).toMatch(
      /^Error: no payload schema for type 'order_shipped' in .*raptor\.config\.json; types with schemas: order_created$/,
    )
  })
})
