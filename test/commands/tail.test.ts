import {afterEach, describe, expect, it} from 'vitest'

import {RaptorBus} from '../../src/bus/index.js'
import {
  ndjson,
  randomPrefix,
  redisUrl,
  runCli,
  startCli,
  target,
  waitFor,
  type RunningCli,
} from '../helpers/index.js'

const buses: RaptorBus[] = []
const children: RunningCli[] = []

async function busOn(prefix: string): Promise<RaptorBus> {
  const bus = await RaptorBus.connect({redisUrl: redisUrl(), prefix})
  buses.push(bus)
  return bus
}

/** Starts `raptor tail` and waits until it is subscribed. */
async function tail(prefix: string, args: string[]): Promise<RunningCli> {
  const child = startCli(['tail', ...target(prefix), ...args])
  children.push(child)
  await waitFor(
    () => child.stderr.includes('tail: listening on') || child.child.exitCode !== null,
    10_000,
    'tail: listening on',
  )
  expect(child.stderr, child.stderr).toContain('tail: listening on')
  return child
}

afterEach(async () => {
  for (const child of children.splice(0)) if (child.child.exitCode === null) child.child.kill('SIGKILL')
  while (buses.length > 0) await buses.pop()!.close()
})

describe('raptor tail', () => {
  it('prints matching live events as NDJSON and exits 0 after --count', async () => {
    const prefix = randomPrefix()
    const bus = await busOn(prefix)
    const child = await tail(prefix, ['sys.alert.*', 'sys.guild.*.broadcast', '--json', '--count', '3'])
    expect(child.stderr).toContain('tail: listening on sys.alert.* sys.guild.*.broadcast')
    await bus.publish({channel: 'sys.state.update', type: 'not-matched'})
    const ids = [
      await bus.publish({channel: 'sys.alert.critical', type: 'a', payload: {n: 1}}),
      await bus.publish({channel: 'sys.guild.research.broadcast', type: 'b'}),
      await bus.publish({channel: 'sys.alert.warning', type: 'c'}),
    ]
    const result = await child.exited
    expect(result.code, result.stderr).toBe(0)
    const events = ndjson(result.stdout)
    expect(events.map((e) => e.id)).toEqual(ids)
    expect(events[0]).toMatchObject({
      specversion: '1.0',
      channel: 'sys.alert.critical',
      type: 'a',
      data: {n: 1},
    })
  })

  it('applies --type, --source and repeatable --priority filters', async () => {
    const prefix = randomPrefix()
    const bus = await busOn(prefix)
    const child = await tail(prefix, [
      '--json',
      '--count',
      '2',
      '--type',
      'wanted',
      '--source',
      'RES-001',
      '--priority',
      'high',
      '--priority',
      'critical',
    ])
    const channel = 'sys.state.update'
    await bus.publish({channel, type: 'other', source: 'RES-001', priority: 'high'})
    await bus.publish({channel, type: 'wanted', source: 'MUSE-002', priority: 'high'})
    await bus.publish({channel, type: 'wanted', source: 'RES-001', priority: 'normal'})
    const a = await bus.publish({channel, type: 'wanted', source: 'RES-001', priority: 'high'})
    const b = await bus.publish({channel, type: 'wanted', source: 'RES-001', priority: 'critical'})
    const result = await child.exited
    expect(result.code, result.stderr).toBe(0)
    expect(ndjson(result.stdout).map((e) => e.id)).toEqual([a, b])
  })

  it('backfills --since with no gap and no duplicate while events keep coming; SIGINT exits 130', async () => {
    const prefix = randomPrefix()
    const bus = await busOn(prefix)
    let sent = 0
    // Set once tail is started; the publisher reads it to know when tail is listening.
    const started: {tail?: RunningCli} = {}
    let live = 0
    const publisher = (async () => {
      // Publish before, during and after tail's start-up and subscription, then 100 more.
      while (live < 100 && (started.tail === undefined || started.tail.child.exitCode === null)) {
        await bus.publish({channel: 'sys.state.update', type: 'seq', payload: {seq: sent}})
        sent++
        if (started.tail?.stderr.includes('tail: listening on')) live++
        else await new Promise((r) => setTimeout(r, 2))
      }
    })()
    await waitFor(() => sent >= 20, 5000, 'history before tail starts')
    const running = startCli(['tail', ...target(prefix), 'sys.state.*', '--since', '1m', '--json'])
    started.tail = running
    children.push(running)
    await publisher
    await waitFor(() => ndjson(running.stdout).length >= sent, 10_000, `all ${sent} events`)
    running.child.kill('SIGINT')
    const result = await running.exited
    expect(result.code, result.stderr).toBe(130)
    const seqs = ndjson(result.stdout).map((e) => (e.data as {seq: number}).seq)
    expect(seqs).toEqual(Array.from({length: sent}, (_, i) => i))
  })

  it('counts backfilled events toward --count, ending before it goes live', async () => {
    const prefix = randomPrefix()
    const bus = await busOn(prefix)
    const ids = await bus.publishMany(
      [1, 2, 3].map((n) => ({channel: 'sys.alert.critical', type: 'fire', payload: {n}})),
    )
    const result = await runCli(['tail', ...target(prefix), '--since', '1h', '--count', '2', '--json'])
    expect(result.code, result.stderr).toBe(0)
    expect(ndjson(result.stdout).map((e) => e.id)).toEqual(ids.slice(0, 2))
  })

  it('exits after --timeout: 0 without --count, 1 when --count was not reached', async () => {
    const prefix = randomPrefix()
    const [plain, short] = await Promise.all([
      runCli(['tail', ...target(prefix), '--timeout', '300ms', '--json']),
      runCli(['tail', ...target(prefix), '--timeout', '300ms', '--count', '2']),
    ])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.stdout).toBe('')
    expect(short.code, short.stderr).toBe(1)
    expect(short.stderr).toMatch(/tail: timed out after 300ms with 0 of 2 events/)
  })

  it('prints readable lines without --json; SIGTERM exits 130', async () => {
    const prefix = randomPrefix()
    const bus = await busOn(prefix)
    const child = await tail(prefix, [])
    await bus.publish({channel: 'sys.alert.warning', type: 'disk_low', source: 'RES-001', payload: {free: 5}})
    await waitFor(() => child.stdout.includes('\n'), 5000, 'one line')
    child.child.kill('SIGTERM')
    const result = await child.exited
    expect(result.code, result.stderr).toBe(130)
    expect(result.stdout.trim()).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z evt-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12} normal +sys\.alert\.warning disk_low RES-001 \{"free":5\}$/,
    )
  })

  it('exits 2 for an invalid pattern or duration, 69 with one NDJSON error line when Redis is unreachable', async () => {
    const prefix = randomPrefix()
    const [pattern, duration, unreachable] = await Promise.all([
      runCli(['tail', ...target(prefix), 'Sys.Alert']),
      runCli(['tail', ...target(prefix), '--since', 'soon']),
      runCli(['tail', '--redis-url', 'redis://127.0.0.1:1/0', '--json']),
    ])
    expect(pattern.code).toBe(2)
    expect(pattern.stderr.trim()).toMatch(/^Error: invalid channel pattern 'Sys.Alert'/)
    expect(duration.code).toBe(2)
    expect(duration.stderr.trim()).toMatch(
      /^Error: invalid --since 'soon': use a number of ms or a duration like 30s/,
    )
    expect(unreachable.code).toBe(69)
    expect(ndjson(unreachable.stdout)).toMatchObject([{error: {code: 'CONNECTION_ERROR', exitCode: 69}}])
    expect(unreachable.stderr).not.toContain('listening')
  })
})
