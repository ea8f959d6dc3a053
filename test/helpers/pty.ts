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

/** A `raptor` running in a pseudo-terminal. */
export interface PtyCli {
  /** Everything the terminal received so far (stdout and stderr together, escape sequences kept). */
  readonly output: string
  /** Types into the terminal (`\x03` is Ctrl-C). */
  type(text: string): void
  exited: Promise<CliResult>
}

/**
 * Starts the built `raptor` in a pseudo-terminal (util-linux `script`) of the given width, as a
 * person at a terminal would: stdin, stdout and stderr are all the terminal.
 */
export function startInPty(args: string[], options: PtyOptions): PtyCli {
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
  const exited = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr})
    })
  })
  return {
    get output() {
      return stdout
    },
    type: (text) => child.stdin.write(text),
    exited,
  }
}

/** Runs the built `raptor` in a pseudo-terminal to its end; `stdout` is what the terminal received. */
export function runInPty(args: string[], options: PtyOptions): Promise<CliResult> {
  return startInPty(args, options).exited
}
