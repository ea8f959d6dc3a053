import {spawn, type ChildProcess} from 'node:child_process'
import {accessSync, constants, mkdtempSync, rmSync, symlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {createServer} from 'node:net'
import {delimiter, join} from 'node:path'

/** True when a directory of the PATH holds an executable of this name. */
export function onPath(name: string, path = process.env.PATH ?? ''): boolean {
  return path.split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/** @throws Error saying what to install when redis-server or redis-cli is not on the PATH. */
export function assertRedisInstalled(): void {
  const missing = ['redis-server', 'redis-cli'].filter((name) => !onPath(name))
  if (missing.length > 0)
    throw new Error(
      `${missing.join(' and ')} not found on the PATH: the tests start their own Redis servers. ` +
        'Install Redis (Debian/Ubuntu: apt-get install redis-server redis-tools; macOS: brew install redis) and run npm test again.',
    )
}

/** A PATH with node on it and nothing else (no redis-server), for tests of what happens without Redis. */
export function pathWithoutRedis(): string {
  const dir = mkdtempSync(join(tmpdir(), 'raptor-path-'))
  symlinkSync(process.execPath, join(dir, 'node'))
  return dir
}

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

/** Runs redis-cli with these arguments; resolves with its output, rejects when it fails. */
function redisCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn('redis-cli', args, {stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    proc.stdout.on('data', (d) => (out += d))
    proc.stderr.on('data', (d) => (out += d))
    proc.on('error', reject)
    proc.on('close', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`redis-cli ${args.join(' ')} exited with ${code}: ${out}`)),
    )
  })
}

/**
 * A real Redis Cluster of `masters` redis-server processes (no replicas, no persistence) on free
 * ports, made with `redis-cli --cluster create`; ready once every node says `cluster_state:ok`.
 */
export class RedisCluster {
  private constructor(
    readonly nodes: RedisServer[],
    private readonly dir: string,
  ) {}

  /** The URL of one node: raptor finds the others. */
  get url(): string {
    return `redis://127.0.0.1:${this.nodes[0].port}`
  }

  /** Every node as a comma-separated seed list (`redis://127.0.0.1:P1,127.0.0.1:P2,…`). */
  get seeds(): string {
    return `redis://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`
  }

  static async start(masters = 3): Promise<RedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'raptor-cluster-'))
    const ports: number[] = []
    while (ports.length < masters) {
      const port = await freePort()
      // Cluster nodes also listen on port + 10000 (the cluster bus).
      if (port + 10000 <= 65535 && !ports.includes(port)) ports.push(port)
    }
    const nodes = await Promise.all(
      ports.map((port) =>
        RedisServer.start(port, [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
        ]),
      ),
    )
    const cluster = new RedisCluster(nodes, dir)
    try {
      await redisCli([
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ])
      await cluster.waitUntilOk()
    } catch (error) {
      await cluster.stop()
      throw error
    }
    return cluster
  }

  /** Waits until every node sees every node and says `cluster_state:ok`. */
  private async waitUntilOk(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last = ''
    while (Date.now() < deadline) {
      const infos = await Promise.all(
        this.nodes.map((n) => redisCli(['-p', String(n.port), 'cluster', 'info']).catch((e) => String(e))),
      )
      const ok = infos.every(
        (info) =>
          info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${this.nodes.length}`),
      )
      if (ok) return
      last = infos.join('\n')
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`the Redis Cluster did not become ready within ${timeoutMs} ms:\n${last}`)
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()))
    rmSync(this.dir, {recursive: true, force: true})
  }
}
