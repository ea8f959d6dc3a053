/**
 * Publish throughput with a per-event profile: concurrent single publishes (100 in flight) and
 * batches of 1000, raptor beside the raw one-script baseline, BullMQ and NATS JetStream.
 */
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
import {fmt, fmtRatio, fmtStat, markdownTable, windowed, type Settings} from './lib.js'
import {bullPublisher, natsPublisher, rawPublisher, raptorPublisher, type Publisher} from './publishers.js'
import type {Redis} from 'ioredis'

/** Events per publishMany / addBulk / pipelined call. */
export const BATCH = 1000

/** A case that connects, warms up (1000 events, not measured), measures `events`, closes. */
export function publishCase(
  admin: Redis,
  s: Settings,
  key: string,
  label: string,
  open: () => Promise<Publisher>,
  mode: 'one' | 'many',
  events = s.events,
): Case<Profile> {
  return {
    key,
    label,
    run: async () => {
      const p = await open()
      try {
        const send =
          mode === 'one'
            ? () => windowed(events, s.window, p.one)
            : () => windowed(events / BATCH, 1, () => p.many(BATCH))
        if (mode === 'one') await windowed(1000, s.window, p.one)
        else await p.many(BATCH)
        return await profiled(admin, events, send)
      } finally {
        await p.close()
      }
    },
  }
}

export const describeProfile = (p: Profile) =>
  `${fmt(p.rate)} events/s, client ${fmt(p.clientUs, 1)} µs, redis ${fmt(p.redisUs, 1)} µs, ${fmt(p.memBytes)} B per event`

/** Profile columns of a case: client CPU, Redis CPU and memory per event (medians, ranges). */
export function profileCells(r: Parameters<typeof over<Profile>>[0], redis = true): string[] {
  return [
    fmtStat(
      over(r, (x) => x.clientUs),
      1,
    ),
    redis
      ? fmtStat(
          over(r, (x) => x.redisUs),
          1,
        )
      : '–',
    redis ? fmtStat(over(r, (x) => x.memBytes)) : '–',
  ]
}

export const publishRow: BenchRow = {
  name: 'publish',
  title: 'Publish throughput and cost per event',
  async run({url, admin, s}) {
    const opts = {payloadBytes: s.payloadBytes}
    const c = (key: string, label: string, open: () => Promise<Publisher>, mode: 'one' | 'many') =>
      publishCase(admin, s, key, label, open, mode)
    const cases = [
      c(
        'raw',
        'raw one-script XADD+PUBLISH+HINCRBY (EVALSHA, JSON.stringify per event)',
        () => rawPublisher(url, opts),
        'one',
      ),
      c('raptor', 'raptor bus.publish', () => raptorPublisher(url, opts), 'one'),
      ...(s.vs
        ? [
            c(
              'raptorVs',
              `raptor bus.publish of ${s.vs}`,
              () => raptorPublisher(url, {...opts, vs: s.vs}),
              'one',
            ),
          ]
        : []),
      c('bull', 'BullMQ Queue.add', () => bullPublisher(url, opts), 'one'),
      c('nats', 'NATS JetStream js.publish (memory stream, awaited)', () => natsPublisher(opts), 'one'),
      c('rawMany', `raw one-script, ${BATCH} EVALSHA pipelined`, () => rawPublisher(url, opts), 'many'),
      c('raptorMany', `raptor bus.publishMany(${BATCH})`, () => raptorPublisher(url, opts), 'many'),
      ...(s.vs
        ? [
            c(
              'raptorManyVs',
              `raptor bus.publishMany(${BATCH}) of ${s.vs}`,
              () => raptorPublisher(url, {...opts, vs: s.vs}),
              'many',
            ),
          ]
        : []),
      c('bullMany', `BullMQ Queue.addBulk(${BATCH})`, () => bullPublisher(url, opts), 'many'),
      c('natsMany', `NATS JetStream ${BATCH} js.publish at once`, () => natsPublisher(opts), 'many'),
    ]
    const res = await interleave(cases, s.runs, {between: () => flush(admin), describe: describeProfile})
    const rate = (p: Profile) => p.rate
    const rows = (keys: string[], base: string, bull: string, nats: string) =>
      keys
        .filter((k) => res.has(k))
        .map((k) => {
          const r = res.get(k)!
          if (r.skipped) return [r.label, `skipped: ${r.skipped}`, '', '', '', '', '', '']
          const redis = !k.startsWith('nats')
          return [
            r.label,
            fmtStat(over(r, rate)),
            fmtRatio(ratioOver(r, res.get(base), rate)),
            fmtRatio(ratioOver(r, res.get(bull), rate)),
            fmtRatio(ratioOver(r, res.get(nats), rate)),
            ...profileCells(r, redis),
          ]
        })
    const head = [
      'case',
      'events/s',
      '× raw',
      '× BullMQ',
      '× NATS',
      'client µs/event',
      'Redis µs/event',
      'Redis B/event',
    ]
    const markdown = [
      `Concurrent single publishes (${s.window} in flight, ${fmt(s.events)} events a round):`,
      '',
      markdownTable(head, rows(['raw', 'raptor', 'raptorVs', 'bull', 'nats'], 'raw', 'bull', 'nats')),
      '',
      `Batches (${BATCH} events a call, one call in flight, ${fmt(s.events)} events a round):`,
      '',
      markdownTable(
        head,
        rows(
          ['rawMany', 'raptorMany', 'raptorManyVs', 'bullMany', 'natsMany'],
          'rawMany',
          'bullMany',
          'natsMany',
        ),
      ),
    ].join('\n')
    const q = (a: string, b: string, pick: (p: Profile) => number) =>
      ratioOver(res.get(a), res.get(b), pick).median
    return {
      markdown,
      targets: [
        target('publish (100 in flight) vs raw one-script', q('raptor', 'raw', rate), 1.0, true),
        target('publishMany(1000) vs raw pipelined script', q('raptorMany', 'rawMany', rate), 1.5, true),
        target(
          'Redis memory per event vs raw',
          q('raptor', 'raw', (p) => p.memBytes),
          1.1,
          false,
        ),
        target(
          'Redis CPU per event vs raw',
          q('raptor', 'raw', (p) => p.redisUs),
          1.2,
          false,
        ),
      ],
    }
  },
}
