import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {Redis} from 'ioredis'

import {RedisServer, freePort} from './redis-server.js'

/** Polls until the condition holds. */
async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await condition().catch(() => false)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** One command on a fresh connection to a local port. */
async function ask(port: number, ...args: (string | number)[]): Promise<unknown> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  client.on('error', () => {})
  try {
    await client.connect()
    return await client.call(String(args[0]), ...args.slice(1).map(String))
  } finally {
    client.disconnect()
  }
}

/**
 * A real Sentinel deployment on free local ports: one master, one replica and `count` Sentinels
 * (`redis-server sentinel.conf --sentinel`) watching it under `name`, with a quick failover
 * (down after 1 s).
 */
export class SentinelSetup {
  private readonly sentinels: ChildProcess[] = []

  private constructor(
    readonly name: string,
    readonly master: RedisServer,
    readonly replica: RedisServer,
    readonly sentinelPorts: number[],
    private readonly dir: string,
  ) {}

  static async start(name = 'raptormaster', count = 1): Promise<SentinelSetup> {
    // Replicas write the master's RDB to their directory: keep it out of the working tree.
    const dir = mkdtempSync(join(tmpdir(), 'raptor-sentinel-'))
    const master = await RedisServer.start(undefined, ['--dir', dir, '--dbfilename', 'master.rdb'])
    const replica = await RedisServer.start(undefined, [
      '--dir',
      dir,
      '--dbfilename',
      'replica.rdb',
      '--replicaof',
      '127.0.0.1',
      String(master.port),
    ])
    const ports: number[] = []
    for (let i = 0; i < count; i++) ports.push(await freePort())
    const setup = new SentinelSetup(name, master, replica, ports, dir)
    for (const port of ports) await setup.startSentinel(port, Math.floor(count / 2) + 1)
    await setup.ready()
    return setup
  }

  /** `redis-sentinel://` URL of every Sentinel. */
  url(query = ''): string {
    const hosts = this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')
    return `redis-sentinel://${hosts}/0?master=${this.name}${query}`
  }

  private async startSentinel(port: number, quorum: number): Promise<void> {
    const conf = join(this.dir, `sentinel-${port}.conf`)
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${this.dir}`,
        `sentinel monitor ${this.name} 127.0.0.1 ${this.master.port} ${quorum}`,
        `sentinel down-after-milliseconds ${this.name} 1000`,
        `sentinel failover-timeout ${this.name} 10000`,
        `sentinel parallel-syncs ${this.name} 1`,
        '',
      ].join('\n'),
    )
    const proc = spawn('redis-server', [conf, '--sentinel', '--loglevel', 'warning'], {stdio: 'ignore'})
    this.sentinels.push(proc)
    await until(`sentinel on ${port}`, async () =>
      Array.isArray(await ask(port, 'SENTINEL', 'get-master-addr-by-name', this.name)),
    )
  }

  /** Waits until the replica is in sync and every Sentinel knows it (a failover can then promote it). */
  async ready(): Promise<void> {
    await until('the replica in sync', async () =>
      /master_link_status:up/.test(String(await ask(this.replica.port, 'INFO', 'replication'))),
    )
    for (const port of this.sentinelPorts)
      await until(`sentinel ${port} to know the replica`, async () => {
        const replicas = (await ask(port, 'SENTINEL', 'replicas', this.name)) as string[][]
        return replicas.some(
          (r) => r.includes(String(this.replica.port)) && !String(r[r.indexOf('flags') + 1]).includes('down'),
        )
      })
  }

  /** The port the Sentinels give as the master now. */
  async masterPort(): Promise<number> {
    const addr = (await ask(
      this.sentinelPorts[0],
      'SENTINEL',
      'get-master-addr-by-name',
      this.name,
    )) as string[]
    return Number(addr[1])
  }

  /** Waits until the Sentinels name `port` as the master. */
  async waitForMaster(port: number, timeoutMs = 30_000): Promise<void> {
    await until(`the Sentinels to promote ${port}`, async () => (await this.masterPort()) === port, timeoutMs)
  }

  async stop(): Promise<void> {
    for (const proc of this.sentinels.splice(0))
      if (proc.exitCode === null)
        await new Promise<void>((resolve) => {
          proc.once('exit', () => resolve())
          proc.kill('SIGKILL')
        })
    await this.master.stop(true)
    await this.replica.stop(true)
    rmSync(this.dir, {recursive: true, force: true})
  }
}
