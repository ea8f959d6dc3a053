import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {fileURLToPath} from 'node:url'

import {inject} from 'vitest'

import {RaptorBus, type BusOptions} from '../../src/bus/index.js'

/** URL of the redis-server started by the global setup. */
export function redisUrl(): string {
  return inject('redisUrl')
}

/** A fresh random prefix, so that tests never see each other's keys. */
export function randomPrefix(): string {
  return `t${randomBytes(5).toString('hex')}`
}

/** A connected bus on the test Redis under a fresh prefix. */
export async function testBus(options: BusOptions = {}): Promise<RaptorBus> {
  return RaptorBus.connect({redisUrl: redisUrl(), prefix: randomPrefix(), ...options})
}

/** Path of the built CLI. */
export const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

export interface CliOptions {
  env?: Record<string, string | undefined>
  input?: string
  cwd?: string
  timeoutMs?: number
}

/** Runs the built `raptor` binary as a user would and collects its output and exit code. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd,
      env: {
        ...process.env,
        NO_COLOR: '1',
        REDIS_URL: undefined,
        RAPTOR_PREFIX: undefined,
        RAPTOR_CONFIG: undefined,
        ...options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr})
    })
    if (options.input !== undefined) child.stdin.end(options.input)
    else child.stdin.end()
  })
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
