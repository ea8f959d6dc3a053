import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

import {Redis} from 'ioredis'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {RaptorBus} from '../../src/bus/index.js'
import {childProcesses} from '../helpers/child.js'
import {BIN, cliProcesses, isolatedEnv, randomPrefix, runCli, waitFor} from '../helpers/index.js'
import {RedisServer} from '../helpers/redis-server.js'

// The ACL rules are read from the README itself (between its acl-rules markers), so that the text a
// user copies is the text tested: it cannot drift. Each test file run uses its own prefix.
const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8')
const block = /<!-- acl-rules -->([\s\S]*?)<!-- \/acl-rules -->/.exec(README)?.[1] ?? ''
const RULES = block.split('\n').filter((line) => line.startsWith('ACL SETUSER '))
const WORKER = fileURLToPath(new URL('../fixtures/plugins/worker.mjs', import.meta.url))

let server: RedisServer
let admin: Redis
const prefix = randomPrefix()

/** The README's rules for a prefix (they are written for `raptor`). */
const rulesFor = (p: string) => RULES.map((rule) => rule.replace(/\braptor:/g, `${p}:`))

/** Password of a role, as the README writes it (`>publisher-secret`). */
function urlOf(user: string): string {
  const rule = RULES.find((r) => r.startsWith(`ACL SETUSER ${user} `))
  const password = / >(\S+)/.exec(rule ?? '')?.[1]
  return `redis://${user}:${password}@127.0.0.1:${server.port}/0`
}

const as = (user: string) => ['--redis-url', urlOf(user), '--prefix', prefix]
const startCli = cliProcesses()
const spawnChild = childProcesses()

beforeAll(async () => {
  server = await RedisServer.start()
  admin = new Redis(server.port, '127.0.0.1')
  for (const rule of rulesFor(prefix)) await admin.call('ACL', ...rule.split(/\s+/).slice(1))
}, 60_000)

afterAll(async () => {
  admin?.disconnect()
  await server?.stop()
})

/** Nothing of ioredis's ready-check noise, nor a stack. */
function quiet(stderr: string): void {
  expect(stderr).not.toMatch(/Skipping the ready check|enableReadyCheck/)
  expect(stderr).not.toMatch(/\bat \S+:\d+:\d+/)
}

describe(
  'ACL users: the README rules for a publisher, an agent and a read-only operator',
  {timeout: 120_000},
  () => {
    it('the README gives the three roles and the literal pattern rule for tail', () => {
      expect(RULES.map((r) => r.split(' ')[2])).toEqual([
        'raptor-publisher',
        'raptor-agent',
        'raptor-operator',
        'raptor-operator',
      ])
    })

    it('a publisher publishes (one event and a burst) and may read nothing else', async () => {
      const one = await runCli([
        'publish',
        '--channel',
        'sys.state.update',
        '--type',
        'job',
        '--payload',
        '{"n":0}',
        ...as('raptor-publisher'),
      ])
      expect(one.code, one.stderr).toBe(0)
      quiet(one.stderr)
      const burst = await runCli([
        'publish',
        '--channel',
        'sys.state.update',
        '--type',
        'job',
        '--payload',
        '{"n":1}',
        '--count',
        '20',
        ...as('raptor-publisher'),
      ])
      expect(burst.code, burst.stderr).toBe(0)
      const denied = await runCli(['channels', ...as('raptor-publisher')])
      expect(denied.code).toBe(1)
      expect(denied.stderr).toMatch(
        /^Error: permission denied: Redis user 'raptor-publisher' may not run (SMEMBERS|XLEN|XREVRANGE|XRANGE|SCAN)\b.*grant it with ACL SETUSER raptor-publisher \+/m,
      )
      quiet(denied.stderr)
    })

    it('an agent consumes, acks and heartbeats; the operator reads health and metrics without INFO and CLIENT LIST', async () => {
      const agent = spawnChild(
        [
          BIN,
          'agent',
          '--json',
          '--plugin',
          WORKER,
          '--id',
          'acl-agent',
          '--heartbeat-interval',
          '1s',
          ...as('raptor-agent'),
        ],
        isolatedEnv(),
      )
      await waitFor(() => agent.lines.some((l) => String(l.msg).includes('started')), 15_000, 'agent start')
      const publisher = await RaptorBus.connect({redisUrl: urlOf('raptor-publisher'), prefix})
      let ids: string[]
      try {
        ids = await publisher.publishMany(
          [1, 2, 3].map((n) => ({channel: 'sys.state.update', type: 'job', payload: {n}})),
        )
      } finally {
        await publisher.close()
      }
      const operator = await RaptorBus.connect({redisUrl: urlOf('raptor-operator'), prefix})
      try {
        const done = async () => {
          const out: string[] = []
          for await (const e of operator.replay('sys.alert.warning', {types: ['done']}))
            out.push(String(e.data.id))
          return out
        }
        await waitFor(
          async () => {
            const handled = await done()
            return ids.every((id) => handled.includes(id))
          },
          20_000,
          'the agent handled the jobs',
        )
      } finally {
        await operator.close()
      }

      const health = await runCli(['health', '--json', ...as('raptor-operator')])
      quiet(health.stderr)
      expect(health.code, health.stdout + health.stderr).toBe(0)
      const report = JSON.parse(health.stdout) as Record<string, unknown>
      expect(report).toMatchObject({status: 'healthy', redisVersion: null, usedMemoryBytes: null})
      expect(report.unreadable).toEqual(
        expect.arrayContaining([
          expect.objectContaining({command: 'INFO', reason: expect.stringMatching(/NOPERM/)}),
        ]),
      )
      expect((report.agents as {id: string}[]).map((a) => a.id)).toEqual(['acl-agent'])
      const human = await runCli(['health', ...as('raptor-operator')])
      expect(human.code, human.stderr).toBe(0)
      expect(human.stdout).toMatch(
        /not readable by Redis user raptor-operator: INFO \(version, clients, memory, uptime\)/,
      )

      const metrics = await runCli(['metrics', '--json', ...as('raptor-operator')])
      quiet(metrics.stderr)
      expect(metrics.code, metrics.stderr).toBe(0)
      const m = JSON.parse(metrics.stdout) as Record<string, unknown>
      expect(m.subscribers).toBeNull()
      expect(m.unreadable).toEqual([expect.objectContaining({command: 'CLIENT LIST'})])
      expect((m.global as {counters: {acked: number}}).counters.acked).toBeGreaterThanOrEqual(3)
      const prom = await runCli(['metrics', '--format', 'prometheus', ...as('raptor-operator')])
      expect(prom.code, prom.stderr).toBe(0)
      expect(prom.stdout).not.toMatch(/raptor_live_subscribers/)

      agent.child.kill('SIGTERM')
      expect(await agent.exit).toBe(0)
      quiet(agent.stderr)
    })

    it('an operator reads channels, replay, get, dlq and tails a glob; writing is a permission error naming the command', async () => {
      for (const args of [['channels'], ['replay', 'sys.state.update'], ['dlq', 'list']]) {
        const result = await runCli([...args, '--json', ...as('raptor-operator')])
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0)
        quiet(result.stderr)
      }
      const tail = startCli(['tail', 'sys.alert.*', '--count', '1', '--json', ...as('raptor-operator')])
      await waitFor(() => tail.stderr.includes('listening'), 15_000, 'tail listening')
      const sent = await runCli([
        'publish',
        '--channel',
        'sys.alert.warning',
        '--type',
        'x',
        '--payload',
        '{}',
        ...as('raptor-publisher'),
      ])
      expect(sent.code, sent.stderr).toBe(0)
      const tailed = await tail.exited
      expect(tailed.code, tailed.stderr).toBe(0)
      expect(JSON.parse(tailed.stdout)).toMatchObject({channel: 'sys.alert.warning', type: 'x'})
      const get = await runCli(['get', sent.stdout.trim(), ...as('raptor-operator')])
      expect(get.code, get.stderr).toBe(0)

      // A glob the rules do not list literally (ACL matches PSUBSCRIBE patterns as strings).
      const other = await runCli(['tail', 'app.*', '--timeout', '1s', ...as('raptor-operator')])
      expect(other.code).toBe(1)
      expect(other.stderr).toMatch(
        /permission denied: Redis user 'raptor-operator' may not use the pub\/sub channel of PSUBSCRIBE: .*listed literally/,
      )

      const publish = await runCli([
        'publish',
        '--channel',
        'sys.alert.warning',
        '--type',
        'x',
        '--payload',
        '{}',
        ...as('raptor-operator'),
      ])
      expect(publish.code).toBe(1)
      expect(publish.stderr).toMatch(
        /^Error: permission denied: Redis user 'raptor-operator' may not run (SADD|EVALSHA|EVAL)\b.*\(NOPERM/m,
      )
      quiet(publish.stderr)
    })

    it('a command denied inside a raptor script is named by the script line', async () => {
      const user = 'raptor-noset'
      await admin.call(
        'ACL',
        'SETUSER',
        user,
        'on',
        '>noset-secret',
        `~${prefix}:*`,
        `&${prefix}:live@0:*`,
        '-@all',
        '+evalsha',
        '+eval',
        '+time',
        '+xadd',
        '+set',
        '+publish',
        '+sadd',
      )
      const result = await runCli([
        'publish',
        '--channel',
        'sys.state.update',
        '--type',
        'job',
        '--payload',
        '{}',
        '--redis-url',
        `redis://${user}:noset-secret@127.0.0.1:${server.port}/0`,
        '--prefix',
        prefix,
      ])
      expect(result.code).toBe(1)
      expect(result.stderr).toMatch(
        /permission denied: Redis user 'raptor-noset' may not run HINCRBY inside raptor's publish script: grant it with ACL SETUSER raptor-noset \+hincrby/,
      )
    })
  },
)
