import {Redis} from 'ioredis'
import {describe, expect, it} from 'vitest'

import {addDlq, publishBurst} from '../helpers/ops.js'
import {cliProcesses, randomPrefix, redisUrl, target, testBuses, waitFor} from '../helpers/index.js'

// Memory flat in the size of the job: each command runs with a V8 heap capped at 64 MB, far below
// what holding the whole job would take (the old code died of "heap out of memory" on each of these).

const bus = testBuses()
const start = cliProcesses({env: {NODE_OPTIONS: '--max-old-space-size=64'}, timeoutMs: 120_000})

/** Seconds since the client named `name` last sent a command (CLIENT LIST `idle`), or -1. */
async function idleSeconds(name: string): Promise<number> {
  const redis = new Redis(redisUrl())
  try {
    const list = (await redis.client('LIST')) as string
    const line = list.split('\n').find((l) => l.includes(` name=${name} `))
    return line ? Number(/ idle=(\d+)/.exec(line)?.[1] ?? -1) : -1
  } finally {
    redis.disconnect()
  }
}

describe('bounded memory (heap capped at 64 MB)', () => {
  it('publish --count 200000 prepares and writes in chunks', async () => {
    const prefix = randomPrefix()
    const child = start([
      'publish',
      '-c',
      'sys.state.update',
      '-t',
      'tick',
      '--count',
      '200000',
      ...target(prefix),
    ])
    // A reader that keeps up: the ids are streamed out.
    const result = await child.exited
    expect(result.code, result.stderr.slice(-2000)).toBe(0)
    expect(result.stdout.split('\n').filter((l) => l.startsWith('evt-'))).toHaveLength(200_000)
    const b = await bus({prefix})
    expect(await b.redis.xlen(b.keys.stream('sys.state.update'))).toBe(200_000)
  }, 180_000)

  it('tail --since into a reader that stops reading waits for it (back-pressure), then delivers everything in order', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    const total = 30_000
    await publishBurst(b, 'sys.state.update', total, 'tick', {text: 'x'.repeat(3000)})
    const child = start([
      'tail',
      'sys.state.update',
      '--since',
      '1h',
      '--json',
      '--count',
      String(total),
      ...target(prefix),
    ])
    // The reader sleeps: nothing is read until tail has stopped reading history (blocked on the
    // reader, or done reading it all into memory as the old code did).
    child.child.stdout!.pause()
    await waitFor(
      async () => child.child.exitCode !== null || (await idleSeconds(`${prefix}:cmd`)) >= 2,
      60_000,
      'tail to stop reading history',
    )
    expect(child.child.exitCode, child.stderr.slice(-2000)).toBeNull()
    child.child.stdout!.resume()
    const result = await child.exited
    expect(result.code, result.stderr.slice(-2000)).toBe(0)
    const ns = result.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as {data: {n: number}}).data.n)
    expect(ns).toEqual(Array.from({length: total}, (_, n) => n))
  }, 180_000)

  it('dlq list --json --limit 20000 streams the entries', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    for (let i = 0; i < 20; i++)
      await addDlq(
        b,
        Array.from({length: 1000}, () => ({
          channel: 'sys.alert.warning',
          handler: 'h',
          error: 'e'.repeat(1000),
        })),
      )
    const child = start(['dlq', 'list', '--json', '--limit', '20000', ...target(prefix)])
    const result = await child.exited
    expect(result.code, result.stderr.slice(-2000)).toBe(0)
    const {entries} = JSON.parse(result.stdout) as {entries: {id: string; error: string}[]}
    expect(entries).toHaveLength(20_000)
    expect(new Set(entries.map((e) => e.id)).size).toBe(20_000)
  }, 180_000)
})
