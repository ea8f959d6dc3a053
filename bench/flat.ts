/**
 * "Flat as work grows" rows: each a small table of raptor against the raw baseline as one dimension
 * grows — payload size, channels, events held in the stream, handler groups on one channel. (The
 * live-subscriber dimension is the `fanout` row in bench/live.ts.)
 */
import {Redis} from 'ioredis'

import {RaptorBus} from '../src/bus/index.js'
import {filledChannel, raptorConsumeAll, rawConsumeAll} from './durable.js'
import {
  flush,
  interleave,
  over,
  profiled,
  ratioOver,
  target,
  type BenchRow,
  type Case,
  type CaseResult,
  type Profile,
} from './harness.js'
import {fmt, fmtRatio, fmtStat, markdownTable, progress, tag, windowed} from './lib.js'
import {BATCH, describeProfile, publishCase} from './publish.js'
import {rawKeys, rawPublisher, raptorPublisher} from './publishers.js'

const rate = (p: Profile) => p.rate

/** One line of a raw-vs-raptor table at one step of the dimension. */
function pairCells(
  raw: CaseResult<Profile> | undefined,
  raptor: CaseResult<Profile> | undefined,
  memory = true,
): string[] {
  return [
    fmtStat(over(raw, rate)),
    fmtStat(over(raptor, rate)),
    fmtRatio(ratioOver(raptor, raw, rate)),
    `${fmt(over(raw, (p) => p.clientUs).median, 1)} / ${fmt(over(raptor, (p) => p.clientUs).median, 1)}`,
    `${fmt(over(raw, (p) => p.redisUs).median, 1)} / ${fmt(over(raptor, (p) => p.redisUs).median, 1)}`,
    ...(memory
      ? [`${fmt(over(raw, (p) => p.memBytes).median)} / ${fmt(over(raptor, (p) => p.memBytes).median)}`]
      : []),
  ]
}

const PAIR_HEAD = [
  'raw events/s',
  'raptor events/s',
  'raptor × raw',
  'client µs/event raw / raptor',
  'Redis µs/event raw / raptor',
]

export const payloadRow: BenchRow = {
  name: 'payload',
  title: 'Flat as work grows: payload size',
  async run({url, admin, s}) {
    const sizes = [100, 1000, 10_000, 100_000]
    // Fewer events for large payloads, so that each step moves about the same bytes at most.
    const eventsOf = (bytes: number) =>
      Math.min(s.events, Math.max(s.quick ? 250 : 1000, Math.floor((s.quick ? 25e6 : 100e6) / bytes)))
    const cases = sizes.flatMap((bytes) => [
      publishCase(
        admin,
        s,
        `raw${bytes}`,
        `raw one-script, ${fmt(bytes)} B`,
        () => rawPublisher(url, {payloadBytes: bytes}),
        'one',
        eventsOf(bytes),
      ),
      publishCase(
        admin,
        s,
        `raptor${bytes}`,
        `raptor bus.publish, ${fmt(bytes)} B`,
        () => raptorPublisher(url, {payloadBytes: bytes}),
        'one',
        eventsOf(bytes),
      ),
    ])
    const res = await interleave(cases, s.runs, {between: () => flush(admin), describe: describeProfile})
    const rows = sizes.map((bytes) => [
      `${fmt(bytes)} B`,
      fmt(eventsOf(bytes)),
      ...pairCells(res.get(`raw${bytes}`), res.get(`raptor${bytes}`)),
    ])
    return {
      markdown: [
        `Concurrent single publishes (${s.window} in flight) with payloads of each size; events a round in the second column.`,
        '',
        markdownTable(['payload', 'events', ...PAIR_HEAD, 'Redis B/event raw / raptor'], rows),
      ].join('\n'),
      targets: [
        target(
          'publish vs raw at 100 KB payloads',
          ratioOver(res.get('raptor100000'), res.get('raw100000'), rate).median,
          1.0,
          true,
        ),
      ],
    }
  },
}

export const channelsRow: BenchRow = {
  name: 'channels',
  title: 'Flat as work grows: channels',
  async run({url, admin, s}) {
    const counts = [1, 100]
    const names = (n: number) => Array.from({length: n}, (_, i) => `bench.ch${tag()}.n${i}`)
    const cases = counts.flatMap((n) => [
      publishCase(
        admin,
        s,
        `raw${n}`,
        `raw one-script, ${n} channel(s)`,
        () => rawPublisher(url, {payloadBytes: s.payloadBytes, channels: names(n)}),
        'one',
      ),
      publishCase(
        admin,
        s,
        `raptor${n}`,
        `raptor bus.publish, ${n} channel(s)`,
        () => raptorPublisher(url, {payloadBytes: s.payloadBytes, channels: names(n)}),
        'one',
      ),
    ])
    const res = await interleave(cases, s.runs, {between: () => flush(admin), describe: describeProfile})
    const rows = counts.map((n) => [String(n), ...pairCells(res.get(`raw${n}`), res.get(`raptor${n}`))])
    return {
      markdown: [
        `Concurrent single publishes (${s.window} in flight, ${fmt(s.events)} events a round) spread round-robin over the channels.`,
        '',
        markdownTable(['channels', ...PAIR_HEAD, 'Redis B/event raw / raptor'], rows),
      ].join('\n'),
      targets: [
        target(
          'publish vs raw over 100 channels',
          ratioOver(res.get('raptor100'), res.get('raw100'), rate).median,
          1.0,
          true,
        ),
      ],
    }
  },
}

/** Reads a raw stream after `mark` (all of it without): XRANGE pages of 500 (raptor's page), JSON.parse of every entry. */
async function rawRead(redis: Redis, stream: string, mark?: string): Promise<number> {
  let n = 0
  let start = mark ? `(${mark}` : '-'
  for (;;) {
    const page = await redis.xrange(stream, start, '+', 'COUNT', 500)
    for (const [, fields] of page) JSON.parse(fields[1])
    n += page.length
    if (page.length < 500) return n
    start = `(${page[page.length - 1][0]}`
  }
}

export const streamRow: BenchRow = {
  name: 'stream',
  title: 'Flat as work grows: events held in the stream',
  async run({url, admin, s}) {
    const big = s.quick ? 100_000 : 1_000_000
    const sizes = [1000, big]
    const payloadBytes = 100
    const publishEvents = s.quick ? 2000 : 5000
    // Of the big stream, the newest `tail` events are read (after a mark set while filling).
    const tail = s.quick ? 20_000 : 100_000
    const readOf = (n: number) => (n > tail ? tail : n)
    const channelOf = (n: number) => `bench.hold${n}`
    // Per size, one raptor bus and one raw client hold their stream for the whole row (filled once, not timed).
    const raptors = await Promise.all(
      sizes.map((n) => raptorPublisher(url, {payloadBytes, channels: [channelOf(n)], retention: '7d'})),
    )
    const raws = await Promise.all(
      sizes.map((n) => rawPublisher(url, {payloadBytes, channels: [channelOf(n)]})),
    )
    const reader = new Redis(url)
    const lastId = async (stream: string) =>
      ((await reader.xrevrange(stream, '+', '-', 'COUNT', 1)) as [string, string[]][])[0]?.[0]
    const marks: {raw?: string; raptor?: string}[] = sizes.map(() => ({}))
    try {
      for (const [i, n] of sizes.entries()) {
        progress(`filling the ${fmt(n)}-event streams (raw and raptor, ${payloadBytes}-byte payloads)`)
        for (let k = 0; k < n; k += BATCH) {
          if (n > tail && k === n - tail) {
            marks[i].raw = await lastId(rawKeys(channelOf(n)).stream)
            marks[i].raptor = await lastId(raptors[i].bus.keys.stream(channelOf(n)))
          }
          const m = Math.min(BATCH, n - k)
          await raptors[i].many(m)
          await raws[i].many(m)
        }
      }
      const cases: Case<Profile>[] = sizes.flatMap((n, i) => {
        const channel = channelOf(n)
        const windowedOne = (one: () => Promise<unknown>) => () => windowed(publishEvents, s.window, one)
        return [
          {
            key: `rawPub${n}`,
            label: `raw one-script publish into ${fmt(n)}`,
            run: () => profiled(admin, publishEvents, windowedOne(raws[i].one)),
          },
          {
            key: `raptorPub${n}`,
            label: `raptor bus.publish into ${fmt(n)}`,
            run: () => profiled(admin, publishEvents, windowedOne(raptors[i].one)),
          },
          {
            key: `rawRead${n}`,
            label: `raw XRANGE read of ${fmt(readOf(n))} of ${fmt(n)}`,
            run: async () => {
              const stream = rawKeys(channel).stream
              const count = (await reader.xlen(stream)) - (n - readOf(n))
              return profiled(admin, count, async () => {
                const k = await rawRead(reader, stream, marks[i].raw)
                if (k !== count) throw new Error(`XRANGE read ${k} of ${count} entries`)
              })
            },
          },
          {
            key: `raptorRead${n}`,
            label: `raptor bus.replay of ${fmt(readOf(n))} of ${fmt(n)}`,
            run: async () => {
              const count = (await reader.xlen(raptors[i].bus.keys.stream(channel))) - (n - readOf(n))
              const window = marks[i].raptor ? {after: marks[i].raptor} : {}
              return profiled(admin, count, async () => {
                let k = 0
                for await (const event of raptors[i].bus.replay(channel, window)) if (event) k++
                if (k !== count) throw new Error(`replay read ${k} of ${count} events`)
              })
            },
          },
        ]
      })
      const res = await interleave(cases, s.runs, {describe: describeProfile})
      const rows = sizes.flatMap((n) => [
        [`publish into ${fmt(n)}`, ...pairCells(res.get(`rawPub${n}`), res.get(`raptorPub${n}`), false)],
        [
          `read ${n > tail ? `the newest ${fmt(tail)} of` : 'all'} ${fmt(n)}`,
          ...pairCells(res.get(`rawRead${n}`), res.get(`raptorRead${n}`), false),
        ],
      ])
      return {
        markdown: [
          `Two streams of each side, holding ${fmt(sizes[0])} and ${fmt(big)} events (${payloadBytes}-byte payloads, filled before the rounds; they grow by ${fmt(publishEvents)} a round). ` +
            `"publish into": ${fmt(publishEvents)} concurrent single publishes (${s.window} in flight); "read": raptor \`bus.replay\` (all of the small stream; of the big one, its newest ${fmt(tail)} events of the fill and those published in the rounds) against raw \`XRANGE\` pages of 500 (raptor's page) + \`JSON.parse\`.`,
          '',
          markdownTable(['step', ...PAIR_HEAD], rows),
        ].join('\n'),
        targets: [
          target(
            `replay in a stream of ${fmt(big)} events vs raw XRANGE`,
            ratioOver(res.get(`raptorRead${big}`), res.get(`rawRead${big}`), rate).median,
            1.0,
            true,
          ),
          target(
            `publish into ${fmt(big)} events vs raw`,
            ratioOver(res.get(`raptorPub${big}`), res.get(`rawPub${big}`), rate).median,
            1.0,
            true,
          ),
        ],
      }
    } finally {
      await reader.quit()
      await Promise.all(raptors.map((r) => r.close()))
      await Promise.all(raws.map((r) => r.close()))
      await flush(admin)
    }
  },
}

export const groupsRow: BenchRow = {
  name: 'groups',
  title: 'Flat as work grows: handler groups on one channel',
  async run({url, admin, s}) {
    const counts = [1, 5, 20]
    const events = s.quick ? 2000 : 5000
    const cases: Case<Profile>[] = counts.flatMap((g) => {
      const onChannel = (
        key: string,
        label: string,
        consume: (bus: RaptorBus, channel: string, stream: string) => Promise<unknown>,
      ): Case<Profile> => ({
        key,
        label,
        run: async () => {
          const ch = await filledChannel(url, events, s.payloadBytes)
          try {
            return await profiled(admin, events * g, () => consume(ch.bus, ch.channel, ch.stream))
          } finally {
            await ch.bus.close()
          }
        },
      })
      return [
        onChannel(`raw${g}`, `raw XREADGROUP loops, ${g} group(s)`, (_bus, _channel, stream) =>
          rawConsumeAll(url, stream, events, g),
        ),
        onChannel(`raptor${g}`, `raptor bus.consume, ${g} handler(s)`, (bus, channel) =>
          raptorConsumeAll(bus, channel, events, g),
        ),
      ]
    })
    const res = await interleave(cases, s.runs, {
      between: () => flush(admin),
      describe: (p) =>
        `${fmt(p.rate)} deliveries/s, client ${fmt(p.clientUs, 1)} µs, redis ${fmt(p.redisUs, 1)} µs per delivery`,
    })
    const rows = counts.map((g) => [
      String(g),
      ...pairCells(res.get(`raw${g}`), res.get(`raptor${g}`), false),
    ])
    return {
      markdown: [
        `${fmt(events)} events waiting on one channel; every group (handler) reads all of them in one process (raptor: \`bus.consume\`, concurrency 100 each; raw: one \`XREADGROUP COUNT 100\` + \`JSON.parse\` + \`XACK\` loop per group, each on its own connection). Figures per delivery (events × groups).`,
        '',
        markdownTable(
          [
            'groups',
            ...PAIR_HEAD.map((h) => h.replace('events/s', 'deliveries/s').replace('/event', '/delivery')),
          ],
          rows,
        ),
      ].join('\n'),
      targets: [
        target(
          'consume with 20 handler groups vs raw',
          ratioOver(res.get('raptor20'), res.get('raw20'), rate).median,
          0.8,
          true,
        ),
      ],
    }
  },
}
