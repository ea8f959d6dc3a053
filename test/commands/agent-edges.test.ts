import {get} from 'node:http'
import {networkInterfaces} from 'node:os'
import {fileURLToPath} from 'node:url'

import {describe, expect, it} from 'vitest'

import {
  cliProcesses,
  keysUnder,
  randomPrefix,
  runCli,
  target,
  testBuses,
  waitFor,
  type RunningCli,
} from '../helpers/index.js'

const WORKER = fileURLToPath(new URL('../fixtures/plugins/worker.mjs', import.meta.url))
const bus = testBuses()
const start = cliProcesses({timeoutMs: 60_000})
const agent = (prefix: string, args: string[]) =>
  start(['agent', '--plugin', WORKER, ...target(prefix), ...args])

const started = (a: RunningCli) =>
  waitFor(
    () => /agent \S+ started/.test(a.stdout + a.stderr) || a.child.exitCode !== null,
    15_000,
    'agent start',
  )

/** GET http://host:port/path: the status, or the connection error's code. */
function fetchStatus(host: string, port: number, path: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = get({host, port, path, timeout: 2000}, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'))
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), {code: 'ETIMEDOUT'})))
  })
}

/** An IPv4 address of this machine other than loopback, if it has one. */
const otherAddress = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address

describe('raptor agent --metrics-host', () => {
  it('binds /metrics where asked (127.0.0.1: local only); the default is every interface', async () => {
    const prefix = randomPrefix()
    const local = agent(prefix, ['--metrics-port', '0', '--metrics-host', '127.0.0.1', '--json'])
    await started(local)
    const line = /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(local.stdout)
    expect(line, local.stdout + local.stderr).not.toBeNull()
    const port = Number(line![1])
    expect(await fetchStatus('127.0.0.1', port, '/metrics')).toBe(200)
    // Not reachable on the machine's other addresses (when it has one).
    if (otherAddress) expect(await fetchStatus(otherAddress, port, '/metrics')).toBe('ECONNREFUSED')

    const everywhere = agent(randomPrefix(), ['--metrics-port', '0', '--json'])
    await started(everywhere)
    expect(everywhere.stdout).toMatch(/metrics on http:\/\/0\.0\.0\.0:\d+\/metrics/)
  })

  it('an address that is not this machine is exit 2 naming the flag', async () => {
    const result = await runCli([
      'agent',
      '--plugin',
      WORKER,
      '--metrics-port',
      '0',
      '--metrics-host',
      '203.0.113.7',
      ...target(randomPrefix()),
    ])
    expect(result.code, result.stderr).toBe(2)
    expect(result.stderr).toMatch(/--metrics-host 203\.0\.113\.7 is not an address of this machine/)
  })
})

describe('raptor agent durations beyond what one Node timer holds', () => {
  it('--heartbeat-interval 30d beats once at start, not every millisecond', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    const a = agent(prefix, ['--heartbeat-interval', '30d', '--json'])
    await started(a)
    // A job through the agent: by the time it is done, a runaway interval would have beaten often.
    await b.publish({channel: 'sys.state.update', type: 'job', payload: {n: 1}})
    await waitFor(
      async () => (await b.redis.xlen(b.keys.stream('sys.alert.warning'))) === 1,
      15_000,
      'the job done',
    )
    expect(await b.redis.xlen(b.keys.stream('sys.global.heartbeat'))).toBe(1)
    expect(a.stderr).not.toContain('TimeoutOverflowWarning')
  })

  it('--reclaim-after past it is refused with exit 2', async () => {
    const result = await runCli([
      'agent',
      '--plugin',
      WORKER,
      '--reclaim-after',
      '30d',
      ...target(randomPrefix()),
    ])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(
      /invalid --reclaim-after '30d': at most 24\.8d \(the longest a timer can wait\)/,
    )
  })
})

describe('raptor agent heartbeat interval', () => {
  it('--heartbeat-interval 0 (or under 100 ms) is refused with exit 2 before anything is written', async () => {
    const prefix = randomPrefix()
    for (const value of ['0', '10ms']) {
      const result = await runCli([
        'agent',
        '--plugin',
        WORKER,
        '--heartbeat-interval',
        value,
        ...target(prefix),
      ])
      expect(result.code).toBe(2)
      expect(result.stderr).toMatch(/invalid --heartbeat-interval '.*': at least 100ms/)
    }
    expect(await keysUnder(prefix)).toEqual([])
  })
})

describe('raptor agent log lines', () => {
  it('escape control characters in every field, so an event cannot forge a log line', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    const a = agent(prefix, [])
    await started(a)
    await b.publish({
      channel: 'sys.state.update',
      type: 'job',
      payload: {n: 'x\u001b[31m\r\n00:00:00.000 error FAKE'},
    })
    await waitFor(() => a.stderr.includes('working'), 15_000, 'the handler log')
    const line = a.stderr.split('\n').find((l) => l.includes('working'))!
    // logfmt: a value with a space is quoted, its control characters escaped inside the quotes.
    expect(line).toContain('n="x\\u001b[31m\\r\\n00:00:00.000 error FAKE"')
    expect(a.stderr).not.toContain('\u001b')
    expect(a.stderr).not.toMatch(/^00:00:00\.000 error FAKE/m)
  })
})
