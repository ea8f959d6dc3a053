import {spawn, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {Cluster, Redis} from 'ioredis'
import {afterAll, afterEach, beforeAll, describe, inject} from 'vitest'

import {RaptorBus, type BusOptions} from '../../src/bus/index.js'

/** A Redis deployment the parameterised suites run against. */
export interface Target {
  /** `server` (one redis-server) or `cluster` (a 3-master Redis Cluster). */
  name: 'server' | 'cluster'
  /** Its URL: the server's, or one node of the cluster (raptor detects the cluster). */
  url: string
}

/** The target of the suite running now (set by {@link describeTargets}); the server otherwise. */
let current: Target | undefined

/** The deployments every parameterised suite runs on: one server and a 3-master cluster. */
export function targets(): Target[] {
  return [
    {name: 'server', url: inject('redisUrl')},
    {name: 'cluster', url: inject('clusterUrl')},
  ]
}

/**
 * Runs a suite once per target (`describe.each`): inside it, {@link redisUrl}, {@link target},
 * {@link testBus}, {@link keysUnder} and {@link rawClient} point at that target.
 */
export function describeTargets(name: string, body: (t: Target) => void): void {
  describe.each(targets())(`${name} (on $name)`, (t) => {
    beforeAll(() => {
      current = t
    })
    afterAll(() => {
      current = undefined
    })
    body(t)
  })
}

/** True while a suite runs on the cluster target. */
export function onCluster(): boolean {
  return current?.name === 'cluster'
}

/** URL of the Redis the test runs on: the server started by the global setup, or the current target. */
export function redisUrl(): string {
  return current?.url ?? inject('redisUrl')
}

/** One node of the 3-master Redis Cluster started by the global setup. */
export function clusterUrl(): string {
  return inject('clusterUrl')
}

/** Every node of the test Redis Cluster as a seed list (`redis://h:p1,h:p2,h:p3`). */
export function clusterSeeds(): string {
  return inject('clusterSeeds')
}

/** A plain ioredis client on the current target (a `Cluster` on the cluster), for a test's own reads. */
export function rawClient(): Redis | Cluster {
  if (!onCluster()) return new Redis(redisUrl())
  const {hostname, port} = new URL(clusterUrl())
  return new Cluster([{host: hostname, port: Number(port)}])
}

/** A fresh random prefix, so that tests never see each other's keys. */
export function randomPrefix(): string {
  return `t${randomBytes(5).toString('hex')}`
}

/** A connected bus on the test Redis under a fresh prefix. */
export async function testBus(options: BusOptions = {}): Promise<RaptorBus> {
  return RaptorBus.connect({redisUrl: redisUrl(), prefix: randomPrefix(), ...options})
}

/** A factory of test buses (each on a fresh prefix), all closed after each test. */
export function testBuses(): (options?: BusOptions) => Promise<RaptorBus> {
  const open: RaptorBus[] = []
  afterEach(async () => {
    while (open.length > 0) await open.pop()!.close()
  })
  return async (options = {}) => {
    const b = await testBus(options)
    open.push(b)
    return b
  }
}

/** Path of the built CLI. */
export const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

export interface CliOptions {
  /** Another `raptor` entry point than this tree's bin/run.js (an installed copy, say). */
  bin?: string
  env?: Record<string, string | undefined>
  input?: string
  cwd?: string
  timeoutMs?: number
}

/** A running `raptor` process: its output so far, and its end. */
export interface RunningCli {
  child: ChildProcess
  readonly stdout: string
  readonly stderr: string
  /** Resolves when the process has exited (killed with SIGKILL after `timeoutMs`). */
  exited: Promise<CliResult>
}

/** An empty config directory per test process: a developer's own contexts never leak into tests. */
let configHome: string | undefined

/** The environment a CLI test runs in: none of the raptor variables, and an empty config directory. */
export function isolatedEnv(): Record<string, string | undefined> {
  configHome ??= mkdtempSync(join(tmpdir(), 'raptor-config-'))
  return {
    ...process.env,
    REDIS_URL: undefined,
    RAPTOR_PREFIX: undefined,
    RAPTOR_CONFIG: undefined,
    RAPTOR_CONTEXT: undefined,
    RAPTOR_TLS_CA: undefined,
    RAPTOR_TLS_CERT: undefined,
    RAPTOR_TLS_KEY: undefined,
    RAPTOR_TLS_SERVERNAME: undefined,
    XDG_CONFIG_HOME: configHome,
    XDG_CACHE_HOME: configHome,
    XDG_DATA_HOME: configHome,
  }
}

/** Starts the built `raptor` binary as a user would, without waiting for it. */
export function startCli(args: string[], options: CliOptions = {}): RunningCli {
  const child = spawn(process.execPath, [options.bin ?? BIN, ...args], {
    cwd: options.cwd,
    env: {...isolatedEnv(), NO_COLOR: '1', ...options.env},
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => (stdout += d))
  child.stderr!.on('data', (d) => (stderr += d))
  const exited = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr})
    })
  })
  if (options.input !== undefined) child.stdin!.end(options.input)
  else child.stdin!.end()
  return {
    child,
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
    exited,
  }
}

/**
 * A starter of `raptor` processes for a test file: every process it started and that still runs is
 * killed after each test (thawed first, in case a test froze it with SIGSTOP).
 */
export function cliProcesses(
  defaults: CliOptions = {},
): (args: string[], options?: CliOptions) => RunningCli {
  const running: RunningCli[] = []
  afterEach(() => {
    for (const c of running.splice(0)) {
      if (c.child.exitCode !== null) continue
      c.child.kill('SIGCONT')
      c.child.kill('SIGKILL')
    }
  })
  return (args, options = {}) => {
    const child = startCli(args, {...defaults, ...options, env: {...defaults.env, ...options.env}})
    running.push(child)
    return child
  }
}

/** Runs the built `raptor` binary as a user would and collects its output and exit code. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).exited
}

/** The global flags that point a CLI run at the test Redis under a prefix. */
export function target(prefix: string): string[] {
  return ['--redis-url', redisUrl(), '--prefix', prefix]
}

/** Every key under a prefix (to check that nothing was written), on every master of a cluster. */
export async function keysUnder(prefix: string): Promise<string[]> {
  const redis = rawClient()
  try {
    if (redis instanceof Cluster) {
      await new Promise<void>((resolve, reject) => {
        redis.once('ready', resolve)
        redis.once('error', reject)
      })
      const perNode = await Promise.all(redis.nodes('master').map((n) => n.keys(`${prefix}:*`)))
      return perNode.flat().sort()
    }
    return (await redis.keys(`${prefix}:*`)).sort()
  } finally {
    redis.disconnect()
  }
}

/** A fresh temporary directory (a working directory for config-file tests). */
export function tempDir(files: Record<string, string | object> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'raptor-test-'))
  for (const [name, content] of Object.entries(files))
    writeFileSync(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content))
  return dir
}

/** NDJSON text as parsed objects. */
export function ndjson(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

/** Polls until the condition holds (no fixed sleeps in tests). */
export async function waitFor<T>(
  condition: () => T,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<Exclude<Awaited<T>, false | null | undefined | 0 | ''>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const value = await condition()
      if (value) return value as Exclude<Awaited<T>, false | null | undefined | 0 | ''>
    } catch (error) {
      last = error
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
}
