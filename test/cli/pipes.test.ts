import {describe, expect, it} from 'vitest'

import {addDlq, publishBurst} from '../helpers/ops.js'
import {cliProcesses, randomPrefix, target, testBuses, waitFor, type RunningCli} from '../helpers/index.js'

// Closed pipes and slow readers, with real processes: the built binary writes into a real pipe whose
// reading end this test closes (as `| head -1` does) or stops reading.

const bus = testBuses()
const start = cliProcesses({timeoutMs: 25_000})

/** Reads until the first line, then closes the reading end of stdout, as `| head -1` does. */
async function headOne(child: RunningCli): Promise<string> {
  await waitFor(() => child.stdout.includes('\n') || child.child.exitCode !== null, 20_000, 'a first line')
  child.child.stdout!.destroy()
  return child.stdout.split('\n')[0]
}

/** A channel with more history than a pipe and the writer's bound hold (~3 MB of NDJSON). */
async function longHistory(prefix: string): Promise<void> {
  await publishBurst(await bus({prefix}), 'sys.state.update', 6000, 'tick', {text: 'x'.repeat(400)})
}

describe('a reader that goes away (EPIPE) ends the command at once with exit 0', () => {
  for (const json of [false, true]) {
    it(`replay CH --since 1h ${json ? '--json ' : ''}| head -1`, async () => {
      const prefix = randomPrefix()
      await longHistory(prefix)
      const child = start([
        'replay',
        'sys.state.update',
        '--since',
        '1h',
        ...target(prefix),
        ...(json ? ['--json'] : []),
      ])
      const line = await headOne(child)
      expect(line).toContain(json ? '"type":"tick"' : 'tick')
      const result = await child.exited
      expect(result.code, result.stderr).toBe(0)
      expect(result.stderr).toBe('')
    })
  }

  it('tail --since 1h --json | head -1', async () => {
    const prefix = randomPrefix()
    await longHistory(prefix)
    const child = start(['tail', 'sys.state.update', '--since', '1h', '--json', ...target(prefix)])
    await headOne(child)
    const result = await child.exited
    expect(result.code, result.stderr).toBe(0)
  })

  it('dlq list --json --limit 5000 | head -1', async () => {
    const prefix = randomPrefix()
    const b = await bus({prefix})
    for (let i = 0; i < 5; i++)
      await addDlq(
        b,
        Array.from({length: 1000}, () => ({
          channel: 'sys.alert.warning',
          handler: 'h',
          error: 'e'.repeat(500),
        })),
      )
    const child = start(['dlq', 'list', '--json', '--limit', '5000', ...target(prefix)])
    await headOne(child)
    const result = await child.exited
    expect(result.code, result.stderr).toBe(0)
  })

  it('agent --json | head -1 drains the agent and exits 0', async () => {
    const prefix = randomPrefix()
    const plugin = new URL('../fixtures/plugins/worker.mjs', import.meta.url).pathname
    const child = start(['agent', '--plugin', plugin, '--json', ...target(prefix)])
    await waitFor(() => child.stdout.includes('started'), 15_000, 'agent started')
    await headOne(child)
    // A process learns that its reader is gone when it next writes (EPIPE): make the agent log.
    const b = await bus({prefix})
    await b.publish({channel: 'sys.state.update', type: 'job', payload: {n: 1}})
    const result = await child.exited
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toBe('')
  })

  it('metrics --watch 1 --json | head -1', async () => {
    const prefix = randomPrefix()
    const child = start(['metrics', '--watch', '1', '--json', ...target(prefix)])
    await headOne(child)
    const result = await child.exited
    expect(result.code, result.stderr).toBe(0)
  })
})
