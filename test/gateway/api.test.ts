import {afterEach, describe, expect, it} from 'vitest'

import type {Gateway} from '../../src/gateway/server.js'
import {call, startTestGateway} from '../helpers/gateway.js'
import {testBuses, waitFor} from '../helpers/index.js'
import {RedisServer} from '../helpers/redis-server.js'
import {RaptorBus} from '../../src/bus/index.js'
import {addDlq, cli} from '../helpers/ops.js'

const bus = testBuses()
const open: Gateway[] = []
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close()
})

async function setup(options: Parameters<typeof bus>[0] = {}) {
  const b = await bus(options)
  const g = await startTestGateway(b)
  open.push(g)
  return {bus: b, url: g.url}
}

const post = (json: unknown) => ({method: 'POST', json})

describe('history endpoints', () => {
  it('GET /v1/events/{id}: the event, or 404 with the reason', async () => {
    const {bus: b, url} = await setup()
    const id = await b.publish({channel: 'sys.alert.warning', type: 'disk_low', payload: {free: 0.05}})
    const got = await call(`${url}/v1/events/${id}`)
    expect(got.status).toBe(200)
    expect(got.body).toEqual(await b.getEvent(id))
    const missing = await call(`${url}/v1/events/evt-00000000-0000-4000-8000-000000000000`)
    expect(missing.status).toBe(404)
    expect(missing.body.error).toMatchObject({code: 'NOT_FOUND', status: 404})
    expect(missing.body.error.message).toMatch(/never published here or has expired/)
  })

  it('GET /v1/channels answers what `raptor channels --json` prints', async () => {
    const {bus: b, url} = await setup()
    await b.publish({channel: 'sys.state.update', type: 't'})
    const [http, shell] = await Promise.all([call(`${url}/v1/channels`), cli(b, ['channels', '--json'])])
    expect(shell.code).toBe(0)
    expect(http.body).toEqual(JSON.parse(shell.stdout))
  })

  it('GET /v1/channels/{ch}/events pages through history with next/after, by type and time', async () => {
    const {bus: b, url} = await setup()
    await b.publishMany(
      Array.from({length: 7}, (_, i) => ({
        channel: 'sys.state.update',
        type: i % 2 ? 'odd' : 'even',
        payload: {i},
      })),
    )
    const seen: number[] = []
    let next: string | null = null
    let pages = 0
    do {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON under test, checked by expect
      const page: {status: number; body: any} = await call(
        `${url}/v1/channels/sys.state.update/events?limit=3&since=10m${next ? `&after=${next}` : ''}`,
      )
      expect(page.status).toBe(200)
      seen.push(...page.body.events.map((e: {data: {i: number}}) => e.data.i))
      next = page.body.next
      pages++
    } while (next)
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6])
    expect(pages).toBe(3)
    const odd = await call(`${url}/v1/channels/sys.state.update/events?type=odd`)
    expect(odd.body.events.map((e: {data: {i: number}}) => e.data.i)).toEqual([1, 3, 5])
    const none = await call(`${url}/v1/channels/sys.state.update/events?until=2000-01-01T00:00:00Z`)
    expect(none.body).toEqual({channel: 'sys.state.update', events: [], next: null})
    const unknown = await call(`${url}/v1/channels/sys.alert.warnin/events`)
    expect(unknown.status).toBe(404)
    expect(unknown.body.error.message).toMatch(/did you mean 'sys.alert.warning'/)
    const bad = await call(`${url}/v1/channels/sys.state.update/events?limit=0`)
    expect(bad.status).toBe(400)
    expect(bad.body.error.message).toMatch(/limit must be >= 1/)
    const badTime = await call(`${url}/v1/channels/sys.state.update/events?since=soon`)
    expect(badTime.status).toBe(400)
    expect(badTime.body.error.message).toMatch(/invalid since 'soon'/)
  })
})

describe('DLQ endpoints (the CLI JSON shapes)', () => {
  it('GET /v1/dlq answers what `raptor dlq list --json` prints, with the same filters', async () => {
    const {bus: b, url} = await setup()
    await addDlq(b, [
      {channel: 'sys.alert.warning', handler: 'h1', error: 'boom'},
      {channel: 'sys.state.update', reason: 'processing_timeout', handler: 'h2'},
    ])
    const [http, shell] = await Promise.all([call(`${url}/v1/dlq`), cli(b, ['dlq', 'list', '--json'])])
    expect(http.body).toEqual(JSON.parse(shell.stdout))
    expect(http.body.entries).toHaveLength(2)
    const filtered = await call(`${url}/v1/dlq?reason=processing_timeout&channel=sys.*.update`)
    const filteredShell = await cli(b, [
      'dlq',
      'list',
      '--json',
      '--reason',
      'processing_timeout',
      '--channel',
      'sys.*.update',
    ])
    expect(filtered.body).toEqual(JSON.parse(filteredShell.stdout))
    expect(filtered.body.entries).toHaveLength(1)
    expect((await call(`${url}/v1/dlq?reason=bogus`)).status).toBe(400)
  })

  it('POST /v1/dlq/requeue answers as `raptor dlq requeue --json`; dry run first', async () => {
    const {bus: b, url} = await setup()
    await addDlq(b, [{channel: 'sys.alert.warning', handler: 'h1'}])
    const dry = await call(`${url}/v1/dlq/requeue`, post({dryRun: true, handler: 'h1'}))
    const dryShell = await cli(b, ['dlq', 'requeue', '--json', '--dry-run', '--handler', 'h1'])
    expect(dry.status).toBe(200)
    expect(dry.body).toEqual(JSON.parse(dryShell.stdout))
    const done = await call(`${url}/v1/dlq/requeue`, post({handler: ['h1']}))
    expect(done.body).toMatchObject({requeued: 1, dryRun: false, skipped: 0})
    expect(done.body.targets).toEqual([{channel: 'sys.alert.warning', handler: 'h1', count: 1}])
    expect(await b.dlq.list()).toEqual([])
    const typo = await call(`${url}/v1/dlq/requeue`, post({dryrun: true}))
    expect(typo.status).toBe(400)
    expect(typo.body.error.message).toMatch(/invalid body: unknown field "dryrun"/)
  })

  it('POST /v1/dlq/purge refuses without yes; a dry run counts and pins the window', async () => {
    const {bus: b, url} = await setup()
    await addDlq(b, [{channel: 'sys.alert.warning'}, {channel: 'sys.alert.warning'}])
    const refused = await call(`${url}/v1/dlq/purge`, post({}))
    expect(refused.status).toBe(400)
    expect(refused.body.error.message).toMatch(/refusing to purge without confirmation/)
    const dry = await call(`${url}/v1/dlq/purge`, post({dryRun: true}))
    expect(dry.body).toMatchObject({purged: 2, dryRun: true, before: expect.any(String)})
    // One more dead letter after the count: the confirmed purge leaves it alone.
    await addDlq(b, [{channel: 'sys.alert.warning', failedAt: Date.parse(dry.body.before) + 5000}])
    const done = await call(`${url}/v1/dlq/purge`, post({yes: true, before: dry.body.before}))
    expect(done.body).toEqual({purged: 2, dryRun: false})
    expect(await b.dlq.list()).toHaveLength(1)
  })
})

describe('operations endpoints', () => {
  it('/metrics is Prometheus text with the bus and gateway figures; /v1/metrics is `raptor metrics --json`', async () => {
    const {bus: b, url} = await setup()
    await b.publish({channel: 'sys.state.update', type: 't'})
    await call(`${url}/healthz`)
    const text = await call(`${url}/metrics`)
    expect(text.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(text.text).toMatch(/^raptor_published_total\{channel="sys.state.update"\} 1$/m)
    expect(text.text).toMatch(/^# TYPE raptor_gateway_streams gauge$/m)
    expect(text.text).toMatch(
      /^raptor_gateway_requests_total\{method="GET",route="\/healthz",status="200"\} 1$/m,
    )
    const [json, shell] = await Promise.all([
      call(`${url}/v1/metrics?channel=sys.state.update`),
      cli(b, ['metrics', '--json', '--channel', 'sys.state.update']),
    ])
    expect(json.body).toEqual(JSON.parse(shell.stdout))
  })

  it('/healthz, /readyz, /v1/health and the seed document /api/v1/bus/health', async () => {
    const {bus: b, url} = await setup()
    expect((await call(`${url}/healthz`)).body).toEqual({status: 'ok'})
    expect((await call(`${url}/readyz`)).body).toEqual({status: 'ready'})
    const health = await call(`${url}/v1/health`)
    const shell = await cli(b, ['health', '--json'])
    expect(health.status).toBe(200)
    expect(Object.keys(health.body).sort()).toEqual(Object.keys(JSON.parse(shell.stdout)).sort())
    const degraded = await call(`${url}/v1/health?maxDlq=0`)
    expect(degraded.status).toBe(200)
    await addDlq(b, [{channel: 'sys.alert.warning'}])
    const over = await call(`${url}/v1/health?maxDlq=0`)
    expect(over.status).toBe(503)
    expect(over.body.status).toBe('degraded')
    const seed = await call(`${url}/api/v1/bus/health`)
    expect(seed.status).toBe(200)
    expect(seed.body).toMatchObject({
      status: 'healthy',
      redis_version: expect.stringMatching(/^\d+\.\d+/),
      connected_clients: expect.any(Number),
      agents: {live: 0, stale: 0},
      metrics: {dlq_depth: 1, published: 0, active_subscriptions: expect.any(Number)},
    })
  })

  it('Redis gone: /healthz stays 200, /readyz and the API answer 503 within the deadline, and recover', async () => {
    const redis = await RedisServer.start()
    try {
      const b = await RaptorBus.connect({redisUrl: redis.url, prefix: 'gw', reconnect: true})
      const g = await startTestGateway(b, {limits: {redisDeadlineMs: 1000}})
      try {
        await redis.stop(true)
        expect((await call(`${g.url}/healthz`)).status).toBe(200)
        const ready = await call(`${g.url}/readyz`)
        expect(ready.status).toBe(503)
        expect(ready.body.status).toBe('unavailable')
        const api = await call(`${g.url}/v1/channels`)
        expect(api.status).toBe(503)
        expect(api.body.error.code).toBe('CONNECTION_ERROR')
        const seed = await call(`${g.url}/api/v1/bus/health`)
        expect(seed.status).toBe(503)
        expect(seed.body).toMatchObject({status: 'unhealthy', error: expect.any(String)})
        await redis.start()
        await waitFor(async () => (await call(`${g.url}/readyz`)).status === 200, 15_000, 'ready again')
      } finally {
        await g.close()
        await b.close()
      }
    } finally {
      await redis.stop()
    }
  })
})
