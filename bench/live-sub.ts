/**
 * The live subscribers of the latency rows, run as their own process (fork) so that they do not
 * share an event loop with the publisher. Messages (IPC): in `{mode, url, prefix, channel, n}`, out
 * `{ready}`; in `{stop: expected}`, out `{received, latency, cpuUs}` once every subscriber has every
 * event, or none arrived for 2 s.
 */
import {Redis} from 'ioredis'

import {Histogram, nowMicros, type LatencySummary} from '../src/cli/histogram.js'
import {busClass} from './publishers.js'

export interface SubStart {
  mode: 'raptor' | 'raw'
  url: string
  prefix: string
  channel: string
  /** Subscribers, each on its own connection (raptor: its own bus). */
  n: number
  /** Another raptor checkout's dist/ to subscribe with (`--vs DIR`). */
  vs?: string
}

export interface SubReport {
  /** Deliveries over all subscribers. */
  received: number
  latency: LatencySummary
  /** CPU (user + sys) of this process from ready to the last delivery, µs. */
  cpuUs: number
}

const histogram = new Histogram()
let received = 0
const onTs = (ts: unknown) => {
  if (typeof ts === 'number') histogram.record(nowMicros() - ts)
  received++
}

const closers: (() => Promise<unknown>)[] = []
let cpu = process.cpuUsage()

process.on('message', async (message: SubStart | {stop: number}) => {
  if ('mode' in message) {
    for (let i = 0; i < message.n; i++) {
      if (message.mode === 'raptor') {
        const Bus = await busClass(message.vs)
        const bus = await Bus.connect({
          redisUrl: message.url,
          prefix: message.prefix,
          channels: [{name: message.channel, retention: '1h'}],
        })
        await bus.subscribe(message.channel, (event) => onTs(event.data.ts))
        closers.push(() => bus.close())
      } else {
        const redis = new Redis(message.url)
        redis.on('message', (_channel: string, text: string) =>
          onTs((JSON.parse(text) as {data: {ts: number}}).data.ts),
        )
        await redis.subscribe(message.channel)
        closers.push(() => redis.quit())
      }
    }
    cpu = process.cpuUsage()
    process.send!({ready: true})
    return
  }
  let last = received
  let idleSince = Date.now()
  while (received < message.stop && Date.now() - idleSince < 2000) {
    await new Promise((r) => setTimeout(r, 5))
    if (received !== last) {
      last = received
      idleSince = Date.now()
    }
  }
  const used = process.cpuUsage(cpu)
  await Promise.all(closers.map((close) => close()))
  const report: SubReport = {received, latency: histogram.summary(), cpuUs: used.user + used.system}
  process.send!(report, () => process.exit(0))
})
