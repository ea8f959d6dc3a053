import {expect, it} from 'vitest'

import {describeTargets, onCluster, randomPrefix, rawClient, runCli, target} from '../helpers/index.js'

describeTargets('raptor health', () => {
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
    // On a cluster: every master asked, and said so.
    expect(report).toMatchObject(
      onCluster() ? {deployment: 'cluster', masters: 3} : {deployment: 'standalone', masters: 1},
    )
    expect(report.checks.map((c: {name: string}) => c.name)).toEqual([
      'redis',
      'latency',
      'agents',
      'stalled',
    ])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toMatch(
      onCluster()
        ? /^status: healthy\nredis \d+\.\d+\.\d+ \(cluster of 3 masters\), latency /
        : /^status: healthy\nredis \d+\.\d+\.\d+, latency /,
    )
    expect(human.stdout).toMatch(
      onCluster()
        ? /redis +pass +reachable, version [\d.]+, cluster of 3 masters/
        : /redis +pass +reachable, version [\d.]+$/m,
    )
    expect(human.stdout).toMatch(/latency +pass +[\d.]+ ms \(limit 5000 ms\)/)
  })

  it('exits 1 when degraded (a stale agent), still printing the report', async () => {
    const prefix = randomPrefix()
    const redis = rawClient()
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

  it('is degraded by default when a handler has a backlog no live agent serves; a live agent clears it', async () => {
    const prefix = randomPrefix()
    const redis = rawClient()
    try {
      const stream = `${prefix}:ch:{sys.state.update}:stream`
      const [sec] = await redis.time()
      // An event published 5 minutes ago that the consumer group "worker" never read.
      await redis.xadd(stream, `${Number(sec) * 1000 - 300_000}-0`, 'e', '{}')
      await redis.xgroup('CREATE', stream, 'worker', '0')
      const stalled = await runCli(['health', ...target(prefix), '--json', '--max-latency', '5000'])
      expect(stalled.code).toBe(1)
      const report = JSON.parse(stalled.stdout)
      expect(report.status).toBe('degraded')
      expect(report.checks.find((c: {name: string}) => c.name === 'stalled')).toEqual({
        name: 'stalled',
        status: 'warn',
        detail: expect.stringMatching(
          /^no live agent serves worker@sys\.state\.update \(lag 1, oldest waiting 30\d s\): start raptor agent/,
        ),
      })
      const human = await runCli(['health', ...target(prefix), '--max-latency', '5000'])
      expect(human.stdout).toMatch(/stalled +warn +no live agent serves worker@sys\.state\.update/)
      // A threshold tunes it: 10 minutes of waiting is still fine.
      const tuned = await runCli(['health', ...target(prefix), '--max-wait', '10m', '--max-latency', '5000'])
      expect(tuned.code, tuned.stdout).toBe(0)
      // A live agent running the handler serves the backlog.
      await redis.hset(
        `${prefix}:agents`,
        'A1',
        JSON.stringify({handlers: ['worker'], lastSeen: Number(sec) * 1000, intervalMs: 30_000}),
      )
      const served = await runCli(['health', ...target(prefix), '--max-latency', '5000'])
      expect(served.code, served.stdout).toBe(0)
      expect(served.stdout).toMatch(
        /^status: healthy\nredis [\d.]+(?: \(cluster of 3 masters\))?, latency [\d.]+ ms, \d+ clients?, /,
      )
    } finally {
      redis.disconnect()
    }
  })
})
