import {describe, expect, it} from 'vitest'

import {RoutingError, type RaptorBus} from '../../src/bus/index.js'
import {redisUrl, testBuses, waitFor} from '../helpers/index.js'
import {addDlq, cli} from '../helpers/ops.js'
import {runInPty, screenText, startInPty} from '../helpers/pty.js'

const bus = testBuses()

/** Eight channels with traffic, a handler with a backlog, dead letters with long errors. */
async function workload(b: RaptorBus): Promise<void> {
  const channels = [
    'sys.global.heartbeat',
    'sys.guild.research.broadcast',
    'sys.guild.muse.broadcast',
    'sys.guild.matrix.broadcast',
    'sys.guild.guardians.broadcast',
    'sys.alert.critical',
    'sys.alert.warning',
    'sys.state.update',
  ]
  for (const [i, channel] of channels.entries())
    await b.publishMany(Array.from({length: 10 + i * 137}, (_, n) => ({channel, type: 't', payload: {n}})))
  await expect(b.publish({channel: 'app.unknown', type: 'x'})).rejects.toBeInstanceOf(RoutingError)
  await b.redis.xgroup('CREATE', b.keys.stream('sys.alert.warning'), 'research_monitor', '0')
  await addDlq(b, [
    {
      channel: 'sys.guild.research.broadcast',
      handler: 'research_monitor',
      attempts: 4,
      // Distinct milliseconds: entries of two DLQ streams in one ms share their stream id (tested apart).
      failedAt: Date.now() - 5000,
      error:
        'Error: upstream 503 from https://api.example.com/v1/research/summaries after 30000 ms of waiting',
    },
    {
      channel: 'sys.alert.warning',
      reason: 'processing_timeout',
      handler: 'pager',
      error: 'exceeded timeoutMs 30000',
      failedAt: Date.now() - 4000,
    },
  ])
}

const run = (b: RaptorBus, args: string[], cols: number) =>
  runInPty([...args, '--redis-url', redisUrl(), '--prefix', b.keys.prefix], {cols, env: {NO_COLOR: '1'}})

/** Lines of what a terminal showed. */
const lines = (raw: string) => screenText(raw).replace(/\n$/, '').split('\n')

describe('tables fit the terminal', () => {
  for (const cols of [80, 160]) {
    it(`metrics at ${cols} columns: no line wider, compact rows, numbers right-aligned`, async () => {
      const b = await bus()
      await workload(b)
      const r = await run(b, ['metrics'], cols)
      expect(r.code, r.stdout).toBe(0)
      const shown = lines(r.stdout)
      for (const line of shown) expect(line.length, line).toBeLessThanOrEqual(cols)
      // 4 summary lines (3 at 160), a blank, header, 9 channel rows, a blank, header, one handler row.
      expect(shown.length).toBeLessThanOrEqual(20)
      expect(shown.some((l) => /^[─┌└├-]+/.test(l) && !/^[a-z]/.test(l))).toBe(false)
      const header = shown.find((l) => l.startsWith('CHANNEL'))!
      // Extra columns show when there is room for them, and go before anything is cut.
      if (cols === 160)
        expect(header).toMatch(
          /^CHANNEL +RETENTION +LENGTH +PUBLISHED +DELIVERED +ACKED +FAILED +RETRIED +DEAD +REQUEUED +LIVE +DLQ$/,
        )
      else expect(header).toMatch(/^CHANNEL +RETENTION +LENGTH +PUBLISHED +ACKED +FAILED +DLQ$/)
      const row = shown.find((l) => l.startsWith('sys.alert.warning '))!
      // Right-aligned: the number ends where its header ends.
      const end = header.indexOf('PUBLISHED') + 'PUBLISHED'.length
      expect(row.slice(0, end)).toMatch(/ 832$/)
      expect(row).toMatch(/^sys\.alert\.warning +1d +832 +832/)
      expect(shown.some((l) => l.startsWith('sys.guild.guardians.broadcast '))).toBe(true)
      const handler = shown.find((l) => l.startsWith('research_monitor'))!
      expect(handler).toMatch(/^research_monitor +sys\.alert\.warning +832 +0 /)
    })

    it(`dlq list at ${cols} columns: short ids, the error cut first, less important columns left out`, async () => {
      const b = await bus()
      await workload(b)
      const r = await run(b, ['dlq', 'list'], cols)
      expect(r.code, r.stdout).toBe(0)
      const shown = lines(r.stdout)
      expect(shown).toHaveLength(4)
      for (const line of shown) expect(line.length, line).toBeLessThanOrEqual(cols)
      // At 80 columns the handler, type and attempts give way; at 160 everything fits.
      expect(shown[0]).toMatch(
        cols === 80
          ? /^ID +AGE +REASON +CHANNEL +ERROR$/
          : /^ID +AGE +REASON +CHANNEL +HANDLER +TYPE +ATTEMPTS +ERROR$/,
      )
      // Ids by their stream id alone, which dlq show and requeue --id take (tested below).
      for (const line of shown.slice(1)) expect(line).toMatch(/^\d+-\d+ +\d+s +/)
      const [research] = (await b.dlq.list({channels: ['sys.guild.research.broadcast']})).map((e) =>
        e.id.split('/').pop(),
      )
      const row = shown.find((l) => l.startsWith(`${research} `))!
      if (cols === 160)
        expect(row).toMatch(
          / max_retries_exceeded +sys\.guild\.research\.broadcast +research_monitor +failed_thing +4 +Error: upstream 503 .*…$/,
        )
      else expect(row).toMatch(/ max_retries_e\S*… +sys\.guild\.r\S*… +Error: upstream 503 .*…$/)
      expect(shown.some((l) => / routing_error +app\.unknown +/.test(l))).toBe(true)
    })
  }

  it('off a terminal nothing is cut; -o wide shows every column', async () => {
    const b = await bus()
    await workload(b)
    const plain = await cli(b, ['dlq', 'list'])
    expect(plain.stdout).toContain('after 30000 ms of waiting')
    // Off a terminal: full ids and every column, for scripts.
    expect(plain.stdout).toMatch(
      /^ID +FAILED AT +REASON +CHANNEL +HANDLER +TYPE +EVENT ID +ATTEMPTS +REQUEUES +ERROR\nsys\.guild\.research\.broadcast\/max_retries_exceeded\/\d+-\d+ +\d{4}-\d\d-\d\dT[\d:.]+Z +max_retries_exceeded +/,
    )
    const wide = await run(b, ['dlq', 'list', '-o', 'wide'], 80)
    const text = screenText(wide.stdout)
    expect(text).toMatch(/ID +FAILED AT +REASON +CHANNEL +HANDLER +TYPE +EVENT ID +ATTEMPTS +REQUEUES +ERROR/)
    expect(text).toContain('after 30000 ms of waiting')
    const metrics = await cli(b, ['metrics', '-o', 'wide'])
    expect(metrics.stdout).toMatch(
      /CHANNEL +RETENTION +LENGTH +PUBLISHED +DELIVERED +ACKED +FAILED +RETRIED +DEAD +REQUEUED +LIVE +DLQ/,
    )
    const yaml = await cli(b, ['metrics', '-o', 'yaml'])
    expect(yaml.stdout).toMatch(/^prefix: t[0-9a-f]+$/m)
  })

  it('metrics --watch draws on the alternate screen, redrawn in place, and restores the screen on Ctrl-C', async () => {
    const b = await bus()
    await workload(b)
    const watch = startInPty(
      ['metrics', '--watch', '1', '--redis-url', redisUrl(), '--prefix', b.keys.prefix],
      {
        cols: 80,
        env: {NO_COLOR: '1'},
      },
    )
    await waitFor(() => watch.output.split('raptor metrics').length >= 3, 15_000, 'two frames')
    watch.type('\x03')
    const r = await watch.exited
    expect(r.code).toBe(130)
    expect(r.stdout.startsWith('\x1b[?1049h')).toBe(true)
    expect(r.stdout.trimEnd().endsWith('\x1b[?1049l')).toBe(true)
    expect(r.stdout).not.toContain('\x1b[2J')
    // Each frame starts at the top left and clears what the previous one left below it.
    expect(r.stdout.split('\x1b[H').length).toBeGreaterThanOrEqual(3)
    expect(r.stdout).toContain('\x1b[J')
  })
})
