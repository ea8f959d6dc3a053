import {randomBytes} from 'node:crypto'

import {Queue, Worker} from 'bullmq'
import {Redis} from 'ioredis'

import {RaptorBus} from '../src/bus/index.js'
import {nowMicros} from '../src/cli/histogram.js'
import {
  flush,
  interleave,
  over,
  profiled,
  ratioOver,
  target,
  type BenchRow,
  type Case,
  type Profile,
} from './harness.js'
import {
  fmt,
  fmtRatio,
  fmtStat,
  markdownTable,
  payloadMaker,
  progress,
  rawEnvelope,
  sleep,
  stat,
  tag,
  type Settings,
} from './lib.js'
import {busClass, natsConnect} from './publishers.js'

/**
 * A channel already holding `events` events, published with raptor (not timed): raptor's consumers
 * and the raw loop read the very same stream.
 */
export async function filledChannel(
  url: string,
  events: number,
  payloadBytes: number,
): Promise<{bus: RaptorBus; channel: string; stream: string}> {
  const channel = `bench.dc${tag()}`
  const bus = await RaptorBus.connect({
    redisUrl: url,
    prefix: `bench-dc-${tag()}`,
    channels: [{name: channel, retention: '1h'}],
  })
  const payload = payloadMaker(payloadBytes, nowMicros)
  for (let n = 0; n < events; n += 1000)
    await bus.publishMany(
      Array.from({length: Math.min(1000, events - n)}, () => ({channel, type: 'bench', payload: payload()})),
    )
  await sleep(50)
  return {bus, channel, stream: bus.keys.stream(channel)}
}

/**
 * raptor `bus.consume` with `groups` handlers (each its own consumer group) on one channel, each a
 * no-op handler with concurrency 100 (the window of the raw loop's COUNT 100), acknowledging through
 * the fenced ack script; resolves once every group has handled every event.
 */
export async function raptorConsumeAll(
  bus: RaptorBus,
  channel: string,
  events: number,
  groups = 1,
): Promise<void> {
  let done = 0
  const total = events * groups
  let resolveAll!: () => void
  const all = new Promise<void>((r) => (resolveAll = r))
  const consumers = await Promise.all(
    Array.from({length: groups}, (_, g) =>
      bus.consume({
        name: `bench${g}`,
        channels: [channel],
        concurrency: 100,
        startFrom: 'history',
        handle: () => {
          if (++done === total) resolveAll()
        },
      }),
    ),
  )
  await all
  await Promise.all(consumers.map((c) => c.stop(5000)))
}

/** raptor of another build (`--vs DIR`) consuming a channel filled by this one. */
async function consumeWith(
  vs: string,
  url: string,
  ch: {bus: RaptorBus; channel: string},
  events: number,
): Promise<void> {
  const Bus = await busClass(vs)
  const bus = await Bus.connect({
    redisUrl: url,
    prefix: ch.bus.keys.prefix,
    channels: [{name: ch.channel, retention: '1h'}],
  })
  try {
    await raptorConsumeAll(bus, ch.channel, events)
  } finally {
    await bus.close()
  }
}

/**
 * The raw baseline: per group, one connection looping XREADGROUP COUNT 100, JSON.parse of every
 * entry, XACK of the batch; `groups` loops run side by side.
 */
export async function rawConsumeAll(url: string, stream: string, events: number, groups = 1): Promise<void> {
  const clients = Array.from({length: groups}, () => new Redis(url))
  try {
    for (let g = 0; g < groups; g++) await clients[g].xgroup('CREATE', stream, `raw${g}`, '0')
    await Promise.all(
      clients.map(async (redis, g) => {
        let done = 0
        while (done < events) {
          const reply = (await redis.xreadgroup(
            'GROUP',
            `raw${g}`,
            'c1',
            'COUNT',
            100,
            'BLOCK',
            1000,
            'STREAMS',
            stream,
            '>',
          )) as [string, [string, string[]][]][] | null
          const entries = reply?.[0]?.[1] ?? []
          if (entries.length === 0) continue
          for (const [, fields] of entries) JSON.parse(fields[1])
          await redis.xack(stream, `raw${g}`, ...entries.map(([id]) => id))
          done += entries.length
        }
      }),
    )
  } finally {
    await Promise.all(clients.map((c) => c.quit()))
  }
}

/**
 * BullMQ: the same number of jobs (attempts 3, exponential backoff) added beforehand with addBulk
 * (not timed), then one Worker with concurrency 100 and a handler that only counts.
 */
async function bullConsume(
  url: string,
  admin: Redis,
  events: number,
  payloadBytes: number,
): Promise<Profile> {
  const connection = new Redis(url, {maxRetriesPerRequest: null})
  const name = `dc${randomBytes(4).toString('hex')}`
  const queue = new Queue(name, {connection, prefix: 'bench-bull'})
  const payload = payloadMaker(payloadBytes, nowMicros)
  for (let i = 0; i < events; i += 1000)
    await queue.addBulk(
      Array.from({length: Math.min(1000, events - i)}, () => ({
        name: 'bench',
        data: payload(),
        opts: {attempts: 3, backoff: {type: 'exponential', delay: 200}},
      })),
    )
  const workerConnection = new Redis(url, {maxRetriesPerRequest: null})
  let worker: Worker | undefined
  try {
    return await profiled(admin, events, async () => {
      let done = 0
      let resolveAll!: () => void
      const all = new Promise<void>((r) => (resolveAll = r))
      worker = new Worker(
        name,
        async () => {
          if (++done === events) resolveAll()
        },
        {connection: workerConnection, prefix: 'bench-bull', concurrency: 100},
      )
      await all
    })
  } finally {
    await worker?.close()
    await workerConnection.quit()
    await queue.close()
    await connection.quit()
  }
}

/**
 * NATS JetStream: a memory stream filled beforehand (not timed), then one durable pull consumer with
 * explicit acks: `consumer.consume({max_messages: 100})`, JSON.parse of each message, `m.ack()`.
 */
async function natsConsume(events: number, payloadBytes: number): Promise<Profile> {
  const {nats, nc} = await natsConnect()
  const jsm = await nc.jetstreamManager()
  const name = `BENCHC_${tag()}`
  const subject = `benchc.${name.toLowerCase()}`
  try {
    await jsm.streams.add({name, subjects: [subject], storage: nats.StorageType.Memory})
    const js = nc.jetstream()
    const encoder = new TextEncoder()
    const payload = payloadMaker(payloadBytes, nowMicros)
    for (let i = 0; i < events; i += 1000)
      await Promise.all(
        Array.from({length: Math.min(1000, events - i)}, () =>
          js.publish(subject, encoder.encode(rawEnvelope(subject, 'bench', payload()))),
        ),
      )
    await jsm.consumers.add(name, {durable_name: 'bench', ack_policy: nats.AckPolicy.Explicit})
    const consumer = await js.consumers.get(name, 'bench')
    const cpu = process.cpuUsage()
    const started = performance.now()
    const messages = await consumer.consume({max_messages: 100})
    let done = 0
    for await (const m of messages) {
      JSON.parse(m.string())
      m.ack()
      if (++done === events) break
    }
    const ms = performance.now() - started
    const used = process.cpuUsage(cpu)
    return {
      rate: events / (ms / 1000),
      ms,
      clientUs: (used.user + used.system) / events,
      redisUs: NaN,
      memBytes: NaN,
    }
  } finally {
    await jsm.streams.delete(name).catch(() => {})
    await nc.close()
  }
}

export const consumeRow: BenchRow = {
  name: 'consume',
  title: 'Durable consume',
  async run({url, admin, s}) {
    const n = s.events
    const onChannel = (
      key: string,
      label: string,
      consume: (ch: {bus: RaptorBus; channel: string; stream: string}) => Promise<unknown>,
    ): Case<Profile> => ({
      key,
      label,
      run: async () => {
        const ch = await filledChannel(url, n, s.payloadBytes)
        try {
          return await profiled(admin, n, () => consume(ch))
        } finally {
          await ch.bus.close()
        }
      },
    })
    const cases: Case<Profile>[] = [
      onChannel('raw', 'raw XREADGROUP COUNT 100 + JSON.parse + XACK', (ch) =>
        rawConsumeAll(url, ch.stream, n),
      ),
      onChannel('raptor', 'raptor bus.consume (no-op handler, concurrency 100, fenced acks)', (ch) =>
        raptorConsumeAll(ch.bus, ch.channel, n),
      ),
      ...(s.vs
        ? [onChannel('raptorVs', `raptor bus.consume of ${s.vs}`, (ch) => consumeWith(s.vs!, url, ch, n))]
        : []),
      {
        key: 'bull',
        label: 'BullMQ Worker (concurrency 100, attempts 3, backoff)',
        run: () => bullConsume(url, admin, n, s.payloadBytes),
      },
      {
        key: 'nats',
        label: 'NATS JetStream pull consumer (consume, max_messages 100, m.ack())',
        run: () => natsConsume(n, s.payloadBytes),
      },
    ]
    const res = await interleave(cases, s.runs, {
      between: () => flush(admin),
      describe: (p) =>
        `${fmt(p.rate)} events/s, client ${fmt(p.clientUs, 1)} µs, redis ${fmt(p.redisUs, 1)} µs per event`,
    })
    const rate = (p: Profile) => p.rate
    const rows = [...res.values()].map((r) =>
      r.skipped
        ? [r.label, `skipped: ${r.skipped}`, '', '', '', '', '']
        : [
            r.label,
            fmtStat(over(r, rate)),
            fmtRatio(ratioOver(r, res.get('raw'), rate)),
            fmtRatio(ratioOver(r, res.get('bull'), rate)),
            fmtRatio(ratioOver(r, res.get('nats'), rate)),
            fmtStat(
              over(r, (p) => p.clientUs),
              1,
            ),
            r.key === 'nats'
              ? '–'
              : fmtStat(
                  over(r, (p) => p.redisUs),
                  1,
                ),
          ],
    )
    return {
      markdown: [
        `${fmt(n)} events already in the stream / queue (filled before the clock starts); one consumer process.`,
        '',
        markdownTable(
          ['case', 'events/s', '× raw', '× BullMQ', '× NATS', 'client µs/event', 'Redis µs/event'],
          rows,
        ),
      ].join('\n'),
      targets: [
        target(
          'durable consume vs raw XREADGROUP+XACK+parse',
          ratioOver(res.get('raptor'), res.get('raw'), rate).median,
          0.8,
          true,
        ),
      ],
    }
  },
}

export const agentRow: BenchRow = {
  name: 'agent',
  title: 'Durable end-to-end latency and agent memory',
  async run({url, s}) {
    const latency = await runDurableLatency(url, s)
    const memory = await runAgentMemory(url, s.quick ? 20_000 : 100_000)
    const runs = latency.runs
    const lost = runs.reduce((k, x) => k + x.sent - x.received, 0)
    const st = (pick: (x: (typeof runs)[number]) => number) => fmtStat(stat(runs.map(pick)), 3)
    return {
      markdown: [
        `Publish → handler start at ${fmt(latency.rate)}/s for ${s.liveMs / 1000} s, one durable consumer (\`raptor bench\`'s engine), ${s.runs} rounds:`,
        '',
        markdownTable(
          ['case', 'p50 ms', 'p99 ms', 'max ms', 'lost (all rounds)'],
          [
            [
              'raptor publish → bus.consume handler',
              st((x) => x.p50),
              st((x) => x.p99),
              st((x) => x.max),
              `${lost} of ${fmt(runs.reduce((k, x) => k + x.sent, 0))}`,
            ],
          ],
        ),
        '',
        `A real \`raptor agent\` process (no-op plugin, concurrency 100) started on a backlog of ${s.quick ? '20k' : '100k'} events (one run):`,
        '',
        markdownTable(
          ['case', 'peak RSS MB', 'events/s'],
          [['raptor agent', fmt(memory.peakMb, 1), fmt(memory.eventsPerSec)]],
        ),
      ].join('\n'),
      targets: [
        {
          what: 'agent peak RSS with the backlog',
          limit: '< 150 MB',
          measured: `${memory.peakMb.toFixed(1)} MB`,
          met: memory.peakMb < 150,
        },
      ],
    }
  },
}

/** Durable end-to-end latency: publish → handler start, at a fixed rate, one consumer. */
export interface DurableLatency {
  rate: number
  runs: {p50: number; p99: number; max: number; sent: number; received: number}[]
}

/**
 * Publishes at `rate` events/s for `s.liveMs` with `raptor bench`'s engine (one publisher, one durable
 * consumer in the same process) and reads the latency from the send timestamp in each payload to the
 * moment the handler starts.
 */
export async function runDurableLatency(url: string, s: Settings, rate = 1000): Promise<DurableLatency> {
  const {runBench} = await import('../src/cli/bench.js')
  const result: DurableLatency = {rate, runs: []}
  for (let run = 0; run < s.runs; run++) {
    const r = await runBench({
      bus: {redisUrl: url, prefix: 'bench-dl'},
      publishers: 1,
      subscribers: 0,
      consumers: 1,
      size: s.payloadBytes,
      durationMs: s.liveMs,
      rate,
      window: 100,
    })
    const c = r.consumers!
    result.runs.push({
      p50: c.latencyMs.p50,
      p99: c.latencyMs.p99,
      max: c.latencyMs.max,
      sent: r.publishers.events,
      received: c.events,
    })
    progress(
      `run ${run + 1}/${s.runs} durable latency at ${rate}/s: p50 ${c.latencyMs.p50.toFixed(3)} ms, p99 ${c.latencyMs.p99.toFixed(3)} ms`,
    )
  }
  return result
}

/**
 * Peak RSS of a real `raptor agent` process (no-op handler, concurrency 100) working through a
 * backlog of `events` queued events, sampled from /proc every 50 ms. Returns MB and events/s.
 */
export async function runAgentMemory(
  url: string,
  events: number,
): Promise<{peakMb: number; eventsPerSec: number}> {
  const {spawn} = await import('node:child_process')
  const {readFileSync, writeFileSync, mkdtempSync} = await import('node:fs')
  const {tmpdir} = await import('node:os')
  const {join} = await import('node:path')
  const tag = randomBytes(4).toString('hex')
  const prefix = `bench-mem-${tag}`
  const channel = 'sys.state.update'
  const dir = mkdtempSync(join(tmpdir(), 'raptor-bench-'))
  const plugin = join(dir, 'noop.mjs')
  writeFileSync(
    plugin,
    `export default {name: 'noop', channels: ['${channel}'], startFrom: 'history', concurrency: 100, handle() {}}\n`,
  )
  const bus = await RaptorBus.connect({redisUrl: url, prefix})
  try {
    const payload = payloadMaker(500, nowMicros)
    for (let n = 0; n < events; n += 1000)
      await bus.publishMany(
        Array.from({length: Math.min(1000, events - n)}, () => ({
          channel,
          type: 'bench',
          payload: payload(),
        })),
      )
    const bin = new URL('../../bin/run.js', import.meta.url).pathname
    // The same flags the `raptor` shebang gives node.
    const agent = spawn(
      process.execPath,
      ['--max-semi-space-size=4', bin, 'agent', '--plugin', plugin, '--redis-url', url, '--prefix', prefix],
      {
        stdio: 'ignore',
      },
    )
    const started = performance.now()
    let peak = 0
    const stream = bus.keys.stream(channel)
    for (;;) {
      try {
        const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))
        if (rss) peak = Math.max(peak, Number(rss[1]) / 1024)
      } catch {
        // not started yet, or gone
      }
      const groups = (await bus.redis.xinfo('GROUPS', stream).catch(() => [])) as unknown[][]
      const g = groups[0]
      const read = g ? Number(g[g.indexOf('entries-read') + 1]) : 0
      const pending = g ? Number(g[g.indexOf('pending') + 1]) : 1
      if (read >= events && pending === 0) break
      await sleep(50)
    }
    const seconds = (performance.now() - started) / 1000
    agent.kill('SIGTERM')
    await new Promise((r) => agent.once('exit', r))
    return {peakMb: peak, eventsPerSec: events / seconds}
  } finally {
    const keys = await bus.redis.keys(`${prefix}:*`)
    for (let i = 0; i < keys.length; i += 1000) await bus.redis.unlink(...keys.slice(i, i + 1000))
    await bus.close()
  }
}
