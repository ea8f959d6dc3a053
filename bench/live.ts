/**
 * Live delivery: a publisher at a fixed rate, subscribers in their own process. The latency row
 * (raptor publish → bus.subscribe vs raw PUBLISH → SUBSCRIBE at 1k/s and 10k/s) and the fan-out row
 * (1, 10, 50 subscribers: Redis CPU per event vs the raw one-script publish with as many raw
 * SUBSCRIBE connections).
 */
import {fork} from 'node:child_process'
import {fileURLToPath} from 'node:url'

import {Redis} from 'ioredis'

import {nowMicros} from '../src/cli/histogram.js'
import {flush, interleave, over, ratioOver, serverUsage, target, type BenchRow, type Case} from './harness.js'
import {fmt, fmtRatio, fmtStat, markdownTable, payloadMaker, rawEnvelope, sleep, tag} from './lib.js'
import type {SubReport, SubStart} from './live-sub.js'
import {rawPublisher, raptorPublisher} from './publishers.js'

export interface LiveRun {
  /** Events per second the publisher reached (below the target rate when it could not keep up). */
  rate: number
  sent: number
  received: number
  p50: number
  p99: number
  max: number
  /** Subscriber process CPU per delivery, µs. */
  subUs: number
  /** Redis server CPU per published event, µs. */
  redisUs: number
}

/**
 * Publishes at a fixed rate for `ms`: every millisecond, the events due by then are sent (not
 * awaited one by one). Returns the number sent.
 */
export async function publishAtRate(rate: number, ms: number, send: () => Promise<unknown>): Promise<number> {
  const started = performance.now()
  const inflight = new Set<Promise<unknown>>()
  let sent = 0
  while (performance.now() - started < ms) {
    const due = Math.floor(((performance.now() - started) * rate) / 1000)
    while (sent < due) {
      const p = send()
      inflight.add(p)
      void p.finally(() => inflight.delete(p))
      sent++
    }
    await sleep(1)
  }
  await Promise.all(inflight)
  return sent
}

/**
 * One fixed-rate run. `publisher`: `plain` = raw PUBLISH of the envelope JSON (the latency row's
 * baseline), `script` = the raw one-script publish (persisted, like raptor's), `raptor` = bus.publish.
 */
export async function liveRun(
  url: string,
  admin: Redis,
  opts: {
    vs?: string
    mode: 'raptor' | 'raw'
    plain?: boolean
    rate: number
    ms: number
    subscribers: number
    payloadBytes: number
  },
): Promise<LiveRun> {
  const channel = `bench.live${tag()}`
  const raptor =
    opts.mode === 'raptor'
      ? await raptorPublisher(url, {payloadBytes: opts.payloadBytes, channels: [channel], vs: opts.vs})
      : undefined
  const prefix = raptor?.bus.keys.prefix ?? 'raw'
  const child = fork(fileURLToPath(new URL('./live-sub.js', import.meta.url)), {stdio: 'inherit'})
  const next = () => new Promise<unknown>((resolve) => child.once('message', resolve))
  const plain = opts.plain ? new Redis(url) : undefined
  const script =
    opts.mode === 'raw' && !opts.plain
      ? await rawPublisher(url, {payloadBytes: opts.payloadBytes, channels: [channel]})
      : undefined
  try {
    const subChannel =
      opts.mode === 'raptor' ? channel : opts.plain ? `raw:plain:${channel}` : `raw:live:${channel}`
    const start: SubStart = {
      mode: opts.mode,
      url,
      prefix,
      channel: subChannel,
      n: opts.subscribers,
      vs: opts.vs,
    }
    child.send(start)
    await next()
    const payload = payloadMaker(opts.payloadBytes, nowMicros)
    const send = raptor
      ? raptor.one
      : plain
        ? () => plain.publish(subChannel, rawEnvelope(channel, 'bench', payload()))
        : script!.one
    const before = await serverUsage(admin)
    const started = performance.now()
    const sent = await publishAtRate(opts.rate, opts.ms, send)
    const seconds = (performance.now() - started) / 1000
    child.send({stop: sent * opts.subscribers})
    const report = (await next()) as SubReport
    const after = await serverUsage(admin)
    return {
      rate: sent / seconds,
      sent: sent * opts.subscribers,
      received: report.received,
      p50: report.latency.p50,
      p99: report.latency.p99,
      max: report.latency.max,
      subUs: report.cpuUs / Math.max(1, report.received),
      redisUs: (after.cpuUs - before.cpuUs) / sent,
    }
  } finally {
    await raptor?.close()
    await script?.close()
    await plain?.quit()
    // Let it exit by itself (so that --cpu-prof profiles are written), then make sure.
    if (child.exitCode === null) await Promise.race([new Promise((r) => child.once('exit', r)), sleep(2000)])
    if (child.exitCode === null) child.kill()
  }
}

const describeLive = (r: LiveRun) =>
  `p50 ${r.p50} ms p99 ${r.p99} ms, lost ${r.sent - r.received}, redis ${fmt(r.redisUs, 1)} µs/event`

export const liveRow: BenchRow = {
  name: 'live',
  title: 'Live latency',
  async run({url, admin, s}) {
    const rates = [1000, 10_000]
    const cases: Case<LiveRun>[] = rates.flatMap((rate) => [
      {
        key: `raw${rate}`,
        label: `${fmt(rate)}/s raw PUBLISH → SUBSCRIBE (+ JSON.parse)`,
        run: () =>
          liveRun(url, admin, {
            mode: 'raw',
            plain: true,
            rate,
            ms: s.liveMs,
            subscribers: 1,
            payloadBytes: s.payloadBytes,
          }),
      },
      {
        key: `raptor${rate}`,
        label: `${fmt(rate)}/s raptor bus.publish → bus.subscribe`,
        run: () =>
          liveRun(url, admin, {
            mode: 'raptor',
            rate,
            ms: s.liveMs,
            subscribers: 1,
            payloadBytes: s.payloadBytes,
          }),
      },
      ...(s.vs
        ? [
            {
              key: `raptorVs${rate}`,
              label: `${fmt(rate)}/s raptor of ${s.vs}`,
              run: () =>
                liveRun(url, admin, {
                  mode: 'raptor',
                  vs: s.vs,
                  rate,
                  ms: s.liveMs,
                  subscribers: 1,
                  payloadBytes: s.payloadBytes,
                }),
            },
          ]
        : []),
    ])
    const res = await interleave(cases, s.runs, {between: () => flush(admin), describe: describeLive})
    const rows = [...res.values()].map((r) => {
      const raw = res.get(r.key.replace(/^raptor(Vs)?/, 'raw'))
      const lost = r.rounds.reduce((n, x) => n + x.sent - x.received, 0)
      return [
        r.label,
        fmtStat(over(r, (x) => x.rate)),
        fmtStat(
          over(r, (x) => x.p50),
          3,
        ),
        fmtStat(
          over(r, (x) => x.p99),
          3,
        ),
        fmtRatio(ratioOver(r, raw, (x) => x.p50)),
        fmtRatio(ratioOver(r, raw, (x) => x.p99)),
        fmtStat(
          over(r, (x) => x.subUs),
          1,
        ),
        fmtStat(
          over(r, (x) => x.redisUs),
          1,
        ),
        `${lost} of ${fmt(r.rounds.reduce((n, x) => n + x.sent, 0))}`,
      ]
    })
    const q = (rate: number, pick: (x: LiveRun) => number) =>
      ratioOver(res.get(`raptor${rate}`), res.get(`raw${rate}`), pick).median
    const lost = [...res.values()].reduce(
      (n, r) => n + r.rounds.reduce((k, x) => k + x.sent - x.received, 0),
      0,
    )
    const behind = [...res.values()].filter((r) => {
      const target = Number(/\d+$/.exec(r.key)?.[0])
      return over(r, (x) => x.rate).median < 0.9 * target
    })
    return {
      markdown: [
        `Fixed rate for ${s.liveMs / 1000} s a round; the subscriber in its own process; ms from the send timestamp in the payload to the handler.`,
        ...(behind.length > 0
          ? [
              '',
              `**The publisher fell behind the rate** in ${behind.map((r) => `"${r.label}"`).join(', ')} (see sent/s): ` +
                'events waited in the publisher, so that latency measures the backlog, not delivery; the machine was too busy for this rate.',
            ]
          : []),
        '',
        markdownTable(
          [
            'case',
            'sent/s',
            'p50 ms',
            'p99 ms',
            'p50 × raw',
            'p99 × raw',
            'subscriber µs/event',
            'Redis µs/event',
            'lost (all rounds)',
          ],
          rows,
        ),
      ].join('\n'),
      targets: [
        target(
          'live p50 at 10k/s vs raw pub/sub',
          q(10_000, (x) => x.p50),
          1.5,
          false,
        ),
        target(
          'live p99 at 10k/s vs raw pub/sub',
          q(10_000, (x) => x.p99),
          2,
          false,
        ),
        target(
          'live p50 at 1k/s vs raw pub/sub',
          q(1000, (x) => x.p50),
          1.3,
          false,
        ),
        {
          what: 'live events lost (all rates, all rounds)',
          limit: '= 0',
          measured: String(lost),
          met: lost === 0,
        },
      ],
    }
  },
}

/** Fan-out: 1, 10, 50 subscribers of one channel, Redis CPU per published event. */
export const fanoutRow: BenchRow = {
  name: 'fanout',
  title: 'Flat as work grows: live subscribers',
  async run({url, admin, s}) {
    const counts = [1, 10, 50]
    const rate = 2000
    const ms = s.quick ? 1500 : 2000
    const cases: Case<LiveRun>[] = counts.flatMap((n) => [
      {
        key: `raw${n}`,
        label: `raw one-script publish → ${n} SUBSCRIBE`,
        run: () => liveRun(url, admin, {mode: 'raw', rate, ms, subscribers: n, payloadBytes: s.payloadBytes}),
      },
      {
        key: `raptor${n}`,
        label: `raptor bus.publish → ${n} bus.subscribe`,
        run: () =>
          liveRun(url, admin, {mode: 'raptor', rate, ms, subscribers: n, payloadBytes: s.payloadBytes}),
      },
    ])
    const res = await interleave(cases, s.runs, {between: () => flush(admin), describe: describeLive})
    const redis = (x: LiveRun) => x.redisUs
    const rows = counts.map((n) => {
      const raw = res.get(`raw${n}`)
      const raptor = res.get(`raptor${n}`)
      return [
        String(n),
        fmtStat(over(raw, redis), 1),
        fmtStat(over(raptor, redis), 1),
        fmtRatio(ratioOver(raptor, raw, redis)),
        fmtStat(
          over(raw, (x) => x.p50),
          3,
        ),
        fmtStat(
          over(raptor, (x) => x.p50),
          3,
        ),
        fmtStat(
          over(raptor, (x) => x.subUs),
          1,
        ),
      ]
    })
    return {
      markdown: [
        `${fmt(rate)} events/s for ${ms / 1000} s a round into one channel; all subscribers in one other process, each on its own connection. Redis µs per *published* event (the fan-out included).`,
        '',
        markdownTable(
          [
            'subscribers',
            'raw Redis µs/event',
            'raptor Redis µs/event',
            'raptor × raw',
            'raw p50 ms',
            'raptor p50 ms',
            'raptor subscriber µs/delivery',
          ],
          rows,
        ),
      ].join('\n'),
      targets: [
        target(
          'Redis CPU per event with 50 subscribers vs raw',
          ratioOver(res.get('raptor50'), res.get('raw50'), redis).median,
          1.2,
          false,
        ),
      ],
    }
  },
}
