import {spawn} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {Redis} from 'ioredis'
import {afterEach, describe, expect, it} from 'vitest'

import {loadScripts} from '../../src/bus/scripts.js'
import {DRYRUN_ARGS, commandsByRole, scriptCommands} from '../../src/cli/doctor.js'
import {clusterUrl, randomPrefix, redisUrl, runCli, tempDir, waitFor} from '../helpers/index.js'
import {RedisServer, freePort, pathWithoutRedis} from '../helpers/redis-server.js'

const servers: {stop(): Promise<void>}[] = []
afterEach(async () => {
  while (servers.length > 0) await servers.pop()!.stop()
})

/** A redis-server started with extra arguments (cluster mode, sentinel), stopped after the test. */
async function redisWith(args: string[]): Promise<string> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'raptor-doctor-'))
  const child = spawn(
    'redis-server',
    [...args, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir],
    {
      stdio: 'ignore',
    },
  )
  servers.push({
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGKILL')
      }),
  })
  const url = `redis://127.0.0.1:${port}/0`
  await waitFor(
    async () => {
      const r = new Redis(url, {lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0})
      r.on('error', () => {}) // not up yet: connect() rejects, and the poll tries again
      try {
        await r.connect()
        return (await r.ping()) === 'PONG'
      } finally {
        r.disconnect()
      }
    },
    10_000,
    'redis-server to start',
  )
  return url
}

const lines = (stdout: string) => stdout.trimEnd().split('\n')

describe('raptor doctor', () => {
  it('knows DRYRUN arguments for every command the Lua scripts call', () => {
    const scripts = loadScripts()
    expect(scripts.length).toBeGreaterThan(3)
    const commands = [...commandsByRole().values()].flat()
    expect(commands).toContain('XADD')
    for (const {name, lua} of scripts)
      for (const command of scriptCommands(lua))
        expect(
          DRYRUN_ARGS[command],
          `${command} (lua/${name}.lua) has no DRYRUN arguments in src/cli/doctor.ts`,
        ).toBeDefined()
  })

  it('all ✓ on a working setup: settings and where they came from, Redis, db, permissions, plugin, config', async () => {
    const dir = tempDir({'raptor.config.json': {channels: [{name: 'app.orders.*', retention: '7d'}]}})
    const plugin = join(dir, 'p.mjs')
    writeFileSync(plugin, "export default {name: 'h', channels: ['app.orders.*'], handle() {}}\n")
    const prefix = randomPrefix()
    const r = await runCli(['doctor', '--redis-url', redisUrl(), '--plugin', plugin], {
      cwd: dir,
      env: {RAPTOR_PREFIX: prefix},
    })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const out = lines(r.stdout)
    expect(out[0]).toMatch(/^✓ node +v\d+/)
    expect(r.stdout).toMatch(/^✓ contexts +none saved/m)
    expect(r.stdout).toMatch(/^✓ config file +.*raptor\.config\.json: 1 channels, 0 payload schemas$/m)
    expect(r.stdout).toContain(`✓ settings              ${redisUrl()} (flag), prefix ${prefix} (env)`)
    expect(r.stdout).toMatch(/^✓ redis +reachable at/m)
    expect(r.stdout).toMatch(/^✓ redis version +\d+\.\d+\.\d+ \(standalone\)$/m)
    expect(r.stdout).toMatch(/^✓ deployment +standalone$/m)
    expect(r.stdout).toMatch(/^✓ database +db 0 of 16$/m)
    expect(r.stdout).toMatch(/^✓ permissions +user default may run every command raptor uses$/m)
    expect(r.stdout).toMatch(/^✓ plugin .*p\.mjs +handlers h \(app\.orders\.\*\)$/m)
    expect(r.stdout).toMatch(/^✓ redis-server \(tests\) +Redis server v=/m)
    expect(r.stdout).not.toContain('✗')
    const json = JSON.parse(
      (await runCli(['doctor', '--redis-url', redisUrl(), '--json'], {cwd: dir})).stdout,
    )
    expect(json).toMatchObject({ok: true, prefix: 'raptor', origins: {redisUrl: 'flag', prefix: 'default'}})
  })

  it('✗ with the fix: unreachable Redis, a database that does not exist, a plugin that does not load, no redis-server', async () => {
    const dir = tempDir({'bad.mjs': 'export default {name: "h"}\n'})
    const down = await runCli(['doctor', '--redis-url', 'redis://127.0.0.1:1/0', '--plugin', 'bad.mjs'], {
      cwd: dir,
      env: {PATH: pathWithoutRedis()},
    })
    expect(down.code).toBe(1)
    expect(down.stdout).toMatch(
      /^✗ redis +cannot reach Redis at redis:\/\/127\.0\.0\.1:1\/0 \((connect )?ECONNREFUSED[^)]*\)\n +fix: start redis-server there/m,
    )
    expect(down.stdout).toMatch(/^✗ plugin bad\.mjs +.*channels.*\n +fix: raptor agent test/m)
    // Only raptor's own tests need it: a warning with the fix, not a failure.
    expect(down.stdout).toMatch(
      /^! redis-server \(tests\) +not on the PATH.*\n +fix: apt-get install redis-server/m,
    )
    const noServer = await runCli(['doctor', '--redis-url', redisUrl()], {env: {PATH: pathWithoutRedis()}})
    expect(noServer.code, noServer.stdout).toBe(0)
    expect(noServer.stdout).toMatch(/^! redis-server \(tests\) +not on the PATH/m)
    const bad = await runCli(['doctor', '--redis-url', 'redis//x'])
    expect(bad.code).toBe(1)
    expect(bad.stdout).toMatch(
      /^✗ redis url +invalid Redis URL 'redis\/\/x': it has no scheme.*\n +fix: write it as redis:\/\//m,
    )
    const db = await runCli(['doctor', '--redis-url', redisUrl().replace(/\/0$/, '/99')])
    expect(db.stdout).toMatch(
      /^✗ database +db 99 does not exist \(the server has 16: 0–15\)\n +fix: use \/0 … \/15/m,
    )
  })

  it('reports ACL permissions this user lacks, naming the commands and the rule', async () => {
    const server = await RedisServer.start()
    servers.push(server)
    const admin = new Redis(server.url)
    await admin.call(
      'ACL',
      'SETUSER',
      'reader',
      'on',
      '>pw',
      '~raptor:*',
      '&raptor:*',
      '+@read',
      '+@connection',
      '+info',
      '+time',
      '+acl|whoami',
      '+acl|dryrun',
      '+subscribe',
      '+psubscribe',
    )
    admin.disconnect()
    const r = await runCli(['doctor', '--redis-url', server.url.replace('//', '//reader:pw@')])
    expect(r.code).toBe(1)
    // The client's commands and those its Lua scripts call (Redis checks both), by role.
    expect(r.stdout).toMatch(
      /^✗ permissions +user reader may not run what raptor needs for publish \(EVALSHA, SCRIPT, SADD, PUBLISH, [^)]*XADD[^)]*\), agent \(EVALSHA, XREADGROUP, XGROUP, XAUTOCLAIM, [^)]*XACK/m,
    )
    expect(r.stdout).not.toMatch(/^✗ permissions .*read \(/m)
    expect(r.stdout).toMatch(
      /fix: ACL SETUSER reader &raptor:live@0:\* \+evalsha \+script \+sadd \+publish \+xadd /,
    )
    // The rule it prints is enough: applied, the same check passes.
    const rule = /fix: (ACL SETUSER reader &\S+ (?:\+[a-z]+ ?)+)/.exec(r.stdout)![1].trim().split(' ')
    const admin2 = new Redis(server.url)
    await admin2.call(rule[0], ...rule.slice(1))
    admin2.disconnect()
    const fixed = await runCli(['doctor', '--redis-url', server.url.replace('//', '//reader:pw@')])
    expect(fixed.stdout).toMatch(/^✓ permissions +user reader may run every command raptor uses$/m)
    expect(r.stdout).not.toContain('pw@')
  })

  it('detects a Redis Cluster (working, or not yet serving) and a Sentinel, and says what to do', async () => {
    const cluster = await redisWith([
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      `nodes-${Date.now()}.conf`,
    ])
    // A cluster node whose slots were never assigned: not serving, and doctor says how to finish it.
    const r = await runCli(['doctor', '--redis-url', cluster])
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(
      /^✗ redis +the Redis Cluster at 127\.0\.0\.1:\d+ is not serving \(cluster_state:fail, 0 of 16384 slots assigned\)\n +fix: assign every slot/m,
    )
    // A working cluster: found from one node.
    const ok = await runCli(['doctor', '--redis-url', clusterUrl()])
    expect(ok.code, ok.stdout).toBe(0)
    expect(ok.stdout).toMatch(/^✓ redis version +[\d.]+ \(cluster\)$/m)
    expect(ok.stdout).toMatch(/^✓ deployment +Redis Cluster of 3 masters$/m)
    const dir = mkdtempSync(join(tmpdir(), 'raptor-sentinel-'))
    const conf = join(dir, 'sentinel.conf')
    writeFileSync(conf, 'sentinel monitor m 127.0.0.1 6399 1\n')
    const sentinel = await redisWith([conf, '--sentinel'])
    const s = await runCli(['doctor', '--redis-url', sentinel])
    expect(s.stdout).toMatch(/^✗ deployment +this is a Sentinel, not a data node\n/m)
  })
})
