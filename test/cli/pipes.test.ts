import {afterEach, describe, expect, it} from 'vitest'

import {addDlq} from '../helpers/ops.js'
import {randomPrefix, startCli, target, testBuses, waitFor, type RunningCli} from '../helpers/index.js'

// Closed pipes and slow readers, with real processes: the built binary writes into a real pipe whose
// reading end this test closes (as `| head -1` does) or stops reading.

const bus = testBuses()
const children: RunningCli[] = []

afterEach(() => {
  for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL')
})

function start(args: string[], env: Record<string, string> = {}): RunningCli {
  const child = startCli(args, {env, timeoutMs: 25_000})
  children.push(child)
  return child
}

/** Reads until the first line, then closes the reading end of stdout, as `| head -1` does. */
async function headOne(child: RunningCli): Promise<string> {
  await waitFor(() => child.stdout.includes('\n') || child.child.exitCode !== null, 20_000, 'a first line')
  child.child.stdout!.destroy()
  return child.stdout.split('\n')[0]
}

/** A channel with more history than a pipe and the writer's bound hold (~3 MB of NDJSON). */
async function longHistory(prefix: string): Promise<void> {
  const b = await bus({prefix})
  const payload = {text: 'x'.repeat(400)}
  for (let i = 0; i < 6; i++)
    await b.publishMany(
      Array.from({length: 1000}, (_, n) => ({
        channel: 'sys.state.update',
        type: 'tick',
        payload: {...payload, n},
      })),
    )
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
    await headOne(child)
    const result = await child.exited
    expect(result.code, result.stderr).toBe(0)
  })

  it('metrics --watch 1 --json | head -1', async () => {
    const prefix = randomPrefix()
    const child = start(['metrics', '--watch', '1', '--json', ...target(prefix)])
    await headOne(child)
    const result = await child.exited
    expect(result.code, result.stderr).toBe(0)
  })
})
