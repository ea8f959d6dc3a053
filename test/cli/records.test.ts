import {describe, expect, it} from 'vitest'

import type {RaptorBus} from '../../src/bus/index.js'
import {ndjson, redisUrl, startCli, testBuses, waitFor} from '../helpers/index.js'
import {addDlq, cli} from '../helpers/ops.js'
import {runInPty, screenText} from '../helpers/pty.js'

const bus = testBuses()
const CH = 'sys.alert.critical'
const LONG = 'x'.repeat(400)

async function seed(b: RaptorBus): Promise<string> {
  return b.publish({
    channel: CH,
    type: 'fire',
    payload: {room: 'B 12', note: LONG},
    priority: 'critical',
    correlationId: 'req-42',
  })
}

const inPty = (b: RaptorBus, args: string[], env: Record<string, string> = {}, cols = 80) =>
  runInPty([...args, '--redis-url', redisUrl(), '--prefix', b.keys.prefix], {
    cols,
    env: {NO_COLOR: '1', ...env},
  })

describe('record lines (tail, replay)', () => {
  it('off a terminal: one line with UTC time, event id, correlation id and the whole payload', async () => {
    const b = await bus()
    const id = await seed(b)
    const r = await cli(b, ['replay', CH, '--since', '1h'])
    expect(r.code, r.stderr).toBe(0)
    const [line] = r.stdout.trimEnd().split('\n')
    expect(line).toMatch(
      new RegExp(
        `^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z ${id} critical +${CH} fire raptorbus correlationid=req-42 \\{`,
      ),
    )
    expect(line).toContain(`"note":"${LONG}"`)
    expect(r.stderr).toBe('replay: 1 event\n')
  })

  it('on a terminal: local time in TZ with its offset, two lines that fit 80 columns; --utc', async () => {
    const b = await bus()
    const id = await seed(b)
    const event = await b.getEvent(id)
    const r = await inPty(b, ['replay', CH, '--since', '1h'], {TZ: 'Asia/Kolkata'})
    const [first, second] = screenText(r.stdout).split('\n')
    const local = new Date(Date.parse(event.time) + 5.5 * 3600_000)
      .toISOString()
      .replace('T', ' ')
      .replace('Z', '')
    expect(first).toBe(`${local} +05:30 critical ${CH} fire raptorbus correlationid=req-42`)
    expect(second.startsWith(`  ${id} {"room":"B 12","note":"xxx`)).toBe(true)
    expect(second.endsWith('…')).toBe(true)
    expect(second.length).toBeLessThanOrEqual(80)
    // At 160 columns the payload line takes the width.
    const wide = screenText((await inPty(b, ['replay', CH, '--since', '1h'], {}, 160)).stdout).split('\n')[1]
    expect(wide.length).toBe(160)
    expect(wide.endsWith('…')).toBe(true)
    const utc = await inPty(b, ['replay', CH, '--since', '1h', '--utc'], {TZ: 'Asia/Kolkata'})
    expect(screenText(utc.stdout).split('\n')[0]).toBe(
      `${event.time} critical ${CH} fire raptorbus correlationid=req-42`,
    )
  })

  it('--format templates, -o json|yaml|wide; a bad template is exit 2', async () => {
    const b = await bus()
    const id = await seed(b)
    const event = await b.getEvent(id)
    const tpl = await cli(b, [
      'replay',
      CH,
      '--since',
      '1h',
      '--format',
      '{{.time}} {{.id}} {{.data.room}} [{{.data.nope}}]',
    ])
    expect(tpl.stdout).toBe(`${event.time} ${id} B 12 []\n`)
    const json = await cli(b, ['replay', CH, '--since', '1h', '-o', 'json'])
    expect(ndjson(json.stdout)).toEqual([event])
    const yaml = await cli(b, ['replay', CH, '--since', '1h', '-o', 'yaml'])
    expect(yaml.stdout).toMatch(new RegExp(`^---\\n[\\s\\S]*^id: ${id}$[\\s\\S]*^  room: B 12$`, 'm'))
    const wide = await inPty(b, ['replay', CH, '--since', '1h', '-o', 'wide'])
    expect(screenText(wide.stdout)).toContain(`"note":"${LONG}"`)
    const bad = await cli(b, ['replay', CH, '--since', '1h', '--format', '{{.time'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/^Error: invalid --format: '\{\{' at 0 is not closed/)
  })

  it('tail prints the same lines and templates', async () => {
    const b = await bus()
    const tail = startCli([
      'tail',
      CH,
      '--count',
      '1',
      '--format',
      '{{.id}} {{.correlationid}}',
      '--redis-url',
      redisUrl(),
      '--prefix',
      b.keys.prefix,
    ])
    await waitFor(() => tail.stderr.includes('tail: listening'), 10_000, 'tail to subscribe')
    const id = await seed(b)
    const r = await tail.exited
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`${id} req-42\n`)
  })
})

describe('raptor dlq show', () => {
  it('prints one entry whole (error, attempts, handler, the event pretty); exit 1 when unknown', async () => {
    const b = await bus()
    const [streamId] = await addDlq(b, [
      {
        channel: 'sys.alert.warning',
        handler: 'pager',
        attempts: 4,
        error: 'Error: upstream 503\n    at handle (pager.js:3:9)',
      },
    ])
    const id = `sys.alert.warning/max_retries_exceeded/${streamId}`
    const r = await cli(b, ['dlq', 'show', id])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(
      new RegExp(
        `^id +${id}\\nreason +max_retries_exceeded\\nchannel +sys\\.alert\\.warning\\nhandler +pager\\nattempts +4\\n`,
      ),
    )
    expect(r.stdout).toContain('error      Error: upstream 503\n    at handle (pager.js:3:9)')
    expect(r.stdout).toMatch(/\nevent\n\{\n {2}"specversion": "1\.0",/)
    const json = JSON.parse((await cli(b, ['dlq', 'show', id, '--json'])).stdout)
    expect(json.entries).toHaveLength(1)
    expect(json.entries[0]).toMatchObject({id, handler: 'pager', attempts: 4})
    const yaml = await cli(b, ['dlq', 'show', id, '-o', 'yaml'])
    expect(yaml.stdout).toMatch(/^entries:\n {2}- id: /)
    const missing = await cli(b, ['dlq', 'show', 'sys.alert.warning/max_retries_exceeded/1-0'])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe(
      "Error: no dead letter 'sys.alert.warning/max_retries_exceeded/1-0': raptor dlq list shows the ids\n",
    )
  })
})
