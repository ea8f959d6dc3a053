import {describe, expect, it} from 'vitest'

import {
  keysUnder,
  randomPrefix,
  redisUrl,
  runCli,
  startCli,
  target,
  testBuses,
  waitFor,
} from '../helpers/index.js'
import {addDlq, cli} from '../helpers/ops.js'
import {runInPty, screenText} from '../helpers/pty.js'

const bus = testBuses()
const CONFIG_HINT =
  '; to add it, list {"name":"foo","retention":"24h"} under "channels" in raptor.config.json'

describe('unknown channels', () => {
  it('publish -c foo from a script: no far-fetched suggestion, how to add it, the event parked', async () => {
    const prefix = randomPrefix()
    const r = await runCli(['publish', ...target(prefix), '-c', 'foo', '-t', 'x'])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(
      `Error: unknown channel 'foo' (event parked in DLQ routing_error)${CONFIG_HINT} (raptor channels lists the topology)\n`,
    )
    expect(await keysUnder(prefix)).toContain(`${prefix}:ch:{sys.dlq.routing_error}:dlq:routing_error`)
    const close = await runCli(['publish', ...target(prefix), '-c', 'sys.alert.warnin', '-t', 'x'])
    expect(close.stderr).toMatch(/did you mean 'sys\.alert\.warning'\?/)
  })

  it('publish --count and --ndjson from a script park the misrouted events and write nothing else', async () => {
    const prefix = randomPrefix()
    const dlq = `${prefix}:ch:{sys.dlq.routing_error}:dlq:routing_error`
    const count = await runCli(['publish', ...target(prefix), '-c', 'foo', '-t', 'x', '--count', '5000'])
    expect(count.code).toBe(2)
    expect(count.stderr).toContain("unknown channel 'foo' (event parked in DLQ routing_error)")
    expect(await (await bus()).redis.xlen(dlq)).toBe(1)
    const lines = ['{"channel":"sys.state.update","type":"a"}', '{"channel":"app.nope","type":"b"}']
    const ndjson = await runCli(['publish', ...target(prefix), '--ndjson', '-'], {input: lines.join('\n')})
    expect(ndjson.code).toBe(2)
    expect(ndjson.stderr).toContain("unknown channel 'app.nope' (event parked in DLQ routing_error)")
    expect(await (await bus()).redis.xlen(dlq)).toBe(2)
    expect(await keysUnder(prefix)).not.toContain(`${prefix}:ch:{sys.state.update}:stream`)
  })

  it('a typo typed at a terminal is exit 2 and parks nothing', async () => {
    const prefix = randomPrefix()
    const r = await runInPty(['publish', ...target(prefix), '-c', 'sys.alert.warnin', '-t', 'x'], {
      cols: 120,
      env: {NO_COLOR: '1'},
    })
    expect(r.code).toBe(2)
    expect(screenText(r.stdout)).toMatch(
      /^Error: unknown channel 'sys\.alert\.warnin'; did you mean 'sys\.alert\.warning'\?/,
    )
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('tail warns about a pattern that matches no known channel, and refuses invalid globs', async () => {
    const prefix = randomPrefix()
    const tail = startCli(['tail', ...target(prefix), 'sys.alert.warnin', '--timeout', '20s'])
    await waitFor(() => tail.stderr.includes('warning'), 10_000, 'the warning')
    tail.child.kill('SIGINT')
    const r = await tail.exited
    expect(r.stderr).toBe(
      "tail: listening on sys.alert.warnin\ntail: warning: 'sys.alert.warnin' matches no known channel (did you mean 'sys.alert.warning'?); listening for it anyway\n",
    )
    const known = startCli(['tail', ...target(prefix), 'sys.alert.*', '--timeout', '20s'])
    await waitFor(() => known.stderr.includes('listening'), 10_000, 'tail to subscribe')
    known.child.kill('SIGINT')
    expect((await known.exited).stderr).toBe('tail: listening on sys.alert.*\n')
    const glob = await runCli(['tail', ...target(prefix), 'sys.***'])
    expect(glob.code).toBe(2)
    expect(glob.stderr).toMatch(/^Error: invalid channel pattern 'sys\.\*\*\*'/)
    const bracket = await runCli(['dlq', 'list', ...target(prefix), '--channel', 'sys.['])
    expect(bracket.code).toBe(2)
    expect(bracket.stderr).toMatch(/^Error: invalid channel pattern 'sys\.\['/)
  })

  it('metrics --channel of an unknown channel is exit 2', async () => {
    const r = await runCli(['metrics', ...target(randomPrefix()), '--channel', 'sys.nope'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^Error: unknown channel 'sys\.nope'; to add it/)
  })
})

describe('dlq requeue', () => {
  it('asks on a terminal when no filter is given (no → exit 1, nothing moved); --yes skips the question', async () => {
    const b = await bus()
    await addDlq(b, [
      {channel: 'sys.alert.warning', handler: 'h'},
      {channel: 'sys.alert.warning', handler: 'h'},
    ])
    const args = ['dlq', 'requeue', '--redis-url', redisUrl(), '--prefix', b.keys.prefix]
    const no = await runInPty(args, {cols: 80, input: 'n\r', env: {NO_COLOR: '1'}})
    expect(screenText(no.stdout)).toContain('Requeue all 2 dead letters?')
    expect(no.code).toBe(1)
    expect((await b.dlq.list({})).length).toBe(2)
    const yes = await runInPty([...args, '--yes'], {cols: 80, env: {NO_COLOR: '1'}})
    expect(yes.code).toBe(0)
    expect(screenText(yes.stdout)).toMatch(/^requeued 2 entries\n/)
    expect((await b.dlq.list({})).length).toBe(0)
  })

  it('--id that matches nothing is exit 1 (requeue and purge)', async () => {
    const b = await bus()
    const id = 'sys.alert.warning/max_retries_exceeded/1-0'
    const requeue = await cli(b, ['dlq', 'requeue', '--id', id])
    expect(requeue.code).toBe(1)
    expect(requeue.stderr).toBe(`Error: no dead letter matches --id ${id}: raptor dlq list shows the ids\n`)
    const purge = await cli(b, ['dlq', 'purge', '--id', id, '--yes'])
    expect(purge.code).toBe(1)
  })
})

describe('consistent flags and wording', () => {
  it('-p is --payload only: agent, agent test and replay spell --plugin out', async () => {
    const [agent, test, replay, publish] = await Promise.all([
      runCli(['agent', '-h']),
      runCli(['agent', 'test', '-h']),
      runCli(['replay', '-h']),
      runCli(['publish', '-h']),
    ])
    for (const r of [agent, test, replay]) {
      expect(r.stdout).toMatch(/ {2}--plugin=<value>/)
      expect(r.stdout).not.toMatch(/-p, --plugin/)
    }
    expect(publish.stdout).toMatch(/-p, --payload=<value>/)
    expect(agent.stdout).toContain('raptor agent --plugin examples/plugins/research-monitor.js')
  })

  it('replay refuses a reversed window (exit 2) and says "1 event"', async () => {
    const b = await bus()
    const reversed = await cli(b, ['replay', 'sys.alert.warning', '--since', '1h', '--until', '2h'])
    expect(reversed.code).toBe(2)
    expect(reversed.stderr).toMatch(/^Error: the window ends before it starts/)
    await b.publish({channel: 'sys.alert.warning', type: 'x'})
    const one = await cli(b, [
      'replay',
      'sys.alert.warning',
      '--since',
      '1h',
      '--to-channel',
      'sys.alert.critical',
    ])
    expect(one.stdout).toBe('re-published 1 event from sys.alert.warning onto sys.alert.critical\n')
  })

  it('retention is never "1m": minutes are min, so no one reads a month', async () => {
    const b = await bus()
    const r = await cli(b, ['channels'])
    expect(r.stdout).toMatch(/^sys\.global\.heartbeat +1min /m)
    expect(r.stdout).not.toMatch(/ 1m /)
  })
})
