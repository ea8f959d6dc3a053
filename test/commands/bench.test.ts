import {Redis} from 'ioredis'
import {describe, expect, it} from 'vitest'

import {randomPrefix, redisUrl, runCli} from '../helpers/index.js'

/** Keys left under a prefix (bench must delete every key it made). */
async function keysUnder(prefix: string): Promise<string[]> {
  const redis = new Redis(redisUrl())
  try {
    return await redis.keys(`${prefix}:*`)
  } finally {
    redis.disconnect()
  }
}

describe('raptor bench', () => {
  it('publishes, delivers live and reports plausible figures as JSON, then removes its keys', async () => {
    const prefix = randomPrefix()
    const {code, stdout, stderr} = await runCli([
      'bench',
      '--count',
      '1000',
      '--json',
      '--redis-url',
      redisUrl(),
      '--prefix',
      prefix,
    ])
    expect(code, stderr).toBe(0)
    const result = JSON.parse(stdout)
    expect(result.prefix).toMatch(new RegExp(`^${prefix}:bench-[0-9a-f]{8}$`))
    expect(result.channel).toMatch(/^bench\.[0-9a-f]{8}$/)
    expect(result.publishers).toMatchObject({clients: 1, events: 1000})
    expect(result.publishers.eventsPerSec).toBeGreaterThan(0)
    expect(result.subscribers).toMatchObject({clients: 1, events: 1000, lost: 0})
    const latency = result.subscribers.latencyMs
    expect(latency.count).toBe(1000)
    expect(latency.p50).toBeGreaterThan(0)
    expect(latency.p50).toBeLessThanOrEqual(latency.p90)
    expect(latency.p90).toBeLessThanOrEqual(latency.p99)
    expect(latency.p99).toBeLessThanOrEqual(latency.p999)
    expect(latency.p999).toBeLessThanOrEqual(latency.max)
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('measures durable consumers: every event handled once, latency from publish to handler start', async () => {
    const prefix = randomPrefix()
    const {code, stdout, stderr} = await runCli([
      'bench',
      '--count',
      '500',
      '--subscribers',
      '0',
      '--consumers',
      '2',
      '--json',
      '--redis-url',
      redisUrl(),
      '--prefix',
      prefix,
    ])
    expect(code, stderr).toBe(0)
    const result = JSON.parse(stdout)
    expect(result.consumers).toMatchObject({clients: 2, events: 500, lost: 0})
    expect(result.consumers.latencyMs.count).toBe(500)
    expect(result.consumers.latencyMs.p50).toBeGreaterThan(0)
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('rejects --count with --duration, and a bad --rate, with exit 2', async () => {
    const both = await runCli(['bench', '--count', '10', '--duration', '1s', '--redis-url', redisUrl()])
    expect(both.code).toBe(2)
    const rate = await runCli(['bench', '--rate', 'fast', '--redis-url', redisUrl(), '--json'])
    expect(rate.code).toBe(2)
    expect(JSON.parse(rate.stdout).error.message).toContain('--rate')
  })
})
