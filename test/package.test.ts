import {execFile, spawn} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {randomPrefix, redisUrl, testBus, waitFor} from './helpers/index.js'
import {packRaptorbus} from './helpers/pack.js'

const run = promisify(execFile)
const IMPORT_LOG = fileURLToPath(new URL('./fixtures/import-log/register.mjs', import.meta.url))

/** A project outside the repository that installed the packed raptorbus from its tarball. */
let project: string

beforeAll(async () => {
  const tarball = await packRaptorbus()
  project = mkdtempSync(join(tmpdir(), 'raptor-consumer-'))
  writeFileSync(join(project, 'package.json'), '{"name":"consumer","private":true,"type":"module"}\n')
  await run('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: project,
    timeout: 240_000,
  })
}, 300_000)
afterAll(() => rmSync(project, {recursive: true, force: true}))

/** Runs an ES module snippet with node in the project. */
async function node(code: string, args: string[] = []) {
  return run(process.execPath, [...args, '--input-type=module', '-e', code], {cwd: project})
}

describe('the npm package, installed from its tarball in a project outside the repo', () => {
  it('exports a small public face, the rest under subpaths', async () => {
    const {stdout} = await node(`
      const face = Object.keys(await import('raptorbus')).sort()
      const prometheus = Object.keys(await import('raptorbus/prometheus')).sort()
      const envelope = await import('raptorbus/envelope')
      const handler = await import('raptorbus/handler')
      console.log(JSON.stringify({face, prometheus, envelope: typeof envelope.checkEnvelope, handler: typeof handler.invokeHandler}))
    `)
    const out = JSON.parse(stdout)
    expect(out.face).toEqual([
      'ClosedError',
      'ConfigError',
      'ConnectionError',
      'InvalidInputError',
      'MalformedEntryError',
      'NotFoundError',
      'PartialError',
      'PayloadTooLargeError',
      'PermissionError',
      'PluginError',
      'RaptorBus',
      'RaptorError',
      'RoutingError',
      'SchemaViolationError',
      'TimeoutError',
      'defineHandler',
      'envelopeJsonSchema',
      'formatDlqId',
      'getBus',
      'parseDlqId',
    ])
    expect(out.prometheus).toEqual(['COUNTERS', 'stateGauges', 'toPrometheus'])
    expect([out.envelope, out.handler]).toEqual(['function', 'function'])
  })

  it('loads without zod, prom-client or OpenTelemetry (they load when used)', async () => {
    const loaded = async (code: string) => {
      const {stderr} = await node(code, ['--import', IMPORT_LOG])
      return stderr.split('\n').filter((l) => l.startsWith('import ') && l.includes('/node_modules/'))
    }
    const heavy = (lines: string[]) =>
      [...new Set(lines.map((l) => /\/node_modules\/((@[^/]+\/)?[^/]+)\//.exec(l)?.[1]))].filter((p) =>
        ['zod', 'prom-client', '@opentelemetry/api'].includes(p ?? ''),
      )
    expect(heavy(await loaded(`await import('raptorbus')`))).toEqual([])
    // The import log sees them when they are used (so the check above can fail).
    expect(
      heavy(
        await loaded(
          `await import('raptorbus/prometheus'); await (await import('raptorbus')).envelopeJsonSchema()`,
        ),
      ).sort(),
    ).toEqual(['prom-client', 'zod'])
  })

  it('runs a library script and a handler plugin with `raptor agent` from that install', async () => {
    const prefix = randomPrefix()
    mkdirSync(join(project, 'handlers'), {recursive: true})
    writeFileSync(
      join(project, 'handlers', 'echo.mjs'),
      `import {defineHandler} from 'raptorbus'
export default defineHandler({
  name: 'echo',
  channels: ['sys.state.update'],
  async handle(event, ctx) {
    await ctx.publish({channel: 'sys.alert.warning', type: 'echoed', payload: {of: event.id}})
  },
})
`,
    )
    const agent = spawn(
      join(project, 'node_modules', '.bin', 'raptor'),
      ['agent', '--plugin', 'handlers/echo.mjs', '--redis-url', redisUrl(), '--prefix', prefix, '--json'],
      {cwd: project, stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, NO_COLOR: '1'}},
    )
    let stdout = ''
    let stderr = ''
    agent.stdout.on('data', (d) => (stdout += d))
    agent.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => agent.on('exit', resolve))
    const bus = await testBus({prefix})
    try {
      await waitFor(() => stdout.includes('started'), 20_000, `agent start (${stderr})`)
      const {stdout: id} = await node(`
        import {RaptorBus} from 'raptorbus'
        const bus = await RaptorBus.connect({redisUrl: ${JSON.stringify(redisUrl())}, prefix: ${JSON.stringify(prefix)}})
        const id = await bus.publish({channel: 'sys.state.update', type: 'ping', payload: {n: 1}})
        if ((await bus.getEvent(id)).data.n !== 1) throw new Error('not read back')
        await bus.close()
        console.log(id)
      `)
      await waitFor(
        async () => {
          for await (const e of bus.replay('sys.alert.warning')) if (e.data.of === id.trim()) return true
          return false
        },
        10_000,
        'the plugin handled the event',
      )
      agent.kill('SIGTERM')
      expect(await exited).toBe(0)
    } finally {
      agent.kill('SIGKILL')
      await bus.close()
    }
  })
})
