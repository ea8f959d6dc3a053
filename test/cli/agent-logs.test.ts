import {fileURLToPath} from 'node:url'

import {afterEach, describe, expect, it} from 'vitest'

import {RaptorBus} from '../../src/bus/index.js'
import {randomPrefix, redisUrl, startCli, waitFor, type RunningCli} from '../helpers/index.js'

const WORKER = fileURLToPath(new URL('../fixtures/plugins/worker.mjs', import.meta.url))
const running: RunningCli[] = []
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.child.kill('SIGKILL')
    await r.exited
  }
})

/** Runs an agent of the worker plugin over two jobs (one failing) and returns its stderr. */
async function agentLog(args: string[]): Promise<string> {
  const prefix = randomPrefix()
  const agent = startCli([
    'agent',
    '--plugin',
    WORKER,
    '--redis-url',
    redisUrl(),
    '--prefix',
    prefix,
    ...args,
  ])
  running.push(agent)
  const bus = await RaptorBus.connect({redisUrl: redisUrl(), prefix})
  // Registered (its first heartbeat) means its consumers are up, whatever the log level.
  await waitFor(async () => (await bus.redis.hlen(`${prefix}:agents`)) === 1, 15_000, 'the agent to start')
  try {
    await bus.publish({channel: 'sys.state.update', type: 'job', payload: {n: 'two words "quoted" a=b'}})
    await bus.publish({channel: 'sys.state.update', type: 'boom'})
    await waitFor(() => agent.stderr.includes('dead-lettered'), 15_000, 'the boom to be dead-lettered')
  } finally {
    await bus.close()
  }
  agent.child.kill('SIGTERM')
  return (await agent.exited).stderr
}

describe('agent logs', () => {
  it('are logfmt: values with spaces, quotes or = are quoted and escaped', async () => {
    const log = await agentLog([])
    expect(log).toContain(' info  working handler=worker n="two words \\"quoted\\" a=b"')
    expect(log).toMatch(/ info {2}consuming worker handler=worker channels=sys\.state\.update concurrency=4 /)
    expect(log).toMatch(/ info {2}handled handler=worker event=evt-\S+ type=job attempt=1 ms=\d+/)
    expect(log).toMatch(
      / error dead-lettered \(max_retries_exceeded\) handler=worker .*error="boom on purpose"/,
    )
  })

  it('--log-level warn keeps retries and failures, drops the line per handled event', async () => {
    const log = await agentLog(['--log-level', 'warn'])
    expect(log).not.toMatch(/ info /)
    expect(log).toMatch(/ warn {2}handler failed; retrying handler=worker/)
    expect(log).toMatch(/ error dead-lettered/)
  })
})
