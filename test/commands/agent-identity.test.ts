import {join} from 'node:path'

import {expect, it} from 'vitest'

import {
  BIN,
  describeTargets,
  keysUnder,
  randomPrefix,
  redisUrl,
  runCli,
  target,
  tempDir,
  testBuses,
  waitFor,
} from '../helpers/index.js'
import {childProcesses, fixture} from '../helpers/child.js'

const WORKER = fixture('plugins/worker.mjs')
const JOBS = 'sys.state.update'
const bus = testBuses()
const spawnChild = childProcesses()

function startAgent(prefix: string, args: string[]) {
  return spawnChild([BIN, 'agent', '--json', ...target(prefix), ...args])
}

const started = (a: ReturnType<typeof startAgent>) =>
  waitFor(() => a.lines.some((l) => String(l.msg).includes('started')), 15_000, 'agent start')

/** Publishes a job and waits until the worker handler has acked it. */
async function handledOne(b: Awaited<ReturnType<typeof bus>>): Promise<void> {
  const acked = async () => Number((await b.redis.hget(b.keys.handlerStats(JOBS, 'worker'), 'acked')) ?? 0)
  const before = await acked()
  await b.publish({channel: JOBS, type: 'job', payload: {n: before}})
  await waitFor(async () => (await acked()) > before, 10_000, 'a job handled')
}

/** Consumers of a group on a stream, by name. */
async function consumers(b: Awaited<ReturnType<typeof bus>>, group: string): Promise<string[]> {
  const info = (await b.redis.xinfo('CONSUMERS', b.keys.stream(JOBS), group)) as unknown[][]
  return info.map((flat) => String(flat[flat.indexOf('name') + 1])).sort()
}

describeTargets('raptor agent identity', () => {
  it('refuses a second live agent with the same --id (exit 2, naming the first) and changes nothing', async () => {
    const b = await bus()
    const prefix = b.keys.prefix
    const first = startAgent(prefix, ['--plugin', WORKER, '--id', 'worker-1'])
    await started(first)
    await handledOne(b)
    const before = {
      consumers: await consumers(b, 'worker'),
      registration: await b.redis.hget(b.keys.agents(), 'worker-1'),
    }
    const second = await runCli(['agent', '--plugin', WORKER, '--id', 'worker-1', ...target(prefix)])
    expect(second.code).toBe(2)
    expect(second.stderr).toContain("agent id 'worker-1' is in use")
    expect(second.stderr).toContain(`pid ${first.child.pid}`)
    expect(second.stderr).toMatch(/if that agent is dead/)
    expect(before.consumers).toHaveLength(1)
    expect(await consumers(b, 'worker')).toEqual(before.consumers)
    expect(JSON.parse((await b.redis.hget(b.keys.agents(), 'worker-1'))!).pid).toBe(first.child.pid)
    expect(before.registration).not.toBeNull()
    // The first agent still owns its work.
    await handledOne(b)
    // Once the first has stopped (its lease released), the id is free again.
    first.child.kill('SIGTERM')
    expect(await first.exit).toBe(0)
    const again = startAgent(prefix, ['--plugin', WORKER, '--id', 'worker-1'])
    await started(again)
  })

  it('gives every agent process its own consumer name, even under the same --id after a restart', async () => {
    const b = await bus()
    const prefix = b.keys.prefix
    const one = startAgent(prefix, ['--plugin', WORKER, '--id', 'same'])
    await started(one)
    await handledOne(b)
    one.child.kill('SIGTERM')
    await one.exit
    const two = startAgent(prefix, ['--plugin', WORKER, '--id', 'same'])
    await started(two)
    await handledOne(b)
    const names = await consumers(b, 'worker')
    expect(new Set(names).size).toBe(2)
    for (const n of names) expect(n.startsWith('same:worker:')).toBe(true)
  })

  it('stops (exit 1) when another agent has taken its id, e.g. after an outage longer than the lease', async () => {
    const b = await bus()
    const agent = startAgent(b.keys.prefix, ['--plugin', WORKER, '--id', 'taken'])
    await started(agent)
    const foreign = JSON.stringify({
      pid: 4242,
      host: 'elsewhere',
      since: new Date().toISOString(),
      token: 'x',
    })
    await b.redis.set(b.keys.agentLease('taken'), foreign, 'PX', 60_000)
    expect(await agent.exit).toBe(1)
    const error = agent.lines.find((l) => l.level === 'error')
    expect(String(error?.msg)).toContain(
      "agent id 'taken' is in use by a live agent: pid 4242 on host elsewhere",
    )
    // It did not release the other agent's claim.
    expect(await b.redis.get(b.keys.agentLease('taken'))).toBe(foreign)
  })

  it.each([
    ['an empty id', ''],
    ['a 257-character id', 'x'.repeat(257)],
    ['an id with CR/LF', 'forged\r\nlevel=error msg=pwned'],
    ['an id with an escape character', 'a\u001b[31mred'],
  ])('refuses %s with exit 2 before anything touches Redis', async (_what, id) => {
    const prefix = randomPrefix()
    const result = await runCli(['agent', '--plugin', WORKER, '--id', id, ...target(prefix)])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('--id')
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(await keysUnder(prefix)).toEqual([])
  })

  it.each([
    ['a channel name with spaces', ['Bad Channel']],
    ['an empty segment', ['sys..alert']],
    ['a malformed glob', ['sys.[']],
    ['a channel that is not a string', [42]],
    ['a channel outside the topology', ['app.orders.created']],
  ])('refuses a plugin with %s with exit 2 before anything touches Redis', async (_what, channels) => {
    const dir = tempDir({
      'plugin.mjs': `export default {name: 'h', channels: ${JSON.stringify(channels)}, handle() {}}`,
    })
    const prefix = randomPrefix()
    const result = await runCli(['agent', '--plugin', join(dir, 'plugin.mjs'), ...target(prefix)])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('plugin.mjs')
    expect(result.stderr).toContain('channel')
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('accepts a channel outside the built-in topology when the config file adds it', async () => {
    const dir = tempDir({
      'plugin.mjs': `export default {name: 'h', channels: ['app.orders.created', 'app.**'], handle() {}}`,
      'raptor.config.json': {channels: [{name: 'app.orders.*', retention: '1h'}]},
    })
    const prefix = randomPrefix()
    const agent = spawnChild([BIN, 'agent', '--json', '--plugin', 'plugin.mjs', ...target(prefix)], {}, dir)
    await started(agent)
    expect(redisUrl()).toBeTruthy()
  })
})
