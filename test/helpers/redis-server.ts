import {spawn, type ChildProcess} from 'node:child_process'
import {createServer} from 'node:net'

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

/** A real redis-server process on a free port, with no persistence. */
export class RedisServer {
  private proc?: ChildProcess

  private constructor(
    readonly port: number,
    private readonly extraArgs: string[] = [],
    private readonly probeArgs: string[] = [],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`
  }

  /**
   * Starts a redis-server and waits until it accepts connections.
   * @param extraArgs more redis-server arguments (e.g. `--requirepass`, TLS settings)
   * @param probeArgs redis-cli arguments needed to PING it (e.g. `-a PASSWORD`, `--tls …`)
   */
  static async start(
    port?: number,
    extraArgs: string[] = [],
    probeArgs: string[] = [],
  ): Promise<RedisServer> {
    const server = new RedisServer(port ?? (await freePort()), extraArgs, probeArgs)
    await server.start()
    return server
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void {
    this.proc?.kill('SIGSTOP')
  }

  /** Thaws a paused server (SIGCONT). */
  resume(): void {
    this.proc?.kill('SIGCONT')
  }

  async start(): Promise<void> {
    const proc = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--loglevel',
        'warning',
        ...this.extraArgs,
      ],
      {stdio: ['ignore', 'pipe', 'pipe']},
    )
    this.proc = proc
    await new Promise<void>((resolve, reject) => {
      let output = ''
      const timer = setTimeout(
        () => reject(new Error(`redis-server on ${this.port} did not start: ${output}`)),
        10_000,
      )
      const check = () => {
        const probe = spawn('redis-cli', ['-p', String(this.port), ...this.probeArgs, 'ping'])
        let out = ''
        probe.stdout.on('data', (d) => (out += d))
        probe.on('close', () => {
          if (out.trim() === 'PONG') {
            clearTimeout(timer)
            resolve()
          } else if (proc.exitCode === null) setTimeout(check, 50)
        })
      }
      proc.stdout?.on('data', (d) => (output += d))
      proc.stderr?.on('data', (d) => (output += d))
      proc.on('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`redis-server on ${this.port} exited with ${code}: ${output}`))
      })
      check()
    })
    proc.removeAllListeners('exit')
  }

  /** Stops the server (SIGKILL when `hard`) and waits for it to exit. */
  async stop(hard = false): Promise<void> {
    const proc = this.proc
    if (!proc || proc.exitCode !== null) return
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve())
      proc.kill(hard ? 'SIGKILL' : 'SIGTERM')
      // A paused server handles SIGTERM only once it runs again.
      proc.kill('SIGCONT')
    })
    this.proc = undefined
  }

  /** Kills and starts the server again on the same port (all data is lost: no persistence). */
  async restart(): Promise<void> {
    await this.stop(true)
    await this.start()
  }
}
