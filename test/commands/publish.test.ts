import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import type {Cluster, Redis} from 'ioredis'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {
  describeTargets,
  keysUnder,
  randomPrefix,
  rawClient,
  redisUrl,
  runCli,
  target,
  tempDir,
} from '../helpers/index.js'

let reader: Redis | Cluster

/** The events in a channel's stream under a prefix. */
async function streamOf(prefix: string, channel: string): Promise<Record<string, unknown>[]> {
  const entries = await reader.xrange(`${prefix}:ch:{${channel}}:stream`, '-', '+')
  return entries.map(([, fields]) => JSON.parse(fields[1]) as Record<string, unknown>)
}

/** A usage error: exit 2, one line on stderr, nothing on stdout, nothing written under the prefix. */
async function expectRejected(args: string[], pattern: RegExp, options: Parameters<typeof runCli>[1] = {}) {
  const prefix = randomPrefix()
  const result = await runCli(['publish', ...args, ...target(prefix)], options)
  expect(result.code, result.stderr).toBe(2)
  expect(result.stdout).toBe('')
  const lines = result.stderr.trim().split('\n')
  expect(lines, result.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(pattern)
  expect(await keysUnder(prefix)).toEqual([])
}

describeTargets('raptor publish', () => {
  beforeAll(() => {
    reader = rawClient()
  })
  afterAll(() => reader.disconnect())

  it('publishes a literal payload and prints the event id', async () => {
    const prefix = randomPrefix()
    const result = await runCli([
      'publish',
      ...target(prefix),
      '--channel',
      'sys.alert.warning',
      '--type',
      'disk_low',
      '--payload',
      '{"free":0.05}',
      '--priority',
      'high',
      '--correlation-id',
      'req-1',
    ])
    expect(result.code, result.stderr).toBe(0)
    const id = result.stdout.trim()
    expect(id).toMatch(/^evt-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    const [event] = await streamOf(prefix, 'sys.alert.warning')
    expect(event).toMatchObject({
      id,
      type: 'disk_low',
      source: 'raptor-cli',
      priority: 'high',
      correlationid: 'req-1',
      data: {free: 0.05},
    })
  })

  it('reads the payload from @file and from stdin (@-)', async () => {
    const prefix = randomPrefix()
    const dir = tempDir({'payload.json': {from: 'file'}})
    const fromFile = await runCli(
      ['publish', ...target(prefix), '-c', 'sys.state.update', '-t', 'f', '--payload', '@payload.json'],
      {cwd: dir},
    )
    expect(fromFile.code, fromFile.stderr).toBe(0)
    const fromStdin = await runCli(
      ['publish', ...target(prefix), '-c', 'sys.state.update', '-t', 's', '--payload', '@-'],
      {input: '{"from":"stdin"}'},
    )
    expect(fromStdin.code, fromStdin.stderr).toBe(0)
    const events = await streamOf(prefix, 'sys.state.update')
    expect(events.map((e) => [e.id, e.data])).toEqual([
      [fromFile.stdout.trim(), {from: 'file'}],
      [fromStdin.stdout.trim(), {from: 'stdin'}],
    ])
  })

  it('publishes --count N events and prints {"channel","ids"} with --json', async () => {
    const prefix = randomPrefix()
    const result = await runCli([
      'publish',
      ...target(prefix),
      '-c',
      'sys.state.update',
      '-t',
      'tick',
      '--count',
      '3',
      '--json',
    ])
    expect(result.code, result.stderr).toBe(0)
    const output = JSON.parse(result.stdout)
    expect(Object.keys(output).sort()).toEqual(['channel', 'ids'])
    expect(output.channel).toBe('sys.state.update')
    expect(output.ids).toHaveLength(3)
    expect(new Set(output.ids).size).toBe(3)
    expect((await streamOf(prefix, 'sys.state.update')).map((e) => e.id)).toEqual(output.ids)
  })

  it('publishes NDJSON in bulk from a file (channel per line) and from stdin', async () => {
    const prefix = randomPrefix()
    const dir = tempDir()
    const file = join(dir, 'events.ndjson')
    writeFileSync(
      file,
      [
        '{"channel":"sys.alert.warning","type":"w","payload":{"n":1}}',
        '',
        '{"channel":"sys.state.update","type":"s","payload":{"n":2},"priority":"low","source":"RES-001"}',
      ].join('\n'),
    )
    const bulk = await runCli(['publish', ...target(prefix), '--ndjson', file, '--json'])
    expect(bulk.code, bulk.stderr).toBe(0)
    const output = JSON.parse(bulk.stdout)
    expect(output.channel).toBeNull()
    expect(output.ids).toHaveLength(2)
    expect(await streamOf(prefix, 'sys.alert.warning')).toMatchObject([{id: output.ids[0], data: {n: 1}}])
    expect(await streamOf(prefix, 'sys.state.update')).toMatchObject([
      {id: output.ids[1], data: {n: 2}, priority: 'low', source: 'RES-001'},
    ])

    const piped = await runCli(
      ['publish', ...target(prefix), '--ndjson', '-', '-c', 'sys.guild.muse.broadcast', '-t', 'idea'],
      {input: '{"a":1}\n{"a":2}\n'},
    )
    expect(piped.code, piped.stderr).toBe(0)
    expect(piped.stdout.trim().split('\n')).toHaveLength(2)
    expect((await streamOf(prefix, 'sys.guild.muse.broadcast')).map((e) => e.data)).toEqual([{a: 1}, {a: 2}])
  })

  describe.concurrent('rejects bad input with exit 2, one line, and writes nothing', () => {
    const base = ['-c', 'sys.alert.warning', '-t', 'x']

    it('malformed JSON', () =>
      expectRejected([...base, '--payload', '{"a":'], /^Error: malformed JSON in --payload/))

    it('a payload that is not an object', () =>
      expectRejected([...base, '--payload', '[1,2]'], /must be a JSON object/))

    it('an unknown flag value', () =>
      expectRejected([...base, '--priority', 'urgent'], /--priority=urgent.*low, normal, high, critical/))

    it('an out-of-range flag value', () =>
      expectRejected(
        [...base, '--count', '0'],
        /^Error: --count: Expected an integer greater than or equal to 1/,
      ))

    it('a missing payload file', () =>
      expectRejected([...base, '--payload', '@/nonexistent/p.json'], /cannot read --payload file.*ENOENT/))

    it('a bad NDJSON line, naming it', () =>
      expectRejected(['--ndjson', '-'], /stdin line 2/, {
        input: '{"channel":"sys.alert.warning","type":"a"}\n{nope\n',
      }))

    it('a payload that fails its type schema from the config file', () =>
      expectRejected(
        ['-c', 'app.orders.eu', '-t', 'order_created', '--payload', '{"orderId":7}'],
        /order_created.*orderId/,
        {
          cwd: tempDir({
            'raptor.config.json': {
              channels: [{name: 'app.orders.*', retention: '1h'}],
              schemas: {
                order_created: {
                  type: 'object',
                  properties: {orderId: {type: 'string'}},
                  required: ['orderId'],
                },
              },
            },
          }),
        },
      ))

    it('an oversized payload (maxPayloadBytes)', () =>
      expectRejected([...base, '--payload', `{"x":"${'y'.repeat(100)}"}`], /over the limit of 64/, {
        cwd: tempDir({'raptor.config.json': {maxPayloadBytes: 64}}),
      }))
  })

  describe.concurrent('refuses what cannot round-trip (exit 2, one line, nothing written)', () => {
    const line = (payload: string) => `{"channel":"sys.state.update","type":"t","payload":${payload}}\n`

    it('an integer beyond 2^53 in --payload', () =>
      expectRejected(
        ['-c', 'sys.state.update', '-t', 't', '--payload', '{"n":12345678901234567890}'],
        /data\.n: integer 12345678901234567000 is beyond ±2\^53.*send it as a string/,
      ))

    it('an integer beyond 2^53 in --ndjson', () =>
      expectRejected(['--ndjson', '-'], /data\.big: integer .* is beyond ±2\^53/, {
        input: line('{"ok":1}') + line('{"big":-12345678901234567890}'),
      }))

    it('a number JSON cannot carry (1e400)', () =>
      expectRejected(['--ndjson', '-'], /holds a number JSON cannot carry \(n: Infinity\)/, {
        input: line('{"n":1e400}'),
      }))

    it('"payload": null', () =>
      expectRejected(['--ndjson', '-'], /payload in stdin line 1 must be a JSON object/, {
        input: line('null'),
      }))

    it('a field a short-form line does not have', () =>
      expectRejected(['--ndjson', '-'], /stdin line 1: unknown field "correlation_id"/, {
        input: '{"channel":"sys.state.update","type":"t","correlation_id":"x"}\n',
      }))

    it('an event id with a control character', () =>
      expectRejected(
        ['--ndjson', '-'],
        /invalid event: id: must be 1-256 characters without control characters/,
        {
          input: '{"channel":"sys.state.update","type":"t","id":"a\\u001b[2Jb"}\n',
        },
      ))
  })

  it('keeps what a bulk line gives: correlationid (either spelling), id, time, subject, extensions', async () => {
    const prefix = randomPrefix()
    const input = [
      '{"channel":"sys.state.update","type":"a","payload":{"n":1},"correlationid":"req-1"}',
      '{"channel":"sys.state.update","type":"b","data":{"n":2},"correlationId":"req-2","id":"order 2","time":"2026-11-29T08:00:00+01:00","subject":"s","extensions":{"tenant":"acme"}}',
    ].join('\n')
    const result = await runCli(['publish', ...target(prefix), '--ndjson', '-'], {input})
    expect(result.code, result.stderr).toBe(0)
    const [a, b] = await streamOf(prefix, 'sys.state.update')
    expect(a).toMatchObject({type: 'a', data: {n: 1}, correlationid: 'req-1'})
    expect(b).toMatchObject({
      id: 'order 2',
      type: 'b',
      time: '2026-11-29T08:00:00+01:00',
      subject: 's',
      tenant: 'acme',
      correlationid: 'req-2',
      data: {n: 2},
    })
  })

  it('exits 2 for an unknown channel, naming the nearest one, and parks the event', async () => {
    const prefix = randomPrefix()
    const result = await runCli(['publish', ...target(prefix), '-c', 'sys.alert.critcal', '-t', 'fire'])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toMatch(
      /unknown channel 'sys.alert.critcal'.*parked.*did you mean 'sys.alert.critical'/,
    )
    const parked = await reader.xrange(`${prefix}:ch:{sys.dlq.routing_error}:dlq:routing_error`, '-', '+')
    expect(parked).toHaveLength(1)
    expect(await reader.exists(`${prefix}:ch:{sys.alert.critcal}:stream`)).toBe(0)
  })

  it('exits 69 within seconds when Redis is unreachable, in one line, without the password', async () => {
    const started = Date.now()
    const result = await runCli([
      'publish',
      '--redis-url',
      'redis://u:secret@127.0.0.1:1/0',
      '-c',
      'sys.alert.warning',
      '-t',
      'x',
    ])
    expect(Date.now() - started).toBeLessThan(4000)
    expect(result.code).toBe(69)
    expect(result.stdout).toBe('')
    // The warning that a password on the command line shows in `ps`, then the error: one line each.
    const [warning, error, ...rest] = result.stderr.trim().split('\n')
    expect(rest).toEqual([])
    expect(warning).toMatch(/^Warning: a password on the command line is visible/)
    expect(error).toMatch(/cannot reach Redis at redis:\/\/u:\*\*\*@127\.0\.0\.1:1/)
    expect(result.stderr).not.toContain('secret')
  })

  it('takes --prefix and the Redis URL from flag, then env, then config file', async () => {
    const [flagPrefix, envPrefix, configPrefix] = [randomPrefix(), randomPrefix(), randomPrefix()]
    const bad = 'redis://127.0.0.1:1/0'
    const args = ['publish', '-c', 'sys.state.update', '-t', 'where']
    const run = async (extra: string[], env: Record<string, string>, config: object) => {
      const result = await runCli([...args, ...extra], {env, cwd: tempDir({'raptor.config.json': config})})
      expect(result.code, result.stderr).toBe(0)
      return result.stdout.trim()
    }
    // Flag beats env beats config, for both settings.
    const byFlag = await run(
      ['--prefix', flagPrefix, '--redis-url', redisUrl()],
      {RAPTOR_PREFIX: envPrefix, REDIS_URL: bad},
      {prefix: configPrefix, redisUrl: bad},
    )
    const byEnv = await run(
      [],
      {RAPTOR_PREFIX: envPrefix, REDIS_URL: redisUrl()},
      {prefix: configPrefix, redisUrl: bad},
    )
    const byConfig = await run([], {}, {prefix: configPrefix, redisUrl: redisUrl()})
    expect((await streamOf(flagPrefix, 'sys.state.update')).map((e) => e.id)).toEqual([byFlag])
    expect((await streamOf(envPrefix, 'sys.state.update')).map((e) => e.id)).toEqual([byEnv])
    expect((await streamOf(configPrefix, 'sys.state.update')).map((e) => e.id)).toEqual([byConfig])
  })
})
