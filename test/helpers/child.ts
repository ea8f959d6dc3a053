import {spawn, type ChildProcess} from 'node:child_process'
import {fileURLToPath} from 'node:url'

import {afterEach} from 'vitest'

/** A child process that prints NDJSON lines on stdout (a consumer fixture, an agent with --json). */
export interface NdjsonChild {
  child: ChildProcess
  /** Every stdout line so far, parsed (`{unparsed}` for a line that is not JSON). */
  lines: Record<string, unknown>[]
  stderr: string
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exit: Promise<number | string | null>
  /** True once the process has exited. */
  readonly exited: boolean
}

/** Spawns `node args…`, collecting its NDJSON output. */
export function spawnNdjson(
  args: string[],
  env: Record<string, string | undefined> = {},
  cwd?: string,
): NdjsonChild {
  const child = spawn(process.execPath, args, {
    cwd,
    env: {...process.env, NO_COLOR: '1', REDIS_URL: undefined, RAPTOR_PREFIX: undefined, ...env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let exited = false
  const out: NdjsonChild = {
    child,
    lines: [],
    stderr: '',
    exit: new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        exited = true
        resolve(code ?? signal)
      }),
    ),
    get exited() {
      return exited
    },
  }
  let buffer = ''
  child.stdout!.on('data', (d) => {
    buffer += d
    const parts = buffer.split('\n')
    buffer = parts.pop() ?? ''
    for (const line of parts) {
      if (!line.trim()) continue
      try {
        out.lines.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        out.lines.push({unparsed: line})
      }
    }
  })
  child.stderr!.on('data', (d) => (out.stderr += d))
  return out
}

/** Tracks children and kills (SIGKILL) those still running after each test. */
export function childProcesses(): (
  args: string[],
  env?: Record<string, string | undefined>,
  cwd?: string,
) => NdjsonChild {
  const running: NdjsonChild[] = []
  afterEach(async () => {
    const all = running.splice(0)
    for (const c of all) if (!c.exited) c.child.kill('SIGKILL')
    await Promise.all(all.map((c) => c.exit))
  })
  return (args, env, cwd) => {
    const c = spawnNdjson(args, env, cwd)
    running.push(c)
    return c
  }
}

/** Path of a file under test/fixtures. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
}
