import {spawn} from 'node:child_process'

import {expect, it} from 'vitest'

import {RoutingError, type RaptorBus} from '../../src/bus/index.js'
import {BIN, describeTargets, onCluster, redisUrl, testBuses, waitFor} from '../helpers/index.js'
import {addDlq, cli} from '../helpers/ops.js'
import {labelSets, parseExposition, sample} from '../helpers/prometheus.js'

const bus = testBuses()

const CH = 'sys.alert.warning'

/**
 * A known workload: 5 events on CH and 3 on sys.state.update, one routing error, a consumer group h1
 * on CH that has read 2 (unacked), two dead letters of h1 of which one is requeued, a live subscriber.
 */
async function workload(b: RaptorBus) {
  await b.subscribe('sys.**', () => {})
  await b.publishMany(Array.from({length: 5}, (_, i) => ({channel: CH, type: 'a', payload: {i}})))
  await b.publishMany(Array.from({length: 3}, () => ({channel: 'sys.state.update', type: 's'})))
  await expect(b.publish({channel: 'app.unknown', type: 'x'})).rejects.toBeInstanceOf(RoutingError)
  await b.redis.xgroup('CREATE', b.keys.stream(CH), 'h1', '0')
  await b.redis.xreadgroup('GROUP', 'h1', 'c1', 'COUNT', 2, 'STREAMS', b.keys.stream(CH), '>')
  // What the consumer scripts would count for those deliveries and the two dead letters.
  await b.redis.hset(b.keys.handlerStats(CH, 'h1'), {delivered: 2, failed: 2, deadLettered: 2})
  await b.redis.hincrby(b.keys.stats(CH), 'delivered', 2)
  await addDlq(b, [
    {channel: CH, handler: 'h1'},
    {channel: CH, handler: 'h1'},
  ])
  const requeue = await b.dlq.requeue({limit: 1})
  expect(requeue.requeued).toBe(1)
}

describeTargets('raptor metrics', () => {
  it('reports what was published, delivered, requeued; lag, pending, DLQ depth, subscribers (json)', async () => {
    const b = await bus()
    await workload(b)
    const r = await cli(b, ['metrics', '--json'])
    expect(r.code).toBe(0)
    const m = JSON.parse(r.stdout)
    expect(m.global.counters).toMatchObject({published: 8, delivered: 2, deadLettered: 1, requeued: 1})
    // Read from every master of a cluster, and said so.
    expect(m.redis).toEqual(
      onCluster() ? {deployment: 'cluster', masters: 3} : {deployment: 'standalone', masters: 1},
    )
    // Exact on a cluster too: SPUBLISH reaches the shard subscription on the owning master.
    expect(m.global.counters.liveDelivered).toBe(8)
    expect(m.global.dlqDepth).toEqual({
      max_retries_exceeded: 1,
      schema_violation: 0,
      routing_error: 1,
      processing_timeout: 0,
    })
    expect(m.global.dlqTotal).toBe(2)
    expect(m.subscribers).toBe(1)
    expect(m.agents).toEqual({live: 0, stale: 0})
    const ch = m.channels.find((c: {channel: string}) => c.channel === CH)
    expect(ch).toMatchObject({
      streamLength: 5,
      retentionMs: 86_400_000,
      counters: {published: 5, requeued: 1},
    })
    // lag: 3 unread on the channel stream + 1 requeued (no group on rq yet); pending: 2 read, unacked.
    expect(ch.handlers).toEqual([
      {
        handler: 'h1',
        counters: expect.objectContaining({delivered: 2, failed: 2, deadLettered: 2, requeued: 1}),
        lag: 4,
        pending: 2,
        consumers: 1,
        requeueLength: 1,
      },
    ])
    const one = await cli(b, ['metrics', '--channel', 'sys.state.update', '--json'])
    expect(JSON.parse(one.stdout)).toMatchObject({
      channel: 'sys.state.update',
      streamLength: 3,
      counters: {published: 3},
    })
    expect(await b.channelMetrics(CH)).toMatchObject({streamLength: 5})
  })

  it('renders a table and the Prometheus exposition', async () => {
    const b = await bus()
    await workload(b)
    const table = await cli(b, ['metrics'])
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/published 8 {2}delivered 2/)
    expect(table.stdout.split('\n')[0].includes(' · cluster of 3 masters · ')).toBe(onCluster())
    // Off a terminal nothing is cut or left out: every column, as -o wide.
    // CHANNEL RETENTION LENGTH PUBLISHED DELIVERED ACKED FAILED RETRIED DEAD REQUEUED LIVE DLQ
    expect(table.stdout).toMatch(/^sys\.alert\.warning +1d +5 +5 +2 +0 +0 +0 +0 +1 +5 +1$/m)
    // HANDLER CHANNEL LAG PENDING CONSUMERS DELIVERED ACKED FAILED DEAD REQUEUED
    expect(table.stdout).toMatch(/^h1 +sys\.alert\.warning +4 +2 +1 +2 +0 +2 +2 +1$/m)
    const wide = await cli(b, ['metrics', '-o', 'wide'])
    expect(wide.stdout).toBe(table.stdout.replace(/· \S+Z\n/, wide.stdout.match(/· \S+Z\n/)![0]))
    const prom = await cli(b, ['metrics', '--format', 'prometheus'])
    expect(prom.code).toBe(0)
    const m = parseExposition(prom.stdout)
    expect(m.families.get('raptor_published_total')).toMatchObject({
      type: 'COUNTER',
      help: 'Events published, per channel.',
    })
    expect(sample(m, 'raptor_published_total', {channel: CH})).toBe(5)
    expect(sample(m, 'raptor_published_total', {channel: 'sys.state.update'})).toBe(3)
    expect(sample(m, 'raptor_requeued_total', {channel: CH})).toBe(1)
    expect(sample(m, 'raptor_handler_delivered_total', {channel: CH, handler: 'h1'})).toBe(2)
    expect(m.families.get('raptor_consumer_lag')?.type).toBe('GAUGE')
    expect(sample(m, 'raptor_consumer_lag', {channel: CH, handler: 'h1'})).toBe(4)
    expect(sample(m, 'raptor_consumer_pending', {channel: CH, handler: 'h1'})).toBe(2)
    expect(sample(m, 'raptor_dlq_depth', {channel: CH, reason: 'max_retries_exceeded'})).toBe(1)
    expect(sample(m, 'raptor_dlq_depth', {channel: 'sys.dlq.routing_error', reason: 'routing_error'})).toBe(1)
    expect(sample(m, 'raptor_live_subscribers')).toBe(1)
  })

  it('has no series that cannot move: no handler publish counters, DLQ depth only where a reason can occur', async () => {
    const b = await bus()
    await workload(b)
    const m = parseExposition((await cli(b, ['metrics', '--format', 'prometheus'])).stdout)
    // Publishing and live fan-out are per channel only; a handler never moves them.
    expect(m.families.has('raptor_handler_published_total')).toBe(false)
    expect(m.families.has('raptor_handler_live_delivered_total')).toBe(false)
    expect(m.families.has('raptor_live_delivered_total')).toBe(true)
    // Routing errors live under their pseudo-channel only; the handlers' reasons where a handler consumes.
    expect(
      labelSets(m, 'raptor_dlq_depth').sort((x, y) =>
        (x.channel + x.reason).localeCompare(y.channel + y.reason),
      ),
    ).toEqual([
      {channel: CH, reason: 'max_retries_exceeded'},
      {channel: CH, reason: 'processing_timeout'},
      {channel: CH, reason: 'schema_violation'},
      {channel: 'sys.dlq.routing_error', reason: 'routing_error'},
    ])
  })

  it('--watch repeats until SIGINT and exits 130', async () => {
    const b = await bus()
    const child = spawn(process.execPath, [
      BIN,
      'metrics',
      '--watch',
      '1',
      '--format',
      'json',
      '--redis-url',
      redisUrl(),
      '--prefix',
      b.keys.prefix,
    ])
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    const code = new Promise((resolve) => child.on('exit', (c) => resolve(c)))
    await waitFor(() => out.split('\n').filter(Boolean).length >= 2, 10_000, 'two snapshots')
    child.kill('SIGINT')
    expect(await code).toBe(130)
    expect(JSON.parse(out.split('\n')[0]).global.counters.published).toBe(0)
  })
})

describeTargets('health thresholds', () => {
  it('turns degraded when the DLQ depth or a lag is over its limit', async () => {
    const b = await bus()
    await workload(b)
    const fine = await b.health({maxDlq: 10, maxLag: 10})
    expect(fine.status).toBe('healthy')
    expect(fine.checks.map((c) => c.name)).toEqual(expect.arrayContaining(['dlq', 'lag']))
    const dlq = await b.health({maxDlq: 1})
    expect(dlq.status).toBe('degraded')
    expect(dlq.checks.find((c) => c.name === 'dlq')).toMatchObject({status: 'warn'})
    const lag = await b.health({maxLag: 3})
    expect(lag.status).toBe('degraded')
    expect(lag.checks.find((c) => c.name === 'lag')?.detail).toContain(`h1@${CH} 4`)
    expect((await b.health()).checks.map((c) => c.name)).not.toContain('dlq')
  })
})
