import {execFile} from 'node:child_process'
import {cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {afterEach, describe, expect, it} from 'vitest'

import {RaptorBus} from '../../src/bus/index.js'
import {randomPrefix, redisUrl, runCli, startCli, waitFor, type RunningCli} from '../helpers/index.js'
import {packRaptorbus} from '../helpers/pack.js'

const running: RunningCli[] = []
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.child.kill('SIGKILL')
    await r.exited
  }
})

/** Starts `raptor agent` in `cwd` and sends it one greeting; resolves with its log once handled. */
async function greet(cwd: string, plugin: string, bin?: string): Promise<string> {
  const prefix = randomPrefix()
  const agent = startCli(['agent', '--plugin', plugin, '--redis-url', redisUrl(), '--prefix', prefix], {
    cwd,
    bin,
    timeoutMs: 180_000,
  })
  running.push(agent)
  // Started, or ended early: then fail at once with its log rather than wait out the timeout.
  const state = await waitFor(
    () =>
      / info {2}agent \S+ started /.test(agent.stderr)
        ? 'started'
        : agent.child.exitCode !== null || agent.child.signalCode !== null
          ? 'exited'
          : '',
    90_000,
    'the agent to start',
  )
  if (state === 'exited') throw new Error(`the agent exited before it started: ${agent.stderr}`)
  const bus = await RaptorBus.connect({redisUrl: redisUrl(), prefix, config: join(cwd, 'raptor.config.js')})
  try {
    await bus.publish({channel: 'app.greetings', type: 'greeting', payload: {name: 'Ada Lovelace'}})
  } finally {
    await bus.close()
  }
  await waitFor(() => agent.stderr.includes('hello, Ada Lovelace'), 60_000, 'the greeting to be handled')
  agent.child.kill('SIGTERM')
  const end = await agent.exited
  expect(end.code, end.stderr).toBe(0)
  return end.stderr
}

describe('raptor init', () => {
  it('scaffolds a project that raptor agent runs at once, before any npm install', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'raptor-init-')), 'my agents')
    const r = await runCli(['init', dir])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(
      /^created package\.json, raptor\.config\.js, handlers\/greeter\.js, \.gitignore in /,
    )
    expect(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))).toMatchObject({
      name: 'my-agents',
      type: 'module',
      dependencies: {raptorbus: expect.stringMatching(/^\^\d+\.\d+\.\d+$/), zod: expect.any(String)},
    })
    expect(existsSync(join(dir, 'node_modules'))).toBe(false)
    // Logs are logfmt: a value with a space is quoted.
    expect(await greet(dir, 'handlers/greeter.js')).toMatch(
      / info {2}hello, Ada Lovelace handler=greeter event=evt-/,
    )
    const again = await runCli(['init', dir])
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(
      /^Error: package\.json, raptor\.config\.js, handlers\/greeter\.js, \.gitignore exist in .*: pass --force/,
    )
    expect((await runCli(['init', dir, '--force'])).code).toBe(0)
  }, 180_000)

  it('end to end: init, npm install of the packed raptorbus, raptor agent handles an event', async () => {
    const tarball = await packRaptorbus()
    const dir = mkdtempSync(join(tmpdir(), 'raptor-init-'))
    expect((await runCli(['init', dir])).code).toBe(0)
    await promisify(execFile)('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], {
      cwd: dir,
    })
    expect(existsSync(join(dir, 'node_modules/raptorbus/package.json'))).toBe(true)
    // The project's own raptor, from the installed package, with its own raptorbus and zod.
    const bin = join(dir, 'node_modules/raptorbus/bin/run.js')
    const {stdout} = await promisify(execFile)(process.execPath, [bin, 'version'], {cwd: dir})
    expect(stdout).toMatch(/^raptorbus\/\d+\.\d+\.\d+/)
    expect(await greet(dir, 'handlers/greeter.js', bin)).toContain('hello, Ada Lovelace')
  }, 420_000)
})

describe('plugins and config files anywhere on disk', () => {
  it('a copy of the example plugin elsewhere imports raptorbus and zod through the CLI', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raptor-anywhere-'))
    const example = fileURLToPath(new URL('../../examples/plugins/research-monitor.js', import.meta.url))
    cpSync(example, join(dir, 'monitor.js'))
    writeFileSync(
      join(dir, 'zod-plugin.mjs'),
      "import {z} from 'zod'\nimport {defineHandler} from 'raptorbus'\nconst S = z.object({n: z.number()})\n" +
        "export default defineHandler({name: 'z', channels: ['sys.state.update'], handle(e) { S.parse(e.data) }})\n",
    )
    writeFileSync(
      join(dir, 'raptor.config.js'),
      "import {z} from 'zod'\nexport default {schemas: {t: z.object({n: z.number()})}}\n",
    )
    const r = await runCli(['agent', 'test', '--plugin', 'monitor.js', '--event', '-'], {
      cwd: dir,
      input: JSON.stringify({
        channel: 'sys.guild.research.broadcast',
        type: 'research_complete',
        payload: {findings: 'x'},
      }),
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr + r.stdout).not.toContain('Cannot find package')
    const z = await runCli(['agent', 'test', '--plugin', 'zod-plugin.mjs', '--event', '-'], {
      cwd: dir,
      input: JSON.stringify({channel: 'sys.state.update', type: 't', payload: {n: 1}}),
    })
    expect(z.code, z.stderr).toBe(0)
    const schema = await runCli(['schema', '--type', 't'], {cwd: dir})
    expect(schema.code, schema.stderr).toBe(0)
    expect(JSON.parse(schema.stdout)).toMatchObject({type: 'object', required: ['n']})
  })
})
