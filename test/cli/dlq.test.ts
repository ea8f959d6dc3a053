import {spawn} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {expect, it} from 'vitest'

import {RoutingError, type RaptorBus} from '../../src/bus/index.js'
import {BIN, describeTargets, redisUrl, testBuses, waitFor} from '../helpers/index.js'
import {addDlq, cli, envelope, keyDump, streamEntries} from '../helpers/ops.js'
import {runInPty, screenText} from '../helpers/pty.js'

const bus = testBuses()

const CH = 'sys.alert.warning'
const MRE = 'max_retries_exceeded'

/** A typical mix: two handlers on one channel, a timeout elsewhere, a schema violation. */
async function mix(b: RaptorBus) {
  const e1 = envelope(CH, 'disk_low', {n: 1})
  const e2 = envelope(CH, 'disk_low', {n: 2})
  const e3 = envelope('sys.state.update', 'tick', {n: 3})
  await b.redis.sadd(b.keys.channelRegistry(), CH, 'sys.state.update')
  const [s1, s2] = await addDlq(b, [
    {channel: CH, handler: 'h1', event: e1, error: 'Error: nope', attempts: 4},
    {channel: CH, handler: 'h2', event: e2},
  ])
  // Later failures: a millisecond on, so that the expected order by failure time is unambiguous.
  await new Promise((r) => setTimeout(r, 2))
  const [s3] = await addDlq(b, [
    {channel: 'sys.state.update', reason: 'processing_timeout', handler: 'h1', event: e3, attempts: 1},
  ])
  const [s4] = await addDlq(b, [
    {channel: CH, reason: 'schema_violation', handler: 'h1', event: '{"not":"an envelope"}'},
  ])
  return {e1, e2, e3, s1, s2, s3, s4}
}

describeTargets('raptor dlq list', () => {
  it('lists entries in the SPEC shape with unique ids, filtered by reason, channel, handler, limit', async () => {
    const b = await bus()
    const {e1, s1} = await mix(b)
    await expect(b.publish({channel: 'app.unknown', type: 'lost'})).rejects.toBeInstanceOf(RoutingError)

    const r = await cli(b, ['dlq', 'list', '--json'])
    expect(r.code).toBe(0)
    const {entries} = JSON.parse(r.stdout)
    expect(entries).toHaveLength(5)
    expect(new Set(entries.map((e: {id: string}) => e.id)).size).toBe(5)
    const first = entries.find((e: {id: string}) => e.id === `${CH}/${MRE}/${s1}`)
    expect(Object.keys(first).sort()).toEqual(
      [
        'attempts',
        'error',
        'event',
        'failedAt',
        'handler',
        'id',
        'originalChannel',
        'reason',
        'requeues',
      ].sort(),
    )
    expect(first).toMatchObject({
      reason: MRE,
      originalChannel: CH,
      error: 'Error: nope',
      attempts: 4,
      handler: 'h1',
      event: e1,
      requeues: 0,
    })
    expect(first.failedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    const routing = entries.find((e: {reason: string}) => e.reason === 'routing_error')
    expect(routing).toMatchObject({originalChannel: 'app.unknown', handler: null, attempts: 0})
    expect(routing.id).toMatch(/^sys\.dlq\.routing_error\/routing_error\/\d+-\d+$/)
    expect(entries.find((e: {reason: string}) => e.reason === 'schema_violation').event).toEqual({
      not: 'an envelope',
    })

    const ids = async (...args: string[]) =>
      JSON.parse((await cli(b, ['dlq', 'list', '--json', ...args])).stdout).entries.map(
        (e: {reason: string; handler: string}) => `${e.reason}:${e.handler}`,
      )
    expect(await ids('--reason', MRE)).toEqual([`${MRE}:h1`, `${MRE}:h2`])
    expect((await ids('--handler', 'h1')).sort()).toEqual([
      `${MRE}:h1`,
      'processing_timeout:h1',
      'schema_violation:h1',
    ])
    expect(await ids('--channel', 'sys.state.*')).toEqual(['processing_timeout:h1'])
    expect(await ids('--channel', 'app.unknown')).toEqual(['routing_error:null'])
    expect(await ids('--limit', '2')).toEqual([`${MRE}:h1`, `${MRE}:h2`])

    const human = await cli(b, ['dlq', 'list', '--reason', 'routing_error'])
    expect(human.code).toBe(0)
    expect(human.stdout).toContain('app.unknown')
    const bad = await cli(b, ['dlq', 'list', '--reason', 'nope'])
    expect(bad.code).toBe(2)
  })
})

describeTargets('raptor dlq requeue', () => {
  it('redelivers to the failing handler only, keeping the event id, and counts requeues', async () => {
    const b = await bus()
    const {e1, e2, s1, s2} = await mix(b)
    await b.redis.hset(b.keys.stats(CH), 'published', 7)
    const streamBefore = await b.redis.dumpBuffer(b.keys.stream(CH))

    const r = await cli(b, ['dlq', 'requeue', '--reason', MRE, '--json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({requeued: 2, dryRun: false, skipped: 0})

    const rq1 = await streamEntries(b, b.keys.requeue(CH, 'h1'))
    const rq2 = await streamEntries(b, b.keys.requeue(CH, 'h2'))
    expect(rq1).toHaveLength(1)
    expect(rq2).toHaveLength(1)
    expect(JSON.parse(rq1[0].e)).toEqual(e1)
    expect(JSON.parse(rq2[0].e).id).toBe(e2.id)
    expect(rq1[0]).toMatchObject({requeues: '1', dlq: `${CH}/${MRE}/${s1}`})
    expect(rq2[0]).toMatchObject({requeues: '1', dlq: `${CH}/${MRE}/${s2}`})
    expect(await b.redis.xlen(b.keys.dlq(CH, MRE))).toBe(0)
    // Other DLQs and the channel history are untouched.
    expect(await b.redis.xlen(b.keys.dlq(CH, 'schema_violation'))).toBe(1)
    expect(await b.redis.xlen(b.keys.dlq('sys.state.update', 'processing_timeout'))).toBe(1)
    expect(await b.redis.dumpBuffer(b.keys.stream(CH))).toEqual(streamBefore)
    expect(await b.redis.hgetall(b.keys.stats(CH))).toEqual({published: '7', requeued: '2'})
    expect(await b.redis.hget(b.keys.handlerStats(CH, 'h1'), 'requeued')).toBe('1')
    expect(await b.redis.hget(b.keys.handlerStats(CH, 'h2'), 'requeued')).toBe('1')

    // Selected by event id and by DLQ id; a second requeue increments `requeues`.
    const [again] = await addDlq(b, [{channel: CH, handler: 'h1', event: e1, requeues: 1}])
    const byEvent = await cli(b, ['dlq', 'requeue', '--id', e1.id, '--json'])
    expect(JSON.parse(byEvent.stdout).requeued).toBe(1)
    const rq = await streamEntries(b, b.keys.requeue(CH, 'h1'))
    expect(rq[1]).toMatchObject({requeues: '2', dlq: `${CH}/${MRE}/${again}`})
    const byId = await cli(b, [
      'dlq',
      'requeue',
      '--id',
      `sys.state.update/processing_timeout/${(await b.dlq.list({reasons: ['processing_timeout']}))[0].id.split('/')[2]}`,
      '--json',
    ])
    expect(JSON.parse(byId.stdout).requeued).toBe(1)
    expect(await b.redis.xlen(b.keys.requeue('sys.state.update', 'h1'))).toBe(1)
  })

  it('selects entries by any producer event id (not only evt-…), exactly, never by a payload field', async () => {
    const b = await bus()
    await b.redis.sadd(b.keys.channelRegistry(), CH)
    const order = {...envelope(CH, 'order_failed', {n: 1}), id: 'order-42/retry:1 {x}'}
    // Same id text inside the payload of another event: must not be selected.
    const decoy = envelope(CH, 'order_failed', {id: 'order-42/retry:1 {x}'})
    await addDlq(b, [
      {channel: CH, handler: 'h1', event: order},
      {channel: CH, handler: 'h1', event: decoy},
    ])

    const listed = await b.dlq.list({ids: [order.id]})
    expect(listed.map((e) => (e.event as {id: string}).id)).toEqual([order.id])

    const r = await cli(b, ['dlq', 'requeue', '--id', order.id, '--json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout).requeued).toBe(1)
    const rq = await streamEntries(b, b.keys.requeue(CH, 'h1'))
    expect(rq.map((e) => JSON.parse(e.e).id)).toEqual([order.id])
    expect(await b.redis.xlen(b.keys.dlq(CH, MRE))).toBe(1)
  })

  it('dry-run changes nothing and shows what would move', async () => {
    const b = await bus()
    await mix(b)
    await b.publish({channel: 'app.unknown', type: 'lost'}).catch(() => {})
    const before = await keyDump(b)
    const r = await cli(b, ['dlq', 'requeue', '--dry-run', '--json'])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({requeued: 4, dryRun: true, skipped: 1})
    expect(out.targets).toContainEqual({channel: CH, handler: 'h1', count: 2})
    const human = await cli(b, ['dlq', 'requeue', '--dry-run', '--to-channel', 'sys.alert.critical'])
    expect(human.stdout).toContain('would requeue 4 entries')
    expect(human.stderr).toContain('not a valid event envelope')
    expect(await keyDump(b)).toEqual(before)
  })

  it('sends routing errors to --to-channel (new id) or to their channel once it is valid', async () => {
    const b = await bus()
    const lost = await b
      .publish({channel: 'app.orders.eu', type: 'order_created', payload: {o: 1}})
      .catch((e) => e)
    expect(lost).toBeInstanceOf(RoutingError)
    const [parked] = await b.dlq.list()
    const eventId = (parked.event as {id: string}).id
    await addDlq(b, [{channel: CH, handler: 'h1'}])

    // Not yet in the topology: the routing error is skipped (exit 3), the handler entry moves.
    const partial = await cli(b, ['dlq', 'requeue', '--json'])
    expect(partial.code).toBe(3)
    expect(JSON.parse(partial.stdout)).toMatchObject({requeued: 1, skipped: 1})
    expect(JSON.parse(partial.stdout).skippedEntries[0]).toMatchObject({id: parked.id})
    expect(await b.redis.xlen(b.keys.dlq('sys.dlq.routing_error', 'routing_error'))).toBe(1)

    // Once a config file adds the channel, it is published there, keeping its id.
    const dir = mkdtempSync(join(tmpdir(), 'raptor-'))
    writeFileSync(
      join(dir, 'raptor.config.json'),
      JSON.stringify({channels: [{name: 'app.orders.*', retention: '1h'}]}),
    )
    const ok = await cli(b, ['dlq', 'requeue', '--reason', 'routing_error', '--json'], {cwd: dir})
    expect(ok.code).toBe(0)
    expect(JSON.parse(ok.stdout)).toMatchObject({
      requeued: 1,
      skipped: 0,
      targets: [{channel: 'app.orders.eu', handler: null, count: 1}],
    })
    const published = await streamEntries(b, b.keys.stream('app.orders.eu'))
    expect(published.map((p) => JSON.parse(p.e).id)).toEqual([eventId])
    expect(await b.redis.get(b.keys.eventIndex('app.orders.eu', eventId))).toBe(published[0].id)
    expect(await b.redis.xlen(b.keys.dlq('sys.dlq.routing_error', 'routing_error'))).toBe(0)

    // --to-channel publishes anew, with a new id.
    await b.publish({channel: 'app.other', type: 'x', payload: {k: 2}}).catch(() => {})
    const moved = await cli(b, ['dlq', 'requeue', '--to-channel', 'sys.alert.critical', '--json'])
    expect(JSON.parse(moved.stdout)).toMatchObject({requeued: 1})
    const [copy] = await streamEntries(b, b.keys.stream('sys.alert.critical'))
    expect(JSON.parse(copy.e)).toMatchObject({type: 'x', data: {k: 2}, channel: 'sys.alert.critical'})
    expect(await b.redis.hget(b.keys.stats('sys.alert.critical'), 'requeued')).toBe('1')
  })

  it('to-channel is idempotent per DLQ entry across a crash between publish and delete', async () => {
    const b = await bus()
    await addDlq(b, [
      {channel: CH, handler: 'h1'},
      {channel: CH, handler: 'h1'},
    ])
    const [first] = await b.dlq.list()
    // Simulate a requeue killed after the target-side script ran but before the XDEL.
    await b.redis.set(b.keys.requeueMarker('sys.alert.critical', first.id), '1-0')
    const result = await b.dlq.requeue({toChannel: 'sys.alert.critical'})
    expect(result.requeued).toBe(1)
    expect(await b.redis.xlen(b.keys.stream('sys.alert.critical'))).toBe(1)
    expect(await b.redis.xlen(b.keys.dlq(CH, MRE))).toBe(0)
  })

  it('survives kill -9 mid-way: rerun leaves every event in rq exactly once and the DLQ empty', async () => {
    const b = await bus()
    const N = 24_000
    const events = Array.from({length: N}, (_, i) => envelope(CH, 'bulk', {i}))
    for (let i = 0; i < N; i += 4000)
      await addDlq(
        b,
        events.slice(i, i + 4000).map((event) => ({channel: CH, handler: 'h1', event})),
      )
    const dlq = b.keys.dlq(CH, MRE)
    const rq = b.keys.requeue(CH, 'h1')
    expect(await b.redis.xlen(dlq)).toBe(N)

    const child = spawn(
      process.execPath,
      [
        BIN,
        'dlq',
        'requeue',
        '--batch-size',
        '50',
        '--redis-url',
        redisUrl(),
        '--prefix',
        b.keys.prefix,
        '--json',
      ],
      {stdio: 'ignore'},
    )
    const exited = new Promise((resolve) => child.on('exit', resolve))
    await waitFor(async () => (await b.redis.xlen(rq)) > 0, 20_000, 'the requeue to start')
    child.kill('SIGKILL')
    await exited
    const [inRq, inDlq] = [await b.redis.xlen(rq), await b.redis.xlen(dlq)]
    expect(inRq).toBeGreaterThan(0)
    expect(inDlq).toBeGreaterThan(0)
    expect(inRq + inDlq).toBe(N)

    const rerun = await cli(b, ['dlq', 'requeue', '--json'], {timeoutMs: 60_000})
    expect(rerun.code).toBe(0)
    expect(JSON.parse(rerun.stdout).requeued).toBe(inDlq)
    expect(await b.redis.xlen(dlq)).toBe(0)
    const entries = await streamEntries(b, rq)
    expect(entries).toHaveLength(N)
    const ids = entries.map((e) => JSON.parse(e.e).id)
    expect(new Set(ids).size).toBe(N)
    expect(new Set(ids)).toEqual(new Set(events.map((e) => e.id)))
    expect(await b.redis.hget(b.keys.stats(CH), 'requeued')).toBe(String(N))
  }, 90_000)
})

describeTargets('raptor dlq purge', () => {
  it('refuses without a TTY and without --yes, changing nothing', async () => {
    const b = await bus()
    await mix(b)
    const before = await keyDump(b)
    const r = await cli(b, ['dlq', 'purge'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('--yes')
    expect(await keyDump(b)).toEqual(before)
  })

  it('counts with --dry-run, deletes with --yes, honours --older-than and the filters', async () => {
    const b = await bus()
    const now = await b.history.serverTime()
    const day = 24 * 3600 * 1000
    await b.redis.sadd(b.keys.channelRegistry(), CH)
    await addDlq(b, [
      {channel: CH, handler: 'h1', failedAt: now - 3 * day},
      {channel: CH, handler: 'h1', failedAt: now - 2 * day},
      {channel: CH, handler: 'h2', failedAt: now - 2 * day},
      {channel: CH, handler: 'h1'},
    ])
    const before = await keyDump(b)
    const dry = await cli(b, ['dlq', 'purge', '--dry-run', '--older-than', '1d', '--json'])
    expect(JSON.parse(dry.stdout)).toEqual({purged: 3, dryRun: true})
    expect(await keyDump(b)).toEqual(before)
    const one = await cli(b, ['dlq', 'purge', '--older-than', '1d', '--handler', 'h2', '--yes', '--json'])
    expect(JSON.parse(one.stdout)).toEqual({purged: 1, dryRun: false})
    const old = await cli(b, ['dlq', 'purge', '--older-than', '1d', '--yes', '--json'])
    expect(JSON.parse(old.stdout)).toEqual({purged: 2, dryRun: false})
    expect(await b.redis.xlen(b.keys.dlq(CH, MRE))).toBe(1)
    const rest = await cli(b, ['dlq', 'purge', '--yes'])
    expect(rest.code).toBe(0)
    expect(rest.stdout).toContain('purged 1 entry')
    expect(await b.redis.xlen(b.keys.dlq(CH, MRE))).toBe(0)
  })

  it('asks for confirmation on a TTY (through a pseudo-terminal)', async () => {
    const b = await bus()
    await b.redis.sadd(b.keys.channelRegistry(), CH)
    await addDlq(b, [
      {channel: CH, handler: 'h1'},
      {channel: CH, handler: 'h1'},
    ])
    const tty = (answer: string) =>
      new Promise<{code: number | null; out: string}>((resolve) => {
        const cmd = `${process.execPath} ${BIN} dlq purge --redis-url ${redisUrl()} --prefix ${b.keys.prefix}`
        const child = spawn('script', ['-qec', cmd, '/dev/null'], {env: {...process.env, NO_COLOR: '1'}})
        let out = ''
        child.stdout.on('data', (d) => {
          out += d
          if (out.includes('for good?') && !child.stdin.writableEnded) child.stdin.end(answer)
        })
        child.on('close', (code) => resolve({code, out}))
      })
    const no = await tty('n\r')
    expect(no.out).toContain('Delete 2 dead letters for good?')
    expect(no.code).toBe(1)
    expect(await b.redis.xlen(b.keys.dlq(CH, MRE))).toBe(2)
    const yes = await tty('y\r')
    expect(yes.code).toBe(0)
    expect(yes.out).toContain('purged 2 entries')
    expect(await b.redis.xlen(b.keys.dlq(CH, MRE))).toBe(0)
  })
})

describeTargets('short DLQ ids (the stream id alone, as dlq list shows on a terminal)', () => {
  it('dlq show, requeue --id and purge --id take them; one that two entries share is refused where it would change things', async () => {
    const b = await bus()
    await b.redis.sadd(b.keys.channelRegistry(), CH, 'sys.state.update')
    const now = Date.now()
    // Two entries in the same millisecond on two DLQ streams share a stream id; a third stands alone.
    const [shared] = await addDlq(b, [{channel: CH, handler: 'h1', failedAt: now - 3000}])
    const [same] = await addDlq(b, [
      {channel: 'sys.state.update', reason: 'processing_timeout', handler: 'h1', failedAt: now - 3000},
    ])
    expect(same).toBe(shared)
    const [alone] = await addDlq(b, [{channel: CH, handler: 'h2', failedAt: now - 1000}])

    // On a terminal the table shows the short id, and the full id where a listed entry shares it.
    const table = await runInPty(['dlq', 'list', '--redis-url', redisUrl(), '--prefix', b.keys.prefix], {
      cols: 160,
      env: {NO_COLOR: '1'},
    })
    const rows = screenText(table.stdout).trimEnd().split('\n').slice(1)
    expect(rows.map((r) => r.split(' ')[0]).sort()).toEqual(
      [`${CH}/${MRE}/${shared}`, `sys.state.update/processing_timeout/${shared}`, alone].sort(),
    )

    const show = await cli(b, ['dlq', 'show', alone])
    expect(show.code, show.stderr).toBe(0)
    expect(show.stdout).toMatch(new RegExp(`^id +${CH}/${MRE}/${alone}\\n`))
    // Read-only: a shared short id shows every entry that has it.
    const both = JSON.parse((await cli(b, ['dlq', 'show', shared, '--json'])).stdout)
    expect(both.entries.map((e: {id: string}) => e.id).sort()).toEqual(
      [`${CH}/${MRE}/${shared}`, `sys.state.update/processing_timeout/${shared}`].sort(),
    )

    // Changing: refused (exit 2, nothing moved), naming both full ids.
    const before = await keyDump(b)
    const ambiguous = await cli(b, ['dlq', 'requeue', '--id', shared])
    expect(ambiguous.code).toBe(2)
    expect(ambiguous.stderr).toBe(
      `Error: DLQ id '${shared}' is ambiguous: ${[`${CH}/${MRE}/${shared}`, `sys.state.update/processing_timeout/${shared}`].sort().join(' and ')} share it; give the full id\n`,
    )
    const purgeAmbiguous = await cli(b, ['dlq', 'purge', '--id', shared, '--yes'])
    expect(purgeAmbiguous.code).toBe(2)
    expect(await keyDump(b)).toEqual(before)

    const requeue = await cli(b, ['dlq', 'requeue', '--id', alone, '--json'])
    expect(requeue.code, requeue.stderr).toBe(0)
    expect(JSON.parse(requeue.stdout)).toMatchObject({requeued: 1, targets: [{channel: CH, handler: 'h2'}]})
    const purge = await cli(b, [
      'dlq',
      'purge',
      '--id',
      `sys.state.update/processing_timeout/${shared}`,
      '--yes',
    ])
    expect(purge.stdout).toBe('purged 1 entry\n')
    // Now unique: the short id names one entry.
    expect((await cli(b, ['dlq', 'purge', '--id', shared, '--yes'])).stdout).toBe('purged 1 entry\n')
    const gone = await cli(b, ['dlq', 'show', alone])
    expect(gone.code).toBe(1)
    expect(gone.stderr).toBe(`Error: no dead letter '${alone}': raptor dlq list shows the ids\n`)
  })
})
