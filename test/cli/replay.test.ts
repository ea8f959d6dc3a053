import {spawn} from 'node:child_process'

import {expect, it} from 'vitest'

import type {RaptorBus} from '../../src/bus/index.js'
import {BIN, describeTargets, redisUrl, testBuses, waitFor} from '../helpers/index.js'
import {cli, envelope, streamEntries} from '../helpers/ops.js'

const bus = testBuses()

const MIN = 60_000
const CH = 'sys.alert.warning'

/** History entries written as if published `age` minutes ago (stream ids are server time). */
async function seed(b: RaptorBus, channel: string, items: {ageMin: number; type: string}[]) {
  const now = await b.history.serverTime()
  const ids: string[] = []
  for (const {ageMin, type} of [...items].sort((x, y) => y.ageMin - x.ageMin)) {
    const at = now - ageMin * MIN
    const ev = envelope(channel, type, {ageMin}, new Date(at))
    await b.redis.xadd(b.keys.stream(channel), `${at}-*`, 'e', JSON.stringify(ev))
    await b.redis.sadd(b.keys.channelRegistry(), channel)
    ids.push(ev.id)
  }
  return {now, ids}
}

const ages = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l).data.ageMin as number)

describeTargets('raptor replay', () => {
  it('prints history in publish order as NDJSON, with --since, --type and --limit', async () => {
    const b = await bus()
    const {ids} = await seed(b, CH, [
      {ageMin: 50, type: 'a'},
      {ageMin: 40, type: 'b'},
      {ageMin: 30, type: 'a'},
      {ageMin: 20, type: 'c'},
      {ageMin: 10, type: 'a'},
    ])
    const all = await cli(b, ['replay', CH, '--json'])
    expect(all.code).toBe(0)
    expect(
      all.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).id),
    ).toEqual(ids)
    expect(ages((await cli(b, ['replay', CH, '--json', '--since', '25m'])).stdout)).toEqual([20, 10])
    expect(ages((await cli(b, ['replay', CH, '--json', '--type', 'b', '--type', 'c'])).stdout)).toEqual([
      40, 20,
    ])
    expect(ages((await cli(b, ['replay', CH, '--json', '--type', 'a', '--limit', '2'])).stdout)).toEqual([
      50, 30,
    ])
    const human = await cli(b, ['replay', CH, '--limit', '2'])
    expect(human.code).toBe(0)
    expect(human.stdout.trim().split('\n')).toHaveLength(2)
    expect(human.stdout).toContain(`${CH} a test {"ageMin":50}`)
  })

  it('takes --from/--until as RFC 3339, epoch ms and relative durations', async () => {
    const b = await bus()
    const {now} = await seed(b, CH, [
      {ageMin: 50, type: 'a'},
      {ageMin: 40, type: 'a'},
      {ageMin: 30, type: 'a'},
      {ageMin: 20, type: 'a'},
      {ageMin: 10, type: 'a'},
    ])
    const from = now - 45 * MIN
    const until = now - 15 * MIN
    const forms = [
      [new Date(from).toISOString(), new Date(until).toISOString()],
      [String(from), String(until)],
      ['45m', '15m'],
    ]
    const results = await Promise.all(
      forms.map(([f, u]) => cli(b, ['replay', CH, '--json', '--from', f, '--until', u])),
    )
    for (const r of results) {
      expect(r.code).toBe(0)
      expect(ages(r.stdout)).toEqual([40, 30, 20])
    }
    const bad = await cli(b, ['replay', CH, '--from', 'yesterday-ish'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('RFC 3339')
  })

  it('warns on stderr when the window reaches past the retention', async () => {
    const b = await bus()
    await seed(b, 'sys.state.update', [{ageMin: 5, type: 'a'}]) // retention 1h
    const past = await cli(b, ['replay', 'sys.state.update', '--since', '2h', '--json'])
    expect(past.code).toBe(0)
    expect(past.stderr).toMatch(/before sys\.state\.update's retention \(1h\)/)
    expect(ages(past.stdout)).toEqual([5])
    const inside = await cli(b, ['replay', 'sys.state.update', '--since', '30m', '--json'])
    expect(inside.stderr).not.toContain('retention')
  })

  it('re-publishes onto another channel as new events with --to-channel, paced by --rate', async () => {
    const b = await bus()
    const {ids} = await seed(
      b,
      CH,
      Array.from({length: 6}, (_, i) => ({ageMin: 10 - i, type: `t${i}`})),
    )
    const r = await cli(b, ['replay', CH, '--to-channel', 'sys.alert.critical', '--json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({channel: CH, toChannel: 'sys.alert.critical', republished: 6})
    const copies = await streamEntries(b, b.keys.stream('sys.alert.critical'))
    const events = copies.map((c) => JSON.parse(c.e))
    expect(events.map((e) => e.type)).toEqual(['t0', 't1', 't2', 't3', 't4', 't5'])
    expect(events.every((e) => e.channel === 'sys.alert.critical' && !ids.includes(e.id))).toBe(true)
    expect(await b.redis.xlen(b.keys.stream(CH))).toBe(6)
    expect(await b.redis.hget(b.keys.stats('sys.alert.critical'), 'published')).toBe('6')

    const paced = await cli(b, ['replay', CH, '--to-channel', 'sys.state.update', '--rate', '20/s', '--json'])
    expect(paced.code).toBe(0)
    const times = (await streamEntries(b, b.keys.stream('sys.state.update'))).map((e) =>
      Number(e.id.split('-')[0]),
    )
    expect(times).toHaveLength(6)
    // 6 events at 20/s: 5 gaps of 50 ms; loosely.
    expect(times[5] - times[0]).toBeGreaterThanOrEqual(200)

    const unknown = await cli(b, ['replay', CH, '--to-channel', 'sys.nowhere'])
    expect(unknown.code).toBe(2)
    expect(await b.redis.exists(b.keys.dlq('sys.dlq.routing_error', 'routing_error'))).toBe(0)
  })

  it('stops on SIGINT with exit 130, keeping what was re-published', async () => {
    const b = await bus()
    await seed(
      b,
      CH,
      Array.from({length: 20}, (_, i) => ({ageMin: 20 - i, type: 'x'})),
    )
    const target = b.keys.stream('sys.alert.critical')
    const args = ['replay', CH, '--to-channel', 'sys.alert.critical', '--rate', '5/s']
    const child = spawn(process.execPath, [
      BIN,
      ...args,
      '--redis-url',
      redisUrl(),
      '--prefix',
      b.keys.prefix,
    ])
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const code = new Promise((resolve) => child.on('exit', resolve))
    await waitFor(async () => (await b.redis.xlen(target)) > 0, 10_000, 'the first re-published event')
    child.kill('SIGINT')
    expect(await code).toBe(130)
    const done = await b.redis.xlen(target)
    expect(done).toBeGreaterThan(0)
    expect(done).toBeLessThan(20)
    expect(stderr).toContain(`interrupted after re-publishing ${done} events`)
  })

  it('replays through the library as an async iterator and onto a channel', async () => {
    const b = await bus()
    const ids = await b.publishMany(
      Array.from({length: 1200}, (_, i) => ({channel: CH, type: 'x', payload: {i}})),
    )
    const seen: string[] = []
    for await (const e of b.replay(CH)) seen.push(e.id)
    expect(seen).toEqual(ids)
    const result = await b.replayTo(CH, CH, {limit: 1100})
    expect(result.republished).toBe(1100)
    expect(await b.redis.xlen(b.keys.stream(CH))).toBe(2300)
  })
})

describeTargets('hostile entries in history', () => {
  it('replay, tail --since and get skip an entry 20,000 levels deep, say so, and print the rest', async () => {
    const b = await bus()
    const first = envelope(CH, 'before', {n: 1})
    const deep = envelope(CH, 'deep')
    const last = envelope(CH, 'after', {n: 2})
    const deepJson = JSON.stringify(deep).replace(
      '"data":{}',
      `"data":${'{"a":'.repeat(19_999)}{}${'}'.repeat(19_999)}`,
    )
    await b.redis.sadd(b.keys.channelRegistry(), CH)
    const entries: [string, string][] = [
      [first.id, JSON.stringify(first)],
      [deep.id, deepJson],
      [last.id, JSON.stringify(last)],
    ]
    for (const [id, json] of entries) {
      const sid = await b.redis.xadd(b.keys.stream(CH), '*', 'e', json)
      await b.redis.set(b.keys.eventIndex(CH, id), sid!)
    }
    const skipped =
      /skipped 1 malformed entry \(first: malformed entry \d+-\d+ on sys\.alert\.warning: data\.a\.a.*nests deeper than 128 levels/

    const replay = await cli(b, ['replay', CH, '--json'])
    expect(replay.code, replay.stderr).toBe(0)
    expect(
      replay.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).type),
    ).toEqual(['before', 'after'])
    expect(replay.stderr).toMatch(new RegExp(`^replay: ${skipped.source}`, 'm'))

    const human = await cli(b, ['replay', CH])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout.trim().split('\n')).toHaveLength(2)

    const tail = await cli(b, ['tail', CH, '--since', '1h', '--count', '2', '--json'])
    expect(tail.code, tail.stderr).toBe(0)
    expect(
      tail.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).type),
    ).toEqual(['before', 'after'])
    expect(tail.stderr).toMatch(new RegExp(`^tail: ${skipped.source}`, 'm'))

    const get = await cli(b, ['get', deep.id])
    expect(get.code).toBe(1)
    expect(get.stdout).toBe('')
    expect(get.stderr.trim().split('\n')).toHaveLength(1)
    expect(get.stderr).toMatch(
      /^Error: event evt-\S+ is stored as a malformed entry .*nests deeper than 128 levels.*cannot be shown$/m,
    )
    expect((await cli(b, ['get', last.id])).code).toBe(0)
  })
})
