import {get} from 'node:http'
import {fileURLToPath} from 'node:url'

import type {Cluster} from 'ioredis'
import {afterEach, describe, expect, it} from 'vitest'

import {GUILDS} from '../../src/bus/channels.js'
import {RaptorBus} from '../../src/bus/index.js'
import {BIN, describeTargets, randomPrefix, redisUrl, runCli, waitFor} from '../helpers/index.js'
import {parseExposition, sample} from '../helpers/prometheus.js'
import {RedisServer, freePort} from '../helpers/redis-server.js'
import {childProcesses, type NdjsonChild} from '../helpers/child.js'

const plugin = (name: string) => fileURLToPath(new URL(`../fixtures/plugins/${name}`, import.meta.url))
const WORKER = plugin('worker.mjs')
const GUILDS_PLUGIN = plugin('guilds.mjs')
const JOBS = 'sys.state.update'
const DONE = 'sys.alert.warning'

type Agent = NdjsonChild

const spawnChild = childProcesses()
const buses: RaptorBus[] = []

afterEach(async () => {
  while (buses.length > 0) await buses.pop()!.close()
})

async function bus(prefix: string): Promise<RaptorBus> {
  const b = await RaptorBus.connect({redisUrl: redisUrl(), prefix})
  buses.push(b)
  return b
}

function startAgent(
  prefix: string,
  args: string[],
  env: Record<string, string> = {},
  url = redisUrl(),
): Agent {
  return spawnChild([BIN, 'agent', '--json', '--redis-url', url, '--prefix', prefix, ...args], env)
}

const started = (a: Agent) =>
  waitFor(() => a.lines.some((l) => String(l.msg).includes('started')), 15_000, 'agent start')

async function doneEvents(b: RaptorBus): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = []
  for await (const e of b.replay(DONE, {types: ['done']})) out.push(e.data)
  return out
}

async function pendingOf(b: RaptorBus, group: string): Promise<number> {
  const summary = (await b.redis.xpending(b.keys.stream(JOBS), group)) as [number]
  return Number(summary[0])
}

describeTargets('raptor agent', (t) => {
  it('processes every event once, logs NDJSON, heartbeats, and drains on SIGTERM with exit 0', async () => {
    const prefix = randomPrefix()
    const b = await bus(prefix)
    const agent = startAgent(prefix, ['--plugin', WORKER, '--id', 'agent-a'])
    await started(agent)
    const ids = await b.publishMany(
      Array.from({length: 40}, (_, n) => ({channel: JOBS, type: 'job', payload: {n}})),
    )
    await waitFor(async () => (await doneEvents(b)).length >= 40, 15_000, '40 done events')
    const done = await doneEvents(b)
    expect(done.map((d) => d.id).sort()).toEqual([...ids].sort())
    expect(agent.lines.some((l) => l.msg === 'handled' && l.handler === 'worker')).toBe(true)
    // The heartbeat: an event on sys.global.heartbeat and a registration that health reads.
    const beats = []
    for await (const e of b.replay('sys.global.heartbeat')) beats.push(e)
    expect(beats[0]).toMatchObject({type: 'agent.heartbeat', source: 'agent-a'})
    expect(beats[0].data).toMatchObject({agentId: 'agent-a', handlers: ['worker']})
    const health = await b.health()
    expect(health.agents.map((a) => a.id)).toEqual(['agent-a'])
    agent.child.kill('SIGTERM')
    expect(await agent.exit).toBe(0)
    expect(await b.redis.hexists(b.keys.agents(), 'agent-a')).toBe(0)
    expect(await pendingOf(b, 'worker')).toBe(0)
  })

  it('lets in-flight handlers finish on SIGTERM and acks them: nothing is redelivered', async () => {
    const prefix = randomPrefix()
    const b = await bus(prefix)
    const agent = startAgent(prefix, ['--plugin', WORKER], {SLOW_MS: '800'})
    await started(agent)
    await b.publishMany(Array.from({length: 3}, (_, n) => ({channel: JOBS, type: 'job', payload: {n}})))
    await waitFor(async () => (await pendingOf(b, 'worker')) === 3, 5000, 'three in flight')
    agent.child.kill('SIGTERM')
    expect(await agent.exit).toBe(0)
    expect((await doneEvents(b)).length).toBe(3)
    expect(await pendingOf(b, 'worker')).toBe(0)
    expect((await b.redis.hgetall(b.keys.handlerStats(JOBS, 'worker'))).acked).toBe('3')
    // A new agent finds nothing to redo.
    const next = startAgent(prefix, ['--plugin', WORKER, '--reclaim-after', '200ms'])
    await started(next)
    await new Promise((r) => setTimeout(r, 600))
    expect((await doneEvents(b)).length).toBe(3)
  })

  it('exits at once on a second signal, leaving un-acked events pending for another agent', async () => {
    const prefix = randomPrefix()
    const b = await bus(prefix)
    const agent = startAgent(prefix, ['--plugin', WORKER, '--grace', '60s'], {SLOW_MS: '60000'})
    await started(agent)
    await b.publish({channel: JOBS, type: 'job', payload: {n: 1}})
    await waitFor(async () => (await pendingOf(b, 'worker')) === 1, 5000, 'in flight')
    agent.child.kill('SIGTERM')
    await waitFor(() => agent.lines.some((l) => String(l.msg).includes('draining')), 5000, 'draining')
    agent.child.kill('SIGINT')
    expect(await agent.exit).toBe(130)
    expect(await pendingOf(b, 'worker')).toBe(1)
  })

  // Its own one-node Redis, restarted: the same on both targets.
  it.skipIf(t.name === 'cluster')(
    'reconnects and resumes by itself when Redis restarts under it',
    async () => {
      const server = await RedisServer.start()
      try {
        const prefix = randomPrefix()
        const agent = startAgent(prefix, ['--plugin', WORKER], {}, server.url)
        await started(agent)
        await server.restart()
        const b = await RaptorBus.connect({redisUrl: server.url, prefix})
        try {
          // Jobs published after the restart are handled without anyone touching the agent.
          await waitFor(
            async () => {
              await b.publish({channel: JOBS, type: 'job', payload: {n: 1}})
              return (await doneEvents(b)).length > 0
            },
            20_000,
            'a job handled after the restart',
          )
        } finally {
          await b.close()
        }
        agent.child.kill('SIGTERM')
        expect(await agent.exit).toBe(0)
      } finally {
        await server.stop()
      }
    },
  )

  it('completes an event on another agent when the first is killed -9 mid-handler', async () => {
    const prefix = randomPrefix()
    const b = await bus(prefix)
    const doomed = startAgent(prefix, ['--plugin', WORKER, '--id', 'doomed', '--reclaim-after', '1s'], {
      SLOW_MS: '60000',
    })
    await started(doomed)
    const id = await b.publish({channel: JOBS, type: 'job', payload: {n: 1}})
    await waitFor(async () => (await pendingOf(b, 'worker')) === 1, 5000, 'in flight')
    doomed.child.kill('SIGKILL')
    await doomed.exit
    const rescuer = startAgent(prefix, ['--plugin', WORKER, '--id', 'rescuer', '--reclaim-after', '1s'])
    await started(rescuer)
    await waitFor(async () => (await doneEvents(b)).length === 1, 15_000, 'redelivery')
    expect((await doneEvents(b))[0].id).toBe(id)
    await waitFor(async () => (await pendingOf(b, 'worker')) === 0, 5000, 'ack')
  })

  it('reclaims the events of an agent killed -9 holding events of channels on every master', async () => {
    const prefix = randomPrefix()
    const b = await bus(prefix)
    const guilds = GUILDS.map((g) => `sys.guild.${g}.broadcast`)
    if (t.name === 'cluster') {
      // The four guild channels live on all three masters of the test cluster.
      const cluster = b.redis as Cluster
      const slots = await Promise.all(
        guilds.map((c) => cluster.call('CLUSTER', 'KEYSLOT', b.keys.stream(c)) as Promise<number>),
      )
      const owners = new Set(slots.map((slot) => cluster.slots[slot][0]))
      expect(owners.size).toBe(cluster.nodes('master').length)
    }
    const pending = async () =>
      Promise.all(
        guilds.map(async (c) =>
          Number(((await b.redis.xpending(b.keys.stream(c), 'guilds')) as [number])[0]),
        ),
      )
    const doomed = startAgent(
      prefix,
      ['--plugin', GUILDS_PLUGIN, '--id', 'doomed', '--reclaim-after', '1s'],
      {
        SLOW_MS: '60000',
      },
    )
    await started(doomed)
    const ids = await Promise.all(guilds.map((channel) => b.publish({channel, type: 'job', payload: {}})))
    await waitFor(async () => (await pending()).every((n) => n === 1), 10_000, 'every event in flight')
    doomed.child.kill('SIGKILL')
    await doomed.exit
    const rescuer = startAgent(prefix, [
      '--plugin',
      GUILDS_PLUGIN,
      '--id',
      'rescuer',
      '--reclaim-after',
      '1s',
    ])
    await started(rescuer)
    await waitFor(
      async () => (await doneEvents(b)).length === guilds.length,
      20_000,
      'every event redelivered',
    )
    const done = await doneEvents(b)
    expect(done.map((d) => d.id).sort()).toEqual([...ids].sort())
    expect(done.map((d) => d.channel).sort()).toEqual([...guilds].sort())
    await waitFor(async () => (await pending()).every((n) => n === 0), 5000, 'every ack')
  })

  it('flags an agent that stopped heartbeating as stale', async () => {
    const prefix = randomPrefix()
    const b = await bus(prefix)
    const agent = startAgent(prefix, ['--plugin', WORKER, '--id', 'flaky', '--heartbeat-interval', '200ms'])
    await started(agent)
    expect((await b.health()).agents[0]).toMatchObject({id: 'flaky', stale: false})
    agent.child.kill('SIGKILL')
    await agent.exit
    const report = await waitFor(async () => {
      const r = await b.health()
      return r.agents[0]?.stale && r
    }, 5000)
    expect(report.status).toBe('degraded')
    expect(report.checks.find((c) => c.name === 'agents')?.detail).toContain('flaky')
  })

  it('serves /metrics (valid exposition text) and /healthz, and dead-letters failures', async () => {
    const prefix = randomPrefix()
    const b = await bus(prefix)
    const port = await freePort()
    const agent = startAgent(prefix, ['--plugin', WORKER, '--metrics-port', String(port)])
    await started(agent)
    await b.publish({channel: JOBS, type: 'job', payload: {n: 1}})
    await b.publish({channel: JOBS, type: 'boom', payload: {}})
    await b.redis.xadd(b.keys.stream(JOBS), '*', 'e', '{"not":"an envelope"}')
    const depth = (reason: 'max_retries_exceeded' | 'schema_violation') =>
      b.redis.xlen(b.keys.dlq(JOBS, reason))
    await waitFor(
      async () => (await depth('max_retries_exceeded')) === 1 && (await depth('schema_violation')) === 1,
      5000,
      'dead letters',
    )
    await waitFor(async () => (await pendingOf(b, 'worker')) === 0, 5000, 'acks')
    const metrics = await fetchText(`http://127.0.0.1:${port}/metrics`)
    expect(metrics.status).toBe(200)
    const m = parseExposition(metrics.body)
    // The standard Node.js process metrics, under their standard names.
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
    ])
      expect(m.families.has(name), name).toBe(true)
    expect([...m.families.keys()].filter((n) => n.startsWith('raptor_agent_process_'))).toEqual([])
    // Outcomes: one counter, with the DLQ reason on dead letters (no second counter repeating it).
    const outcome = (o: string, reason?: string) =>
      sample(m, 'raptor_agent_events_total', {
        handler: 'worker',
        channel: JOBS,
        outcome: o,
        ...(reason ? {reason} : {}),
      })
    expect([outcome('acked'), outcome('retrying'), outcome('dead-lettered', 'max_retries_exceeded')]).toEqual(
      [1, 1, 1],
    )
    expect(outcome('dead-lettered', 'schema_violation')).toBe(1)
    expect(m.families.has('raptor_agent_dead_lettered_total')).toBe(false)
    // Durations of handler attempts only: the job, and the two attempts at boom; not the schema violation.
    expect(m.families.get('raptor_agent_handler_duration_seconds')?.type).toBe('HISTOGRAM')
    expect(sample(m, 'raptor_agent_handler_duration_seconds_count', {handler: 'worker'})).toBe(3)
    expect(sample(m, 'raptor_agent_handler_duration_seconds_bucket', {handler: 'worker', le: '+Inf'})).toBe(3)
    // The state of its handlers, read from Redis: lag, pending and the DLQ depth of their channel.
    expect(sample(m, 'raptor_consumer_lag', {channel: JOBS, handler: 'worker'})).toBe(0)
    expect(sample(m, 'raptor_consumer_pending', {channel: JOBS, handler: 'worker'})).toBe(0)
    expect(sample(m, 'raptor_dlq_depth', {channel: JOBS, reason: 'max_retries_exceeded'})).toBe(1)
    expect(sample(m, 'raptor_dlq_depth', {channel: JOBS, reason: 'schema_violation'})).toBe(1)
    const health = await fetchText(`http://127.0.0.1:${port}/healthz`)
    expect(health.status).toBe(200)
    expect(JSON.parse(health.body)).toMatchObject({status: 'ok', redis: 'ready'})
    expect(
      agent.lines.some((l) => l.level === 'error' && String(l.msg).includes('max_retries_exceeded')),
    ).toBe(true)
  })

  it('refuses an invalid plugin with exit 2 naming the plugin and the field', async () => {
    const bad = await runCli(['agent', '--plugin', plugin('invalid.mjs'), '--redis-url', redisUrl()])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('invalid.mjs')
    expect(bad.stderr).toContain('name')
    const none = await runCli(['agent', '--plugin', plugin('no-default.mjs'), '--redis-url', redisUrl()])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('no default export')
    const missing = await runCli(['agent', '--plugin', 'nope.mjs', '--redis-url', redisUrl()])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('plugin file not found: nope.mjs')
  })
})

describe('raptor agent test', () => {
  it('runs matching handlers once and reports what they published, without Redis', async () => {
    const event = JSON.stringify({
      channel: 'sys.alert.critical',
      type: 'fire',
      payload: {room: 3},
      correlationId: 'req-1',
    })
    const result = await runCli(
      ['agent', 'test', '--plugin', plugin('two-handlers.mjs'), '--event', '-', '--json'],
      {
        input: event,
        env: {REDIS_URL: 'redis://127.0.0.1:1/0'},
      },
    )
    expect(result.code).toBe(1)
    const out = JSON.parse(result.stdout)
    const [echo, sleepy] = out.results
    expect(echo).toMatchObject({handler: 'echo', outcome: 'succeeded'})
    expect(echo.published[0]).toMatchObject({channel: 'sys.state.update', type: 'echoed'})
    expect(echo.replies[0]).toMatchObject({type: 'fire.reply', correlationid: 'req-1', data: {ok: true}})
    expect(sleepy).toMatchObject({handler: 'sleepy', outcome: 'timed out'})
  })

  it('exits 0 when the handler succeeds, and names the error when it throws', async () => {
    const ok = await runCli(['agent', 'test', '--plugin', WORKER, '--event', '-'], {
      input: JSON.stringify({channel: JOBS, type: 'job', payload: {n: 7}}),
    })
    expect(ok.code).toBe(0)
    expect(ok.stdout).toContain('worker ✔ succeeded')
    expect(ok.stdout).toContain('published done on sys.alert.warning')
    const boom = await runCli(['agent', 'test', '--plugin', WORKER, '--event', '-'], {
      input: JSON.stringify({channel: JOBS, type: 'boom'}),
    })
    expect(boom.code).toBe(1)
    expect(boom.stdout).toContain('threw: boom on purpose')
    const bad = await runCli(['agent', 'test', '--plugin', WORKER, '--event', '-'], {input: '{nope'})
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('malformed JSON')
  })
})

function fetchText(url: string): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
    }).on('error', reject)
  })
}
