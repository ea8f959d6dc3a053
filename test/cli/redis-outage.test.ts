import {Redis} from 'ioredis'
import {afterEach, describe, expect, it} from 'vitest'

import {RaptorBus} from '../../src/bus/index.js'
import {publishBurst} from '../helpers/ops.js'
import {cliProcesses, ndjson, randomPrefix, waitFor, type RunningCli} from '../helpers/index.js'
import {RedisServer} from '../helpers/redis-server.js'

// Redis freezing (SIGSTOP), restarting and cutting a subscriber off, with real processes: one-shot
// commands give up within ~5 s (exit 69, or 3 when part was written), long-lived ones reconnect and
// say so.

const servers: RedisServer[] = []
const buses: RaptorBus[] = []
const cli = cliProcesses({timeoutMs: 40_000})

afterEach(async () => {
  while (buses.length > 0) await buses.pop()!.close()
  for (const s of servers.splice(0)) await s.stop(true)
})

async function server(extra: string[] = []): Promise<RedisServer> {
  const s = await RedisServer.start(undefined, extra)
  servers.push(s)
  return s
}

const start = (s: RedisServer, prefix: string, args: string[]): RunningCli =>
  cli([...args, '--redis-url', s.url, '--prefix', prefix])

async function busOn(s: RedisServer, prefix: string): Promise<RaptorBus> {
  const b = await RaptorBus.connect({redisUrl: s.url, prefix})
  buses.push(b)
  return b
}

async function xlen(s: RedisServer, key: string): Promise<number> {
  const r = new Redis(s.url)
  try {
    return await r.xlen(key)
  } finally {
    r.disconnect()
  }
}

describe('Redis stops answering (SIGSTOP)', () => {
  it('a one-shot command gives up with exit 69 and says Redis stopped answering', async () => {
    const s = await server()
    const child = start(s, randomPrefix(), ['metrics', '--watch', '1', '--json'])
    // Connected and working: the first snapshot is out. Then Redis freezes.
    await waitFor(
      () => child.stdout.includes('\n') || child.child.exitCode !== null,
      15_000,
      'a first snapshot',
    )
    s.pause()
    const result = await child.exited
    s.resume()
    expect(result.code, result.stderr).toBe(69)
    expect(result.stderr).toMatch(/Redis stopped answering \(no reply within 5 s\)/)
  })

  it('publish --count cut off mid-way exits 3 naming how many were published', async () => {
    const s = await server()
    const prefix = randomPrefix()
    const child = start(s, prefix, ['publish', '-c', 'sys.state.update', '-t', 'tick', '--count', '1000000'])
    const stream = `${prefix}:ch:{sys.state.update}:stream`
    await waitFor(async () => (await xlen(s, stream)) > 0 || child.child.exitCode !== null, 30_000, 'writes')
    s.pause()
    const result = await child.exited
    s.resume()
    expect(result.code, result.stderr).toBe(3)
    const match = /published (\d+) of 1000000 events, then: Redis stopped answering/.exec(result.stderr)
    expect(match, result.stderr).not.toBeNull()
    // Every id printed was published, and the count says so.
    const printed = result.stdout.split('\n').filter((l) => l.startsWith('evt-')).length
    expect(printed).toBe(Number(match![1]))
    expect(await xlen(s, stream)).toBeGreaterThanOrEqual(printed)
  })
})

describe('long-lived commands reconnect by themselves and say so', () => {
  it('tail logs "redis: connection lost" and "redis: reconnected" across a Redis restart, then keeps going', async () => {
    const s = await server()
    const prefix = randomPrefix()
    const tail = start(s, prefix, ['tail', 'sys.**', '--json'])
    await waitFor(() => tail.stderr.includes('tail: listening on'), 15_000, 'tail listening')
    await s.restart()
    await waitFor(() => tail.stderr.includes('redis: reconnected'), 20_000, 'reconnected')
    expect(tail.stderr).toMatch(/redis: connection lost \(.+\)\n(.*\n)*redis: reconnected/)
    const b = await busOn(s, prefix)
    // Resubscribed: an event published now arrives.
    await waitFor(
      async () => {
        await b.publish({channel: 'sys.alert.warning', type: 'after_restart'})
        return tail.stdout.includes('after_restart')
      },
      15_000,
      'an event after the restart',
    )
  })

  it('the agent logs the loss and the reconnection (NDJSON with --json)', async () => {
    const s = await server()
    const plugin = new URL('../fixtures/plugins/worker.mjs', import.meta.url).pathname
    const agent = start(s, randomPrefix(), ['agent', '--plugin', plugin, '--json'])
    await waitFor(() => agent.stdout.includes('started'), 15_000, 'agent started')
    await s.restart()
    await waitFor(() => agent.stdout.includes('redis: reconnected'), 20_000, 'reconnected')
    const messages = ndjson(agent.stdout).map((l) => String(l.msg))
    const lost = messages.findIndex((m) => m.startsWith('redis: connection lost'))
    expect(lost, messages.join('\n')).toBeGreaterThanOrEqual(0)
    expect(messages.indexOf('redis: reconnected')).toBeGreaterThan(lost)
  })

  it('tail cut off by Redis (output-buffer limit) reports the disconnect and what it may have missed', async () => {
    // A subscriber whose output buffer passes 256 kB is disconnected by Redis at once.
    const s = await server(['--client-output-buffer-limit', 'pubsub 256kb 128kb 1'])
    const prefix = randomPrefix()
    const tail = start(s, prefix, ['tail', 'sys.state.update', '--json'])
    await waitFor(() => tail.stderr.includes('tail: listening on'), 15_000, 'tail listening')
    const b = await busOn(s, prefix)
    // tail is frozen: the socket buffers fill, then Redis's output buffer, then Redis cuts it off.
    tail.child.kill('SIGSTOP')
    await publishBurst(b, 'sys.state.update', 20_000, 'burst', {text: 'x'.repeat(1000)})
    tail.child.kill('SIGCONT')
    await waitFor(
      () => /tail: disconnected by Redis: missed up to \d+ events/.test(tail.stderr),
      20_000,
      'the gap report',
    )
    const missed = Number(/missed up to (\d+) events/.exec(tail.stderr)![1])
    const received = ndjson(tail.stdout).length
    expect(missed).toBeGreaterThan(0)
    expect(missed).toBeLessThanOrEqual(20_000 - received)
    expect(tail.stderr).toContain('redis: connection lost')
    expect(tail.stderr).toContain('redis: reconnected')
  })
})
