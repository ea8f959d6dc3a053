import {describe, expect, it} from 'vitest'

import {publishBurst} from '../helpers/ops.js'
import {
  cliProcesses,
  randomPrefix,
  runCli,
  target,
  testBuses,
  waitFor,
  type RunningCli,
} from '../helpers/index.js'

const bus = testBuses()
const start = cliProcesses({timeoutMs: 90_000})

async function tail(prefix: string, args: string[], env: Record<string, string> = {}): Promise<RunningCli> {
  const child = start(['tail', ...target(prefix), ...args], {env})
  await waitFor(
    () => child.stderr.includes('tail: listening on') || child.child.exitCode !== null,
    15_000,
    'listening',
  )
  expect(child.stderr).toContain('tail: listening on')
  return child
}

describe('tail with a reader that falls behind', () => {
  it('keeps its memory bounded: drops live events past its bound and says so on stderr', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    // A 64 MB heap: holding the 90 MB burst below for a reader that does not read would not fit.
    const child = await tail(prefix, ['sys.state.update', '--json'], {
      NODE_OPTIONS: '--max-old-space-size=64',
    })
    child.child.stdout!.pause()
    const total = 30_000
    await publishBurst(b, 'sys.state.update', total, 'burst', {text: 'x'.repeat(3000)})
    await waitFor(
      () => /tail: dropped \d+ events: reader too slow/.test(child.stderr),
      30_000,
      'the drop report',
    )
    expect(child.child.exitCode).toBeNull()
    // The reader catches up; tail goes on, and says in all how many it dropped.
    child.child.stdout!.resume()
    // Markers until one gets through (those sent while the reader still catches up are dropped too).
    let markers = 0
    await waitFor(
      async () => {
        await b.publish({channel: 'sys.state.update', type: 'marker'})
        markers++
        return child.stdout.includes('"type":"marker"')
      },
      30_000,
      'a marker',
    )
    child.child.kill('SIGINT')
    const result = await child.exited
    expect(result.code).toBe(130)
    const printed = result.stdout.split('\n').filter((l) => l.includes('"type":')).length
    const dropped = [...result.stderr.matchAll(/tail: dropped (\d+) events: reader too slow/g)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    )
    expect(dropped).toBeGreaterThan(0)
    // Every event was either printed or counted as dropped.
    expect(printed + dropped).toBe(total + markers)
  }, 120_000)
})

describe('tail --timeout beyond what one Node timer holds', () => {
  it('--timeout 30d --count 1 waits for the event instead of ending at once', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    const child = await tail(prefix, ['--timeout', '30d', '--count', '1', '--json'])
    const id = await b.publish({channel: 'sys.alert.warning', type: 'later'})
    const result = await child.exited
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout).id).toBe(id)
    expect(result.stderr).not.toMatch(/TimeoutOverflowWarning|timed out/)
  })
})

// The envelope refuses control characters in `source` and the other attributes (issue 9's other
// block); payload strings may hold anything, and JSON.stringify leaves C1 controls (U+009B is a
// one-character CSI to many terminals, U+0085 a line break) and bidi overrides as they are.
describe('control characters in readable output', () => {
  it('are escaped in tail lines: no payload can forge a line or move the cursor', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    const child = await tail(prefix, ['--count', '1'])
    await b.publish({
      channel: 'sys.alert.warning',
      type: 'evil',
      payload: {text: 'csi\u009b31m bidi\u202eevil', nel: 'a\u0085FAKE', esc: '\u001b[2J\r\n'},
    })
    const result = await child.exited
    expect(result.code, result.stderr).toBe(0)
    const lines = result.stdout.split('\n').filter((l) => l !== '')
    expect(lines).toHaveLength(1)
    // eslint-disable-next-line no-control-regex -- no control character may reach the terminal
    expect(lines[0]).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/)
    expect(lines[0]).toContain('csi\\x9b31m bidi\\u202eevil')
    expect(lines[0]).toContain('a\\x85FAKE')
  })

  it('are escaped in replay lines too', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    await b.publish({channel: 'sys.alert.warning', type: 'evil', payload: {t: '\u2066x\u009d0;title\u009c'}})
    const result = await runCli(['replay', 'sys.alert.warning', '--since', '1h', ...target(prefix)])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain('\\u2066x\\x9d0;title\\x9c')
    // eslint-disable-next-line no-control-regex -- no control character may reach the terminal
    expect(result.stdout.trimEnd()).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2066-\u2069]/)
  })
})
