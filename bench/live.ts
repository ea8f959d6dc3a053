import {fork} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {fileURLToPath} from 'node:url'

import {Redis} from 'ioredis'

import {RaptorBus} from '../src/bus/index.js'
import {nowMicros} from '../src/cli/histogram.js'
import {payloadMaker, progress, sleep, type Settings} from './lib.js'
import type {SubReport, SubStart} from './live-sub.js'

export interface LiveRun {
  sent: number
  received: number
  p50: number
  p99: number
  max: number
}

export interface LiveResult {
  key: string
  label: string
  rate: number
  runs: LiveRun[]
}

/**
 * Publishes at a fixed rate for `ms`: every millisecond, the events due by then are sent (not
 * awaited one by one), each stamped with its send time. Returns the number sent.
 */
async function publishAtRate(rate: number, ms: number, send: () => Promise<unknown>): Promise<number> {
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

async function oneRun(url: string, mode: SubStart['mode'], rate: number, s: Settings): Promise<LiveRun> {
  const tag = randomBytes(4).toString('hex')
  const prefix = `bench-live-${tag}`
  const channel = `bench.live${tag}`
  const child = fork(fileURLToPath(new URL('./live-sub.js', import.meta.url)), {stdio: 'inherit'})
  const next = () => new Promise<unknown>((resolve) => child.once('message', resolve))
  try {
    const start: SubStart = {mode, url, prefix, channel: mode === 'raw' ? `raw:${channel}` : channel}
    child.send(start)
    await next()
    const payload = payloadMaker(s.payloadBytes, nowMicros)
    let sent: number
    if (mode === 'raptor') {
      const bus = await RaptorBus.connect({
        redisUrl: url,
        prefix,
        channels: [{name: channel, retention: '1h'}],
      })
      sent = await publishAtRate(rate, s.liveMs, () =>
        bus.publish({channel, type: 'bench', payload: payload()}),
      )
      await bus.close()
    } else {
      const redis = new Redis(url)
      sent = await publishAtRate(rate, s.liveMs, () =>
        redis.publish(start.channel, JSON.stringify(payload())),
      )
      await redis.quit()
    }
    child.send({stop: sent})
    const report = (await next()) as SubReport
    return {
      sent,
      received: report.received,
      p50: report.latency.p50,
      p99: report.latency.p99,
      max: report.latency.max,
    }
  } finally {
    // Let it exit by itself (so that --cpu-prof profiles are written), then make sure.
    if (child.exitCode === null) await Promise.race([new Promise((r) => child.once('exit', r)), sleep(2000)])
    if (child.exitCode === null) child.kill()
  }
}

export async function runLive(url: string, s: Settings): Promise<LiveResult[]> {
  const results: LiveResult[] = []
  for (const rate of [1000, 10_000]) {
    const raptor: LiveResult = {key: `raptor${rate}`, label: 'raptor publish → bus.subscribe', rate, runs: []}
    const raw: LiveResult = {key: `raw${rate}`, label: 'raw ioredis PUBLISH → SUBSCRIBE', rate, runs: []}
    for (let run = 0; run < s.runs; run++) {
      for (const [result, mode] of [
        [raw, 'raw'],
        [raptor, 'raptor'],
      ] as const) {
        const r = await oneRun(url, mode, rate, s)
        result.runs.push(r)
        progress(
          `run ${run + 1}/${s.runs} ${result.label} at ${rate}/s: p50 ${r.p50} ms p99 ${r.p99} ms max ${r.max} ms, lost ${r.sent - r.received}`,
        )
      }
    }
    results.push(raw, raptor)
  }
  return results
}
