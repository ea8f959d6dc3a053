import {expect, it} from 'vitest'

import type {RaptorBus} from '../../src/bus/index.js'
import {addDlq, envelope} from '../helpers/ops.js'
import {describeTargets, randomPrefix, runCli, target, testBuses} from '../helpers/index.js'

// Dead letters written by something other than raptor (a foreign XADD) never stop `dlq list`: it
// shows what can be shown and skips (and counts) what cannot.

const bus = testBuses()
const KEY = (b: RaptorBus) => b.keys.dlq('sys.alert.warning', 'max_retries_exceeded')

/** A raw DLQ entry with the given fields over sane defaults. */
async function rawEntry(b: RaptorBus, fields: Record<string, string>): Promise<string> {
  const all: Record<string, string> = {
    e: JSON.stringify(envelope('sys.alert.warning', 'hostile')),
    reason: 'max_retries_exceeded',
    channel: 'sys.alert.warning',
    handler: 'h',
    error: 'boom',
    attempts: '3',
    failedAt: String(Date.now()),
    sid: '',
    requeues: '0',
    ...fields,
  }
  return (await b.redis.xadd(KEY(b), '*', ...Object.entries(all).flat())) as string
}

const list = (prefix: string, json: boolean) =>
  runCli(['dlq', 'list', ...target(prefix), ...(json ? ['--json'] : [])])

describeTargets('dlq list with hostile entries', () => {
  it('a failedAt that is no date (99999999999999999) falls back to the entry id time', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    await addDlq(b, [{channel: 'sys.alert.warning', handler: 'h'}])
    const id = await rawEntry(b, {failedAt: '99999999999999999', attempts: 'lots'})
    const json = await list(prefix, true)
    expect(json.code, json.stderr).toBe(0)
    const {entries} = JSON.parse(json.stdout) as {entries: {id: string; failedAt: string; attempts: number}[]}
    expect(entries).toHaveLength(2)
    const hostile = entries.find((e) => e.id.endsWith(id))!
    expect(hostile.failedAt).toBe(new Date(Number(id.split('-')[0])).toISOString())
    expect(hostile.attempts).toBe(0)
    const table = await list(prefix, false)
    expect(table.code, table.stderr).toBe(0)
    expect(table.stdout).toContain(id)
  })

  it('a 10 MB string is shown, in --json as in the table', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    const big = 'x'.repeat(10 * 1024 * 1024)
    await rawEntry(b, {e: JSON.stringify(envelope('sys.alert.warning', 'big', {big}))})
    const json = await list(prefix, true)
    expect(json.code, json.stderr).toBe(0)
    const {entries} = JSON.parse(json.stdout) as {entries: {event: {data: {big: string}}}[]}
    expect(entries[0].event.data.big).toHaveLength(big.length)
    const table = await list(prefix, false)
    expect(table.code, table.stderr).toBe(0)
    expect(table.stdout).toContain('big')
  })

  it('an entry that cannot be serialized (nested 20,000 deep) is skipped and counted; the rest are shown', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    await addDlq(b, [{channel: 'sys.alert.warning', handler: 'h'}])
    await rawEntry(b, {e: '['.repeat(20_000) + ']'.repeat(20_000)})
    await addDlq(b, [{channel: 'sys.alert.warning', handler: 'h'}])
    const json = await list(prefix, true)
    expect(json.code, json.stderr).toBe(0)
    expect((JSON.parse(json.stdout) as {entries: unknown[]}).entries).toHaveLength(2)
    expect(json.stderr).toContain('dlq list: skipped 1 entry that cannot be shown as JSON')
  })

  it('control characters in the table are escaped', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    await rawEntry(b, {error: 'Error: \u001b[2J\r\nforged line', handler: 'h\u009b1m'})
    const table = await list(prefix, false)
    expect(table.code, table.stderr).toBe(0)
    expect(table.stdout).toContain('Error: \\e[2J\\r\\n')
    expect(table.stdout).toContain('h\\x9b1m')
    expect(table.stdout).not.toContain('\u001b')
  })
})
