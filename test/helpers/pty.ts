import {spawn} from 'node:child_process'

import {BIN, isolatedEnv, type CliResult} from './index.js'

export interface PtyOptions {
  /** Terminal width. */
  cols: number
  rows?: number
  env?: Record<string, string | undefined>
  /** Typed into the terminal (e.g. an answer to a prompt). */
  input?: string
  cwd?: string
  timeoutMs?: number
}

const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`

/** Escape sequences (colour, cursor moves) removed, CRLF made LF: the text a person would read. */
export function screenText(raw: string): string {
  return (
    raw
      // eslint-disable-next-line no-control-regex
      .replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\x1b[=>78]/g, '')
      .replace(/\r\n/g, '\n')
  )
}

/**
 * Runs the built `raptor` in a pseudo-terminal (util-linux `script`) of the given width, as a person
 * at a terminal would: stdin, stdout and stderr are all the terminal. `stdout` holds everything the
 * terminal received (stdout and stderr together, escape sequences kept); `stderr` is script's own.
 */
export function runInPty(args: string[], options: PtyOptions): Promise<CliResult> {
  const command = [process.execPath, BIN, ...args].map(quote).join(' ')
  const child = spawn(
    'script',
    ['-qec', `stty cols ${options.cols} rows ${options.rows ?? 50}; exec ${command}`, '/dev/null'],
    {
      cwd: options.cwd,
      env: {...isolatedEnv(), TERM: 'xterm-256color', ...options.env},
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  if (options.input !== undefined) child.stdin.write(options.input)
  child.stdin.end()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr})
    })
  })
}
