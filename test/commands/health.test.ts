import {Redis} from 'ioredis'
import {describe, expect, it} from 'vitest'

import {randomPrefix, redisUrl, runCli, target} from '../helpers/index.js'

describe('raptor health', () => {
  it('reports a healthy bus: --json is the HealthReport, exit 0', async () => {
    const prefix = randomPrefix()
    // A generous latency limit: a busy 2-core test box must not turn this degraded.
    const [json, human] = await Promise.all([
      runCli(['health', ...target(prefix), '--json', '--max-latency', '5000']),
      runCli(['health', ...target(prefix), '--max-latency', '5000']),
    ])
    expect(json.code, json.stderr).toBe(0)
    const report = JSON.parse(json.stdout)
    expect(report).toMatchObject({status: 'healthy', agents: []})
    expect(report.redisVersion).toMatch(/^\d+\.\d+/)
    expect(report.latencyMs).toBeGreaterThanOrEqual(0)
    expect(report.connectedClients).toBeGreaterThan(0)
    expect(report.usedMemoryBytes).toBeGreaterThan(0)
    expect(report.checks.map((c: {name: string}) => c.name)).toEqual(['redis', 'latency', 'agents'])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toMatch(/^status: healthy\nredis \d+\.\d+/)
    expect(human.stdout).toMatch(/latency +pass +[\d.]+ ms \(limit 5000 ms\)/)
  })

  it('exits 1 when degraded (a stale agent), still printing the report', async () => {
    const prefix = randomPrefix()
    const redis = new Redis(redisUrl())
    try {
      const [sec] = await redis.time()
      const lastSeen = Number(sec) * 1000 - 120_000
      await redis.hset(
        `${prefix}:agents`,
        'RES-001',
        JSON.stringify({handlers: ['h'], lastSeen, intervalMs: 1000}),
      )
    } finally {
      redis.disconnect()
    }
    const result = await runCli(['health', ...target(prefix), '--json'])
    expect(result.code, result.stderr).toBe(1)
    const report = JSON.parse(result.stdout)
    expect(report.status).toBe('degraded')
    expect(report.agents).toMatchObject([{id: 'RES-001', stale: true}])
    expect(report.checks).toContainEqual(expect.objectContaining({name: 'agents', status: 'warn'}))
  })

  it('turns degraded (exit 1) past --max-dlq, and stays healthy under it', async () => {
    const prefix = randomPrefix()
    // One real dead letter: an event for an unknown channel is parked in DLQ routing_error.
    const parked = await runCli(['publish', ...target(prefix), '-c', 'sys.nowhere', '-t', 'x'])
    expect(parked.code).toBe(2)
    const [over, under] = await Promise.all([
      runCli([
        'health',
        ...target(prefix),
        '--json',
        '--max-latency',
        '5000',
        '--max-dlq',
        '0',
        '--max-lag',
        '10',
      ]),
      runCli(['health', ...target(prefix), '--json', '--max-latency', '5000', '--max-dlq', '1']),
    ])
    expect(over.code, over.stderr).toBe(1)
    const report = JSON.parse(over.stdout)
    expect(report.status).toBe('degraded')
    expect(report.checks).toContainEqual(expect.objectContaining({name: 'dlq', status: 'warn'}))
    expect(report.checks).toContainEqual(expect.objectContaining({name: 'lag', status: 'pass'}))
    expect(under.code, under.stderr).toBe(0)
    expect(JSON.parse(under.stdout).checks).toContainEqual(
      expect.objectContaining({name: 'dlq', status: 'pass'}),
    )
  })

  it('exits 69 when Redis is unreachable', async () => {
    const result = await runCli(['health', '--redis-url', 'redis://:pw@127.0.0.1:1/0'])
    expect(result.code).toBe(69)
    // The warning that a password on the command line shows in `ps`, then the error: one line each.
    const [warning, error, ...rest] = result.stderr.trim().split('\n')
    expect(rest).toEqual([])
    expect(warning).toMatch(/^Warning: a password on the command line is visible/)
    expect(error).toMatch(/cannot reach Redis/)
    expect(result.stderr).not.toContain('pw@')
  })
})
